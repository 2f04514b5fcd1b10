// kvbm/detail/table_layout.hpp — the memory layout every DeviceBlockTable backend shares: what it
// allocates, how a staging buffer is packed, and the pointers the table kernels read. Internal.
// Plain data and constexpr arithmetic only (<cstddef>, <cstdint>), so nvcc and the Thrust-CPP
// build include it alike; DeviceBlockTable packs staging buffers by these rules and the backends
// unpack them by the same rules, so neither restates an offset.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvbm::detail {

/// Element counts of the arrays a backend owns (from a normalized DeviceBlockTableConfig).
struct TableExtents {
  std::size_t table;          ///< int32 [max_requests * max_blocks_per_request], -1 initialised
  std::size_t slot_mapping;   ///< int64 [max_batch_tokens], -1 initialised
  std::size_t indptr;         ///< int32 [max_batch_requests + 1], 0 initialised
  std::size_t indices;        ///< int32 [max_batch_requests * max_blocks_per_request], -1
  std::size_t last_page_len;  ///< int32 [max_batch_requests], 0 initialised
};

/// A backend's device arrays plus the shape the kernels need; stable for the table's life.
struct TableDeviceArrays {
  std::int32_t* table;
  std::int64_t* slot_mapping;
  std::int32_t* indptr;
  std::int32_t* indices;
  std::int32_t* last_page_len;
  std::int32_t max_blocks_per_request;
  std::int32_t block_size;
  std::int32_t max_batch_tokens;
  std::int32_t max_batch_requests;
  std::int32_t indices_capacity;
};

/// Staging buffer packing (int32 elements). A cell upload is `count` cell indices then `count`
/// values. A layout job is `count` rows, `count` starts and `count` token counts (uploaded), then
/// `count + 1` token offsets the device writes into the same scratch.
namespace staging {
[[nodiscard]] constexpr std::size_t cell_upload_ints(std::size_t count) noexcept {
  return 2 * count;
}
[[nodiscard]] constexpr std::size_t batch_input_ints(std::size_t count) noexcept {
  return 3 * count;
}
[[nodiscard]] constexpr std::size_t layout_scratch_ints(std::size_t count) noexcept {
  return 4 * count + 1;
}
/// Offsets (in ints) of the layout job's arrays within the scratch.
enum class BatchArray : std::size_t { Rows = 0, Starts = 1, NumTokens = 2, TokenOffsets = 3 };
[[nodiscard]] constexpr std::size_t offset(BatchArray array, std::size_t count) noexcept {
  return static_cast<std::size_t>(array) * count;
}
}  // namespace staging

}  // namespace kvbm::detail
