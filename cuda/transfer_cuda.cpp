// CUDA backend of TransferEngine: one cudaMemcpyAsync (dense runs) or cudaMemcpy2DAsync (strided
// runs) per coalesced run, cudaMemcpyDefault (UVA decides the direction), fenced by a pooled event.
#include <vector>

#include "kvbm/cuda/backends.hpp"
#include "kvbm/nvtx.hpp"

namespace kvbm {
namespace {

class CudaCopyBackend final : public detail::CopyBackend {
 public:
  explicit CudaCopyBackend(EventPool& events) : events_{&events} {}

  [[nodiscard]] StreamRef::Kind stream_kind() const noexcept override {
    return StreamRef::Kind::Cuda;
  }

  Fence copy(StreamRef stream, MemoryKind /*src_kind*/, MemoryKind /*dst_kind*/,
             std::vector<detail::CopyRun> runs) override {
    KVBM_NVTX_RANGE_PAYLOAD("cuda::copy_runs", runs.size());
    const CudaStreamView s{static_cast<cudaStream_t>(stream.cuda_handle())};
    for (const detail::CopyRun& run : runs) {
      if (run.is_dense()) {
        KVBM_CUDA_TRY(cudaMemcpyAsync(run.dst, run.src, run.block_bytes * run.blocks,
                                      cudaMemcpyDefault, s));
      } else {
        KVBM_CUDA_TRY(cudaMemcpy2DAsync(run.dst, run.dst_pitch, run.src, run.src_pitch,
                                        run.block_bytes, run.blocks, cudaMemcpyDefault, s));
      }
    }
    return events_->record(s);
  }

 private:
  EventPool* events_;
};

}  // namespace

std::shared_ptr<detail::CopyBackend> make_cuda_copy_backend(EventPool& events) {
  return std::make_shared<CudaCopyBackend>(events);
}

}  // namespace kvbm
