// kvbm/device_block_table.hpp — DeviceBlockTable: the dense block table paged-attention kernels
// read, kept on the device, updated by deltas, plus the derived per-batch layouts.
//
// Layout: int32 table[max_requests][max_blocks_per_request] of block ids in device memory, -1 for
// unused cells (row r, column c = r * max_blocks_per_request + c). A host mirror takes the edits
// (assign / append / truncate / clear a row); each edited cell is remembered once (last write
// wins) and sync(stream) uploads only the cells whose value differs from what the device already
// holds: pack (index, value) pairs into a staging buffer (pinned on CUDA) -> one copy to a device
// scratch -> one scatter. Bytes moved per sync = 8 x changed cells, whatever the table size;
// when at least half the cells changed (e.g. a whole new batch), one plain copy of the table
// (4 bytes per cell, no scatter) is cheaper and is used instead.
// Staging buffers form a ring; a slot is reused only once the fence of the job that last used it
// is ready (never a blind round-robin), so the host can edit batch B while batch A's upload is
// still in flight and A still arrives untorn.
// prepare_batch(stream, batch) computes, on the device, from the device table, the slot mapping
// (token -> block_id * block_size + offset, int64, -1 padded to max_batch_tokens) and FlashInfer's
// paged-KV CSR (indptr, indices, last_page_len), in fixed-capacity buffers whose addresses never
// change (CUDA-graph friendly).
// Backends are chosen by the caller through factories: kvbm::make_host_device_block_table
// (kvbm/host/backends.hpp; HostStream, "device" memory is host memory, the same Thrust code built
// for THRUST_DEVICE_SYSTEM_CPP) and kvbm::make_cuda_device_block_table (kvbm/cuda/backends.hpp).
// This class (kvbm::device) never picks one itself. Passing a stream of the other kind throws.
// Ordering: device work is stream-ordered. Use one stream per table, or order the streams
// yourself (wait on the returned fences); prepare_batch reads the table as of stream order.
// Thread safety: none; one owner thread (the device work runs asynchronously on the streams).
// The destructor waits for every job the table enqueued.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/fence.hpp"
#include "kvbm/stream_ref.hpp"

namespace kvbm {

namespace detail {
class TableBackend;
class StagingBuffer;
}  // namespace detail

struct DeviceBlockTableConfig {
  std::int32_t max_requests{0};            ///< rows
  std::int32_t max_blocks_per_request{0};  ///< columns
  std::int32_t block_size{16};             ///< tokens per block (slot mapping, last_page_len)
  std::int32_t max_batch_requests{0};      ///< capacity of the CSR arrays (0: max_requests)
  std::int32_t max_batch_tokens{0};        ///< capacity of the slot mapping (0: no slot mapping)
  std::size_t max_staging_slots{4};        ///< ring depth before sync() blocks on the oldest fence
};

/// One request of a batch: its row, the first position this step computes and how many tokens.
/// The request's sequence length after the step is start + num_tokens (that is what the CSR
/// describes); the slot mapping covers positions [start, start + num_tokens).
struct BatchEntry {
  std::int32_t row{0};
  std::int32_t start{0};
  std::int32_t num_tokens{0};
};

/// Raw device pointers (host pointers on the host backend) for kernels; stable for the table's
/// life. Read them only in stream order after the fences of sync()/prepare_batch().
struct DeviceTableView {
  const std::int32_t* table{nullptr};  ///< [max_requests][max_blocks_per_request]
  std::int32_t max_requests{0};
  std::int32_t max_blocks_per_request{0};
  const std::int64_t* slot_mapping{nullptr};   ///< [max_batch_tokens], -1 padded
  const std::int32_t* kv_indptr{nullptr};      ///< [max_batch_requests + 1]
  const std::int32_t* kv_indices{nullptr};     ///< [max_batch_requests * max_blocks_per_request]
  const std::int32_t* kv_last_page_len{nullptr};  ///< [max_batch_requests], 0 padded
};

/// Host copies of the derived layouts (download_layouts), at full capacity.
struct BatchLayoutsHost {
  std::vector<std::int64_t> slot_mapping;
  std::vector<std::int32_t> kv_indptr;
  std::vector<std::int32_t> kv_indices;
  std::vector<std::int32_t> kv_last_page_len;
};

struct DeviceBlockTableStats {
  std::uint64_t syncs{0};              ///< sync() calls that uploaded something
  std::uint64_t full_uploads{0};       ///< of which whole-table copies (mass edits)
  std::uint64_t cells_uploaded{0};     ///< changed cells moved to the device
  std::uint64_t bytes_uploaded{0};     ///< staging -> device bytes (cells and batch inputs)
  std::uint64_t staging_slots{0};      ///< ring slots allocated so far
  std::uint64_t staging_waits{0};      ///< times the ring was full and the host waited
  std::uint64_t batches_prepared{0};
};

class DeviceBlockTable {
 public:
  /// Over `backend` (built for the same config by a factory). Throws ConfigError on a
  /// non-positive shape or a null backend.
  DeviceBlockTable(const DeviceBlockTableConfig& config,
                   std::unique_ptr<detail::TableBackend> backend);
  DeviceBlockTable(const DeviceBlockTable&) = delete;
  DeviceBlockTable& operator=(const DeviceBlockTable&) = delete;
  ~DeviceBlockTable();

