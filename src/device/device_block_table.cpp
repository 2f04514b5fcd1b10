// DeviceBlockTable: host mirror, deltas, staging ring (kvbm/device_block_table.hpp).
// The backend (host: src/host/, CUDA: cuda/) owns memory and device work; it is always injected.
#include "kvbm/device_block_table.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "kvbm/detail/table_backend.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/nvtx.hpp"

namespace kvbm {

struct DeviceBlockTable::RingSlot {
  std::unique_ptr<detail::StagingBuffer> buffer;
  Fence fence;              // the last job that read this slot
  std::uint64_t last_use{0};
};

namespace detail {

DeviceBlockTableConfig normalize_table_config(DeviceBlockTableConfig config) {
  if (config.max_requests <= 0 || config.max_blocks_per_request <= 0 || config.block_size <= 0) {
    throw ConfigError("DeviceBlockTable: max_requests, max_blocks_per_request and block_size must be positive");
  }
  if (config.max_batch_requests < 0 || config.max_batch_tokens < 0) {
    throw ConfigError("DeviceBlockTable: negative batch capacity");
  }
  if (static_cast<std::int64_t>(config.max_requests) * config.max_blocks_per_request >
      std::int64_t{1} << 31) {
    throw ConfigError("DeviceBlockTable: table larger than 2^31 cells");
  }
  if (config.max_batch_requests == 0) config.max_batch_requests = config.max_requests;
  if (config.max_staging_slots == 0) config.max_staging_slots = 1;
  return config;
}

}  // namespace detail

DeviceBlockTable::DeviceBlockTable(const DeviceBlockTableConfig& config,
                                   std::unique_ptr<detail::TableBackend> backend)
    : config_{detail::normalize_table_config(config)}, backend_{std::move(backend)} {
  if (backend_ == nullptr) throw ConfigError("DeviceBlockTable: no backend");
  const auto cells = static_cast<std::size_t>(config_.max_requests) *
                     static_cast<std::size_t>(config_.max_blocks_per_request);
  mirror_.assign(cells, -1);
  on_device_.assign(cells, -1);
  is_dirty_.assign(cells, 0);
  row_len_.assign(static_cast<std::size_t>(config_.max_requests), 0);
}

DeviceBlockTable::~DeviceBlockTable() {
  // Jobs still in flight read our staging buffers and write the backend's memory.
  for (const Fence& fence : outstanding_) fence.wait();
}

void DeviceBlockTable::check_row(std::int32_t row) const {
  if (row < 0 || row >= config_.max_requests) {
    throw std::out_of_range("DeviceBlockTable: row " + std::to_string(row) + " outside [0, " +
                            std::to_string(config_.max_requests) + ")");
  }
}

void DeviceBlockTable::check_stream(StreamRef stream) const {
  if (stream.kind() != backend_->stream_kind()) {
    throw Error(std::string{"DeviceBlockTable: this table runs on "} +
                (backend_->stream_kind() == StreamRef::Kind::Host ? "a host" : "a CUDA") +
                " stream");
  }
}

void DeviceBlockTable::write_cell(std::size_t cell, std::int32_t value) {
  mirror_[cell] = value;
  if (is_dirty_[cell] == 0) {
    is_dirty_[cell] = 1;
    dirty_.push_back(static_cast<std::uint32_t>(cell));
  }
}

void DeviceBlockTable::assign(std::int32_t row, std::span<const std::int32_t> blocks) {
  check_row(row);
  if (blocks.size() > static_cast<std::size_t>(config_.max_blocks_per_request)) {
    throw std::out_of_range("DeviceBlockTable::assign: row longer than max_blocks_per_request");
  }
  const auto base = static_cast<std::size_t>(row) * config_.max_blocks_per_request;
  const auto old_len = static_cast<std::size_t>(row_len_[row]);
  for (std::size_t c = 0; c < blocks.size(); ++c) {
    if (mirror_[base + c] != blocks[c]) write_cell(base + c, blocks[c]);
  }
  for (std::size_t c = blocks.size(); c < old_len; ++c) write_cell(base + c, -1);
  row_len_[row] = static_cast<std::int32_t>(blocks.size());
}

void DeviceBlockTable::append(std::int32_t row, std::span<const std::int32_t> blocks) {
  check_row(row);
  const auto old_len = static_cast<std::size_t>(row_len_[row]);
  if (old_len + blocks.size() > static_cast<std::size_t>(config_.max_blocks_per_request)) {
    throw std::out_of_range("DeviceBlockTable::append: row " + std::to_string(row) +
                            " would exceed max_blocks_per_request");
  }
  const auto base = static_cast<std::size_t>(row) * config_.max_blocks_per_request + old_len;
  for (std::size_t c = 0; c < blocks.size(); ++c) write_cell(base + c, blocks[c]);
  row_len_[row] = static_cast<std::int32_t>(old_len + blocks.size());
}

void DeviceBlockTable::truncate(std::int32_t row, std::int32_t length) {
  check_row(row);
  if (length < 0) throw std::out_of_range("DeviceBlockTable::truncate: negative length");
  if (length >= row_len_[row]) return;
  const auto base = static_cast<std::size_t>(row) * config_.max_blocks_per_request;
  for (auto c = static_cast<std::size_t>(length); c < static_cast<std::size_t>(row_len_[row]); ++c) {
    write_cell(base + c, -1);
  }
  row_len_[row] = length;
}

std::span<const std::int32_t> DeviceBlockTable::row(std::int32_t row) const {
  check_row(row);
  const auto base = static_cast<std::size_t>(row) * config_.max_blocks_per_request;
  return {mirror_.data() + base, static_cast<std::size_t>(row_len_[row])};
}

std::int32_t DeviceBlockTable::row_length(std::int32_t row) const {
  check_row(row);
  return row_len_[row];
}

void DeviceBlockTable::track(const Fence& fence) {
  std::erase_if(outstanding_, [](const Fence& f) { return f.ready(); });
  outstanding_.push_back(fence);
}

DeviceBlockTable::RingSlot& DeviceBlockTable::acquire_staging(std::size_t bytes) {
  // 1. A slot whose last job completed: the smallest one that fits, else any completed one
  //    (reallocated bigger). Fences are polled, never waited on, here.
  RingSlot* fit = nullptr;
  RingSlot* completed = nullptr;
  for (auto& slot : ring_) {
    if (!slot->fence.ready()) continue;
    if (slot->buffer->capacity() >= bytes &&
        (fit == nullptr || slot->buffer->capacity() < fit->buffer->capacity())) {
      fit = slot.get();
    }
    if (completed == nullptr) completed = slot.get();
  }
  RingSlot* chosen = fit != nullptr ? fit : completed;
  // 2. Grow the ring while it is below its depth.
  if (chosen == nullptr && ring_.size() < config_.max_staging_slots) {
    ring_.push_back(std::make_unique<RingSlot>());
    chosen = ring_.back().get();
  }
  // 3. Full and everything in flight: wait for the oldest job (never reuse a busy slot).
  if (chosen == nullptr) {
    chosen = std::min_element(ring_.begin(), ring_.end(), [](const auto& a, const auto& b) {
               return a->last_use < b->last_use;
             })->get();
    chosen->fence.wait();
    ++stats_.staging_waits;
  }
  if (chosen->buffer == nullptr || chosen->buffer->capacity() < bytes) {
    const std::size_t grown =
        chosen->buffer == nullptr ? bytes : std::max(bytes, 2 * chosen->buffer->capacity());
    chosen->buffer = nullptr;  // free the old one first (its job completed)
    chosen->buffer = backend_->make_staging(std::max<std::size_t>(grown, 256));
    ++stats_.staging_slots;
  }
  chosen->last_use = ++ring_clock_;
  return *chosen;
}

Fence DeviceBlockTable::sync(StreamRef stream) {
  KVBM_NVTX_RANGE_PAYLOAD("DeviceBlockTable::sync", dirty_.size());
  check_stream(stream);
  // Keep only cells whose final value differs from what the device holds (last write wins: each
  // cell appears once, so the scatter has no duplicate indices).
  std::size_t count = 0;
  for (const std::uint32_t cell : dirty_) {
    is_dirty_[cell] = 0;
    if (mirror_[cell] != on_device_[cell]) dirty_[count++] = cell;
  }
  dirty_.resize(count);
  if (count == 0) return last_upload_;

  Fence fence;
  if (2 * count >= mirror_.size()) {
    // Mass edit: 4 bytes per cell of the whole table beat 8 per changed cell; no scatter.
    RingSlot& slot = acquire_staging(mirror_.size() * sizeof(std::int32_t));
    std::memcpy(slot.buffer->host(), mirror_.data(), mirror_.size() * sizeof(std::int32_t));
    on_device_ = mirror_;
    dirty_.clear();
    fence = backend_->upload_table(stream, *slot.buffer);
    slot.fence = fence;
    ++stats_.full_uploads;
    stats_.bytes_uploaded += mirror_.size() * sizeof(std::int32_t);
  } else {
    const std::size_t bytes = detail::staging::cell_upload_ints(count) * sizeof(std::int32_t);
    RingSlot& slot = acquire_staging(bytes);
    auto* indices = reinterpret_cast<std::int32_t*>(slot.buffer->host());
    std::int32_t* values = indices + count;
    for (std::size_t k = 0; k < count; ++k) {
      const std::uint32_t cell = dirty_[k];
      indices[k] = static_cast<std::int32_t>(cell);
      values[k] = mirror_[cell];
      on_device_[cell] = mirror_[cell];
    }
    dirty_.clear();
    fence = backend_->upload_cells(stream, *slot.buffer, count);
    slot.fence = fence;
    stats_.bytes_uploaded += bytes;
  }
  track(fence);
  last_upload_ = fence;
  ++stats_.syncs;
  stats_.cells_uploaded += count;
  return fence;
}

Fence DeviceBlockTable::prepare_batch(StreamRef stream, std::span<const BatchEntry> batch) {
  KVBM_NVTX_RANGE_PAYLOAD("DeviceBlockTable::prepare_batch", batch.size());
  check_stream(stream);
  if (batch.size() > static_cast<std::size_t>(config_.max_batch_requests)) {
    throw std::out_of_range("DeviceBlockTable::prepare_batch: batch larger than max_batch_requests");
  }
  const std::int64_t max_tokens =
      static_cast<std::int64_t>(config_.max_blocks_per_request) * config_.block_size;
  std::int64_t total_tokens = 0;
  for (const BatchEntry& e : batch) {
    check_row(e.row);
    if (e.start < 0 || e.num_tokens < 0 ||
        static_cast<std::int64_t>(e.start) + e.num_tokens > max_tokens) {
      throw std::out_of_range("DeviceBlockTable::prepare_batch: positions outside row " +
                              std::to_string(e.row));
    }
    total_tokens += e.num_tokens;
  }
  if (config_.max_batch_tokens > 0 && total_tokens > config_.max_batch_tokens) {
    throw std::out_of_range("DeviceBlockTable::prepare_batch: more tokens than max_batch_tokens");
  }
  const std::size_t count = batch.size();
  RingSlot& slot = acquire_staging(detail::layout_scratch_bytes(count));
  auto* scratch = reinterpret_cast<std::int32_t*>(slot.buffer->host());
  namespace st = detail::staging;
  std::int32_t* rows = scratch + st::offset(st::BatchArray::Rows, count);
  std::int32_t* starts = scratch + st::offset(st::BatchArray::Starts, count);
  std::int32_t* num_tokens = scratch + st::offset(st::BatchArray::NumTokens, count);
  for (std::size_t i = 0; i < count; ++i) {
    rows[i] = batch[i].row;
    starts[i] = batch[i].start;
    num_tokens[i] = batch[i].num_tokens;
  }
  Fence fence = backend_->build_layouts(stream, *slot.buffer, count);
  slot.fence = fence;
  track(fence);
  ++stats_.batches_prepared;
  stats_.bytes_uploaded += st::batch_input_ints(count) * sizeof(std::int32_t);
  return fence;
}

Fence DeviceBlockTable::download_table(StreamRef stream, std::span<std::int32_t> out) {
  check_stream(stream);
  if (out.size() != mirror_.size()) {
    throw std::invalid_argument("DeviceBlockTable::download_table: wrong output size");
  }
  Fence fence = backend_->download_table(stream, out.data());
  track(fence);
  return fence;
}

Fence DeviceBlockTable::download_layouts(StreamRef stream, BatchLayoutsHost& out) {
  check_stream(stream);
  const auto batch = static_cast<std::size_t>(config_.max_batch_requests);
  out.slot_mapping.assign(static_cast<std::size_t>(config_.max_batch_tokens), 0);
  out.kv_indptr.assign(batch + 1, 0);
  out.kv_indices.assign(batch * static_cast<std::size_t>(config_.max_blocks_per_request), 0);
  out.kv_last_page_len.assign(batch, 0);
  Fence fence = backend_->download_layouts(stream, out);
  track(fence);
  return fence;
}

DeviceTableView DeviceBlockTable::view() const noexcept { return backend_->view(); }

}  // namespace kvbm
