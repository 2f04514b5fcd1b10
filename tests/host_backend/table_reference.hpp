// A plain reference model of DeviceBlockTable and its derived layouts (loops, no Thrust), shared
// by the host-backend and CUDA tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "kvbm/device_block_table.hpp"

namespace kvbm::testing {

struct ReferenceTable {
  explicit ReferenceTable(const DeviceBlockTableConfig& c)
      : config{c}, rows(static_cast<std::size_t>(c.max_requests)) {
    if (config.max_batch_requests == 0) config.max_batch_requests = config.max_requests;
  }

  [[nodiscard]] std::vector<std::int32_t> dense() const {
    std::vector<std::int32_t> out(rows.size() * static_cast<std::size_t>(config.max_blocks_per_request), -1);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      std::copy(rows[r].begin(), rows[r].end(),
                out.begin() + static_cast<std::ptrdiff_t>(r * config.max_blocks_per_request));
    }
    return out;
  }

  [[nodiscard]] std::int32_t cell(std::int32_t row, std::int32_t column) const {
    const auto& r = rows[static_cast<std::size_t>(row)];
    return column < static_cast<std::int32_t>(r.size()) ? r[static_cast<std::size_t>(column)] : -1;
  }

  [[nodiscard]] BatchLayoutsHost layouts(const std::vector<BatchEntry>& batch) const {
    const std::int32_t bs = config.block_size;
    const std::int32_t width = config.max_blocks_per_request;
    BatchLayoutsHost out;
    out.slot_mapping.assign(static_cast<std::size_t>(config.max_batch_tokens), -1);
    out.kv_indptr.assign(static_cast<std::size_t>(config.max_batch_requests) + 1, 0);
    out.kv_indices.assign(static_cast<std::size_t>(config.max_batch_requests) * width, -1);
    out.kv_last_page_len.assign(static_cast<std::size_t>(config.max_batch_requests), 0);
    std::size_t token = 0;
    std::int32_t nnz = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const BatchEntry& e = batch[i];
      for (std::int32_t p = e.start; p < e.start + e.num_tokens; ++p, ++token) {
        const std::int32_t block = cell(e.row, p / bs);
        out.slot_mapping[token] = block < 0 ? -1 : std::int64_t{block} * bs + p % bs;
      }
      const std::int32_t length = e.start + e.num_tokens;
      const std::int32_t pages = std::min((length + bs - 1) / bs, width);
      for (std::int32_t k = 0; k < pages; ++k) out.kv_indices[static_cast<std::size_t>(nnz + k)] = cell(e.row, k);
      nnz += pages;
      out.kv_indptr[i + 1] = nnz;
      out.kv_last_page_len[i] = length == 0 ? 0 : (length - 1) % bs + 1;
    }
    for (std::size_t i = batch.size() + 1; i < out.kv_indptr.size(); ++i) out.kv_indptr[i] = nnz;
    return out;
  }

  DeviceBlockTableConfig config;
  std::vector<std::vector<std::int32_t>> rows;
};

/// Applies one random edit to both the table and the model.
inline void random_edit(std::mt19937& rng, DeviceBlockTable& table, ReferenceTable& model) {
  const auto& c = model.config;
  const std::int32_t row = std::uniform_int_distribution<std::int32_t>(0, c.max_requests - 1)(rng);
  auto& ref_row = model.rows[static_cast<std::size_t>(row)];
  const auto len = static_cast<std::int32_t>(ref_row.size());
  auto random_blocks = [&](std::int32_t n) {
    std::vector<std::int32_t> blocks(static_cast<std::size_t>(n));
    for (auto& b : blocks) b = std::uniform_int_distribution<std::int32_t>(0, 100000)(rng);
    return blocks;
  };
  switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
    case 0:
    case 1: {  // assign
      const auto blocks = random_blocks(std::uniform_int_distribution<std::int32_t>(0, c.max_blocks_per_request)(rng));
      table.assign(row, blocks);
      ref_row = blocks;
      break;
    }
    case 2: {  // truncate
      const std::int32_t n = std::uniform_int_distribution<std::int32_t>(0, len)(rng);
      table.truncate(row, n);
      ref_row.resize(static_cast<std::size_t>(n));
      break;
    }
    case 3:  // clear
      table.clear(row);
      ref_row.clear();
      break;
    case 4: {  // truncate then re-append the same blocks (cells edited back: nothing to move)
      const std::int32_t n = std::uniform_int_distribution<std::int32_t>(0, len)(rng);
      const std::vector<std::int32_t> tail(ref_row.begin() + n, ref_row.end());
      table.truncate(row, n);
      table.append(row, tail);
      break;
    }
    default: {  // append (decode: mostly one block)
      const std::int32_t room = c.max_blocks_per_request - len;
      if (room == 0) break;
      const std::int32_t n = std::uniform_int_distribution<std::int32_t>(1, std::min(room, 3))(rng);
      const auto blocks = random_blocks(n);
      table.append(row, blocks);
      ref_row.insert(ref_row.end(), blocks.begin(), blocks.end());
      break;
    }
  }
}

/// A random batch over the model's rows (positions within each row's blocks or beyond them).
inline std::vector<BatchEntry> random_batch(std::mt19937& rng, const ReferenceTable& model) {
  const auto& c = model.config;
  const std::int32_t count = std::uniform_int_distribution<std::int32_t>(0, c.max_batch_requests)(rng);
  std::vector<BatchEntry> batch;
  std::int32_t tokens_left = c.max_batch_tokens;
  for (std::int32_t i = 0; i < count; ++i) {
    BatchEntry e;
    e.row = std::uniform_int_distribution<std::int32_t>(0, c.max_requests - 1)(rng);
    const std::int32_t row_tokens = c.max_blocks_per_request * c.block_size;
    e.start = std::uniform_int_distribution<std::int32_t>(0, row_tokens)(rng);
    const std::int32_t max_new = std::min(row_tokens - e.start, std::max(tokens_left, 0));
    e.num_tokens = std::uniform_int_distribution<std::int32_t>(0, std::min(max_new, 2 * c.block_size))(rng);
    tokens_left -= e.num_tokens;
    batch.push_back(e);
  }
  return batch;
}

}  // namespace kvbm::testing