  [[nodiscard]] const DeviceBlockTableConfig& config() const noexcept { return config_; }

  /// Row `row` becomes exactly `blocks` (the rest -1).
  void assign(std::int32_t row, std::span<const std::int32_t> blocks);
  /// Appends `blocks` after the row's current length. Throws std::out_of_range when it overflows.
  void append(std::int32_t row, std::span<const std::int32_t> blocks);
  /// Shortens the row to `length` blocks (no-op if it is not longer).
  void truncate(std::int32_t row, std::int32_t length);
  /// Empties the row.
  void clear(std::int32_t row) { truncate(row, 0); }

  /// The host mirror of one row (its current blocks).
  [[nodiscard]] std::span<const std::int32_t> row(std::int32_t row) const;
  [[nodiscard]] std::int32_t row_length(std::int32_t row) const;
  /// Cells edited since the last sync (before dropping cells edited back to the device value).
  [[nodiscard]] std::size_t pending_cells() const noexcept { return dirty_.size(); }

  /// Uploads the changed cells on `stream`; the fence is ready once the device table holds every
  /// edit made before this call. With nothing to upload, returns the previous upload's fence.
  Fence sync(StreamRef stream);
  /// Computes the slot mapping and the paged-KV CSR for `batch` from the device table, in stream
  /// order. Throws std::out_of_range for rows, capacities or positions outside the table.
  Fence prepare_batch(StreamRef stream, std::span<const BatchEntry> batch);
  /// Copies the whole device table into `out` (size max_requests * max_blocks_per_request) in
  /// stream order; `out` must stay alive until the fence is ready.
  Fence download_table(StreamRef stream, std::span<std::int32_t> out);
  /// Copies the derived layouts into `out` (resized here to full capacity) in stream order.
  Fence download_layouts(StreamRef stream, BatchLayoutsHost& out);

  [[nodiscard]] DeviceTableView view() const noexcept;
  [[nodiscard]] DeviceBlockTableStats stats() const noexcept { return stats_; }

 private:
  struct RingSlot;
  void check_row(std::int32_t row) const;
  void check_stream(StreamRef stream) const;
  void write_cell(std::size_t cell, std::int32_t value);
  RingSlot& acquire_staging(std::size_t bytes);
  void track(const Fence& fence);

  DeviceBlockTableConfig config_;
  std::unique_ptr<detail::TableBackend> backend_;
  std::vector<std::int32_t> mirror_;     // host edits
  std::vector<std::int32_t> on_device_;  // values as of the last sync (what the device will hold)
  std::vector<std::int32_t> row_len_;
  std::vector<std::uint32_t> dirty_;     // edited cells, each once
  std::vector<std::uint8_t> is_dirty_;
  std::vector<std::unique_ptr<RingSlot>> ring_;
  std::uint64_t ring_clock_{0};
  std::vector<Fence> outstanding_;       // every enqueued job not yet seen complete
  Fence last_upload_;
  DeviceBlockTableStats stats_;
};

}  // namespace kvbm
