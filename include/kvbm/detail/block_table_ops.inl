// kvbm/detail/block_table_ops.inl — the device work of DeviceBlockTable, written once as Thrust
// algorithms and KVBM_HOST_DEVICE functors, compiled twice:
//   - src/device_block_table_host.cpp: g++, THRUST_DEVICE_SYSTEM_CPP, policy thrust::cpp::par;
//   - cuda/device_block_table_cuda.cu: nvcc, policy thrust::cuda::par_nosync.on(stream).
// Internal: needs Thrust (CCCL) on the include path. The includer defines KVBM_TABLE_OPS_NS to a
// namespace name unique to its backend, so the two builds of these functors never share a
// mangled name (no ODR clash when both libraries are linked into one binary).
// Only Thrust, <cstdint> and the plain layout structs: no CUDA runtime, no other kvbm headers.
#ifndef KVBM_TABLE_OPS_NS
#error "define KVBM_TABLE_OPS_NS (host_impl / cuda_impl) before including block_table_ops.inl"
#endif

#include <cstdint>

#include "kvbm/detail/table_layout.hpp"

#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/scan.h>
#include <thrust/scatter.h>
#include <thrust/transform.h>

#ifndef KVBM_HOST_DEVICE
#if defined(__CUDACC__)
#define KVBM_HOST_DEVICE __host__ __device__
#else
#define KVBM_HOST_DEVICE
#endif
#endif

