// kvbm/stream_ref.hpp — StreamRef: a backend-neutral, non-owning reference to a stream.
//
// kvbm's asynchronous operations (DeviceBlockTable::sync, TransferEngine::copy_blocks) take a
// StreamRef and run either on a kvbm::HostStream (host backend) or on a CUDA stream (CUDA
// backend). The CUDA stream is carried as an opaque handle so this header, and the host library,
// never see CUDA types; kvbm::CudaStreamView (kvbm/cuda/stream.hpp) converts to StreamRef implicitly.
// Trivially copyable; does not own the stream, which must outlive every use.
#pragma once

#include <cstdint>

namespace kvbm {

class HostStream;

class StreamRef {
 public:
  enum class Kind : std::uint8_t { Host, Cuda };

  /// Implicit: a host stream is a stream.
  StreamRef(HostStream& stream) noexcept : kind_{Kind::Host}, host_{&stream} {}  // NOLINT
  /// A CUDA stream, from its cudaStream_t (nullptr is the legacy default stream).
  [[nodiscard]] static StreamRef cuda(void* cuda_stream) noexcept {
    return StreamRef{Kind::Cuda, cuda_stream};
  }

  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  [[nodiscard]] bool is_host() const noexcept { return kind_ == Kind::Host; }
  [[nodiscard]] bool is_cuda() const noexcept { return kind_ == Kind::Cuda; }
  /// The host stream; only for is_host().
  [[nodiscard]] HostStream& host() const noexcept { return *static_cast<HostStream*>(host_); }
  /// The cudaStream_t, type-erased; only for is_cuda().
  [[nodiscard]] void* cuda_handle() const noexcept { return host_; }

 private:
  StreamRef(Kind kind, void* p) noexcept : kind_{kind}, host_{p} {}
  Kind kind_;
  void* host_;
};

}  // namespace kvbm
