// kvbm/host/backends.hpp — the host backends of DeviceBlockTable and TransferEngine (kvbm::host).
//
// The host backend is a real backend, not a test double: streams are kvbm::HostStream worker
// threads, "device" memory is host memory, and the table kernels are the same Thrust code the CUDA
// backend runs, built for THRUST_DEVICE_SYSTEM_CPP. CPU-only deployments and G2 <-> G3 copies use
// it, and it is what CI exercises. The device layer (kvbm::device) never picks a backend itself:
// callers choose one here or in kvbm/cuda/backends.hpp.
// Ownership: each factory returns a new, independent object. Thread safety: as documented on
// DeviceBlockTable and TransferEngine.
#pragma once

#include <memory>

#include "kvbm/device_block_table.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/transfer_engine.hpp"

namespace kvbm {

/// A DeviceBlockTable on host streams. Throws ConfigError on a bad shape.
[[nodiscard]] std::unique_ptr<DeviceBlockTable> make_host_device_block_table(
    const DeviceBlockTableConfig& config);

/// The host copy backend alone (memcpy on the stream's worker): give it to a TransferEngine.
[[nodiscard]] std::shared_ptr<detail::CopyBackend> make_host_copy_backend();

}  // namespace kvbm