namespace kvbm::detail::KVBM_TABLE_OPS_NS {

/// Largest i in [0, n) with offsets[i] <= value (offsets non-decreasing, offsets[0] <= value).
KVBM_HOST_DEVICE inline std::int32_t owner_of(const std::int32_t* offsets, std::int32_t n,
                                              std::int32_t value) {
  std::int32_t lo = 0;
  std::int32_t hi = n;
  while (lo < hi) {
    const std::int32_t mid = lo + (hi - lo) / 2;
    if (offsets[mid] <= value) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo - 1;
}

/// Everything one layout job reads and writes (device pointers).
struct LayoutArgs {
  const std::int32_t* table;
  std::int32_t stride;  // max_blocks_per_request
  std::int32_t block_size;
  const std::int32_t* rows;
  const std::int32_t* starts;
  const std::int32_t* num_tokens;
  std::int32_t* token_offsets;  // [count + 1]
  std::int32_t count;
  std::int64_t* slot_mapping;
  std::int32_t slot_capacity;
  std::int32_t* indptr;  // [batch_capacity + 1]
  std::int32_t* indices;
  std::int32_t indices_capacity;
  std::int32_t* last_page_len;
  std::int32_t batch_capacity;
};

/// A layout job over `arrays`, its inputs packed in `scratch` by staging::BatchArray.
inline LayoutArgs layout_args(const TableDeviceArrays& arrays, std::int32_t* scratch,
                              std::int32_t count) {
  namespace st = ::kvbm::detail::staging;
  const auto n = static_cast<std::size_t>(count);
  return {arrays.table,
          arrays.max_blocks_per_request,
          arrays.block_size,
          scratch + st::offset(st::BatchArray::Rows, n),
          scratch + st::offset(st::BatchArray::Starts, n),
          scratch + st::offset(st::BatchArray::NumTokens, n),
          scratch + st::offset(st::BatchArray::TokenOffsets, n),
          count,
          arrays.slot_mapping,
          arrays.max_batch_tokens,
          arrays.indptr,
          arrays.indices,
          arrays.indices_capacity,
          arrays.last_page_len,
          arrays.max_batch_requests};
}

/// token t of the batch -> block_id * block_size + offset, or -1 (padding / unassigned block).
struct SlotMappingFn {
  LayoutArgs a;
  KVBM_HOST_DEVICE std::int64_t operator()(std::int32_t t) const {
    if (a.count == 0 || t >= a.token_offsets[a.count]) return -1;
    const std::int32_t i = owner_of(a.token_offsets, a.count, t);
    const std::int32_t pos = a.starts[i] + (t - a.token_offsets[i]);
    const std::int32_t column = pos / a.block_size;
    if (column >= a.stride) return -1;
    const std::int32_t block = a.table[static_cast<std::int64_t>(a.rows[i]) * a.stride + column];
    if (block < 0) return -1;
    return static_cast<std::int64_t>(block) * a.block_size + pos % a.block_size;
  }
};

/// Pages of request i: ceil((start + num_tokens) / block_size), capped at the row width.
struct PagesFn {
  LayoutArgs a;
  KVBM_HOST_DEVICE std::int32_t operator()(std::int32_t i) const {
    const std::int32_t length = a.starts[i] + a.num_tokens[i];
    const std::int32_t pages = (length + a.block_size - 1) / a.block_size;
    return pages < a.stride ? pages : a.stride;
  }
};

/// indptr[j] = indptr[count] for the padding requests j > count (they own no pages).
struct PadIndptrFn {
  LayoutArgs a;
  KVBM_HOST_DEVICE void operator()(std::int32_t j) const { a.indptr[j] = a.indptr[a.count]; }
};

/// indices[j]: the j-th page of the batch, or -1 past the last one.
struct IndicesFn {
  LayoutArgs a;
  KVBM_HOST_DEVICE std::int32_t operator()(std::int32_t j) const {
    if (a.count == 0 || j >= a.indptr[a.count]) return -1;
    const std::int32_t i = owner_of(a.indptr, a.count, j);
    const std::int32_t column = j - a.indptr[i];
    return a.table[static_cast<std::int64_t>(a.rows[i]) * a.stride + column];
  }
};

/// last_page_len[i] in [1, block_size] for a non-empty request; 0 for empty and padding ones.
struct LastPageLenFn {
  LayoutArgs a;
  KVBM_HOST_DEVICE std::int32_t operator()(std::int32_t i) const {
    if (i >= a.count) return 0;
    const std::int32_t length = a.starts[i] + a.num_tokens[i];
    return length == 0 ? 0 : (length - 1) % a.block_size + 1;
  }
};

/// table[indices[k]] = values[k] for k < count; `cells` holds count indices then count values.
template <class Policy>
void scatter_cells(Policy&& policy, const std::int32_t* cells, std::int32_t count,
                   std::int32_t* table) {
  if (count == 0) return;
  thrust::scatter(policy, cells + count, cells + 2 * count, cells, table);
}

/// Builds the slot mapping and the paged-KV CSR (see kvbm/device_block_table.hpp).
template <class Policy>
void build_layouts(Policy&& policy, const LayoutArgs& a) {
  using thrust::counting_iterator;
  thrust::fill_n(policy, a.token_offsets, 1, 0);
  if (a.count > 0) {
    thrust::inclusive_scan(policy, a.num_tokens, a.num_tokens + a.count, a.token_offsets + 1);
  }
  if (a.slot_capacity > 0) {
    thrust::transform(policy, counting_iterator<std::int32_t>(0),
                      counting_iterator<std::int32_t>(a.slot_capacity), a.slot_mapping,
                      SlotMappingFn{a});
  }
  thrust::fill_n(policy, a.indptr, 1, 0);
  if (a.count > 0) {
    thrust::transform(policy, counting_iterator<std::int32_t>(0),
                      counting_iterator<std::int32_t>(a.count), a.indptr + 1, PagesFn{a});
    thrust::inclusive_scan(policy, a.indptr + 1, a.indptr + 1 + a.count, a.indptr + 1);
  }
  if (a.count < a.batch_capacity) {
    thrust::for_each(policy, counting_iterator<std::int32_t>(a.count + 1),
                     counting_iterator<std::int32_t>(a.batch_capacity + 1), PadIndptrFn{a});
  }
  thrust::transform(policy, counting_iterator<std::int32_t>(0),
                    counting_iterator<std::int32_t>(a.indices_capacity), a.indices, IndicesFn{a});
  thrust::transform(policy, counting_iterator<std::int32_t>(0),
                    counting_iterator<std::int32_t>(a.batch_capacity), a.last_page_len,
                    LastPageLenFn{a});
}

}  // namespace kvbm::detail::KVBM_TABLE_OPS_NS
