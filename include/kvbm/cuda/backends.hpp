// kvbm/cuda/backends.hpp — the CUDA backends of DeviceBlockTable and TransferEngine.
//
// make_cuda_device_block_table: the table, its staging ring (pinned host + device scratch) and
// its layouts in device memory; sync is cudaMemcpyAsync + thrust::scatter (par_nosync) on the
// caller's stream, fenced by pooled events. make_cuda_transfer_engine: an engine whose CUDA
// streams issue cudaMemcpyAsync / cudaMemcpy2DAsync (cudaMemcpyDefault; UVA) and whose host
// streams keep the host backend. Both throw CudaError when the runtime fails (no device).
// CUDA library only.
#pragma once

#include <memory>
#include <vector>

#include "kvbm/cuda/event.hpp"
#include "kvbm/device_block_table.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/transfer_engine.hpp"

namespace kvbm {

/// `events` must outlive the table.
[[nodiscard]] std::unique_ptr<DeviceBlockTable> make_cuda_device_block_table(
    const DeviceBlockTableConfig& config, EventPool& events);

/// The CUDA copy backend alone (for TransferEngine's constructor). `events` must outlive it.
[[nodiscard]] std::shared_ptr<detail::CopyBackend> make_cuda_copy_backend(EventPool& events);

/// An engine serving both host and CUDA streams.
[[nodiscard]] inline std::unique_ptr<TransferEngine> make_cuda_transfer_engine(EventPool& events) {
  return std::make_unique<TransferEngine>(std::vector<std::shared_ptr<detail::CopyBackend>>{
      make_host_copy_backend(), make_cuda_copy_backend(events)});
}

}  // namespace kvbm
