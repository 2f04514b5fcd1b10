// kvbm/cuda/stream.hpp — CudaStream (owning) and CudaStreamView (non-owning), RMM-style.
//
// CudaStreamView is a trivially copyable cudaStream_t; it cannot be built from 0 / nullptr by
// accident (use CudaStreamView::legacy_default()). It converts implicitly to kvbm::StreamRef, so
// it can be passed to DeviceBlockTable::sync and TransferEngine::copy_blocks.
// CudaStream owns one stream (move-only), created non-blocking by default, destroyed in the
// destructor (never throws). Thread safety: as for cudaStream_t.
// CUDA library only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "kvbm/cuda/error.hpp"
#include "kvbm/stream_ref.hpp"

namespace kvbm {

class CudaStreamView {
 public:
  constexpr explicit CudaStreamView(cudaStream_t stream) noexcept : stream_{stream} {}
  CudaStreamView(int) = delete;             // NOLINT: no literal 0 as a stream
  CudaStreamView(std::nullptr_t) = delete;  // NOLINT
  /// The legacy default stream (stream 0), named explicitly.
  [[nodiscard]] static constexpr CudaStreamView legacy_default() noexcept {
    return CudaStreamView{static_cast<cudaStream_t>(nullptr)};
  }

  [[nodiscard]] constexpr cudaStream_t value() const noexcept { return stream_; }
  constexpr operator cudaStream_t() const noexcept { return stream_; }  // NOLINT
  operator StreamRef() const noexcept { return StreamRef::cuda(stream_); }  // NOLINT
  /// Blocks until the stream's work is done; throws CudaError.
  void synchronize() const { KVBM_CUDA_TRY(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_;
};

class CudaStream {
 public:
  /// Creates a stream on the current device; throws CudaError (e.g. no driver / no device).
  explicit CudaStream(unsigned int flags = cudaStreamNonBlocking) {
    KVBM_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, flags));
  }
  CudaStream(CudaStream&& other) noexcept : stream_{std::exchange(other.stream_, nullptr)} {}
  CudaStream& operator=(CudaStream&& other) noexcept {
    if (this != &other) {
      reset();
      stream_ = std::exchange(other.stream_, nullptr);
    }
    return *this;
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  ~CudaStream() { reset(); }

  [[nodiscard]] CudaStreamView view() const noexcept { return CudaStreamView{stream_}; }
  operator CudaStreamView() const noexcept { return view(); }  // NOLINT
  operator StreamRef() const noexcept { return StreamRef::cuda(stream_); }  // NOLINT
  [[nodiscard]] cudaStream_t value() const noexcept { return stream_; }
  void synchronize() const { view().synchronize(); }

 private:
  void reset() noexcept {
    if (stream_ != nullptr) KVBM_CUDA_ASSERT_OK(cudaStreamDestroy(std::exchange(stream_, nullptr)));
  }
  cudaStream_t stream_{nullptr};
};

}  // namespace kvbm
