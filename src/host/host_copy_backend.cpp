// Host copy backend of TransferEngine: each run is memcpy'd on the stream's worker thread, in
// stream order, and the returned fence is the stream's next event.
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "kvbm/errors.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"

namespace kvbm {
namespace {

class HostCopyBackend final : public detail::CopyBackend {
 public:
  [[nodiscard]] StreamRef::Kind stream_kind() const noexcept override {
    return StreamRef::Kind::Host;
  }

  Fence copy(StreamRef stream, MemoryKind src_kind, MemoryKind dst_kind,
             std::vector<detail::CopyRun> runs) override {
    if (src_kind == MemoryKind::Device || dst_kind == MemoryKind::Device) {
      throw Error("TransferEngine: a host stream cannot copy device memory");
    }
    HostStream& s = stream.host();
    s.enqueue([runs = std::move(runs)] {
      for (const detail::CopyRun& run : runs) {
        if (run.is_dense()) {
          std::memcpy(run.dst, run.src, run.block_bytes * run.blocks);
        } else {
          for (std::size_t b = 0; b < run.blocks; ++b) {
            std::memcpy(run.dst + b * run.dst_pitch, run.src + b * run.src_pitch, run.block_bytes);
          }
        }
      }
    });
    return s.record();
  }
};

}  // namespace

std::shared_ptr<detail::CopyBackend> make_host_copy_backend() {
  return std::make_shared<HostCopyBackend>();
}

}  // namespace kvbm
