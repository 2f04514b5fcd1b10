// kvbm/detail/table_backend.hpp — backend hook of DeviceBlockTable (host: src/host/, CUDA: cuda/).
//
// DeviceBlockTable keeps the host-side logic (mirror, deltas, staging ring, fences); a backend
// owns the device memory and enqueues the device work. Every enqueue returns the fence of that
// job; the staging buffer passed in must not be touched by the host until that fence is ready.
// For library backends, not for users.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kvbm/device_block_table.hpp"
#include "kvbm/detail/table_layout.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/stream_ref.hpp"

namespace kvbm::detail {

/// A host staging area (pinned on CUDA) paired with a device scratch area of the same capacity.
class StagingBuffer {
 public:
  virtual ~StagingBuffer() = default;
  [[nodiscard]] virtual std::byte* host() noexcept = 0;
  [[nodiscard]] virtual std::size_t capacity() const noexcept = 0;
};

class TableBackend {
 public:
  virtual ~TableBackend() = default;
  [[nodiscard]] virtual StreamRef::Kind stream_kind() const noexcept = 0;
  /// A staging buffer of at least `bytes` bytes (host and device scratch).
  [[nodiscard]] virtual std::unique_ptr<StagingBuffer> make_staging(std::size_t bytes) = 0;
  /// Enqueue: copy `count` int32 indices then `count` int32 values from the staging host area to
  /// its device scratch, then scatter values[i] into table[indices[i]] (indices are distinct).
  virtual Fence upload_cells(StreamRef stream, StagingBuffer& staging, std::size_t count) = 0;
  /// Enqueue: copy the whole table (max_requests * max_blocks_per_request int32, row-major) from
  /// the staging host area straight into the device table (the fallback for mass edits).
  virtual Fence upload_table(StreamRef stream, StagingBuffer& staging) = 0;
  /// Enqueue: copy `count` batch entries (SoA int32: rows, starts, num_tokens) to the scratch and
  /// build the slot mapping and the CSR arrays from the device table.
  virtual Fence build_layouts(StreamRef stream, StagingBuffer& staging, std::size_t count) = 0;
  virtual Fence download_table(StreamRef stream, std::int32_t* out) = 0;
  virtual Fence download_layouts(StreamRef stream, BatchLayoutsHost& out) = 0;
  [[nodiscard]] virtual DeviceTableView view() const noexcept = 0;
};

/// Scratch bytes a layout job needs for `count` entries (inputs + token offsets).
[[nodiscard]] constexpr std::size_t layout_scratch_bytes(std::size_t count) noexcept {
  return sizeof(std::int32_t) * staging::layout_scratch_ints(count);
}

/// The arrays a backend allocates for `config` (normalized).
[[nodiscard]] constexpr TableExtents table_extents(const DeviceBlockTableConfig& c) noexcept {
  const auto rows = static_cast<std::size_t>(c.max_requests);
  const auto columns = static_cast<std::size_t>(c.max_blocks_per_request);
  const auto batch = static_cast<std::size_t>(c.max_batch_requests);
  return {rows * columns, static_cast<std::size_t>(c.max_batch_tokens), batch + 1, batch * columns,
          batch};
}

/// The kernels' view of a backend's arrays (allocated with table_extents(config)).
[[nodiscard]] inline TableDeviceArrays table_device_arrays(
    const DeviceBlockTableConfig& c, std::int32_t* table, std::int64_t* slot_mapping,
    std::int32_t* indptr, std::int32_t* indices, std::int32_t* last_page_len) noexcept {
  return {table,
          slot_mapping,
          indptr,
          indices,
          last_page_len,
          c.max_blocks_per_request,
          c.block_size,
          c.max_batch_tokens,
          c.max_batch_requests,
          static_cast<std::int32_t>(table_extents(c).indices)};
}

/// The host backend lives in kvbm::host (kvbm/host/backends.hpp: make_host_device_block_table).

/// Validates a config (throws ConfigError) and fills its defaults (max_batch_requests).
[[nodiscard]] DeviceBlockTableConfig normalize_table_config(DeviceBlockTableConfig config);


}  // namespace kvbm::detail
