// TransferEngine (kvbm/transfer_engine.hpp): planning, validation and dispatch to the injected
// copy backends (host: src/host/host_copy_backend.cpp, CUDA: cuda/transfer_cuda.cpp).
#include "kvbm/transfer_engine.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "kvbm/nvtx.hpp"

namespace kvbm {

TransferEngine::TransferEngine(std::shared_ptr<detail::CopyBackend> backend)
    : TransferEngine(std::vector<std::shared_ptr<detail::CopyBackend>>{std::move(backend)}) {}

TransferEngine::TransferEngine(std::vector<std::shared_ptr<detail::CopyBackend>> backends) {
  for (auto& backend : backends) {
    if (backend == nullptr) throw ConfigError("TransferEngine: a null copy backend");
    auto& slot = backend->stream_kind() == StreamRef::Kind::Host ? host_backend_ : cuda_backend_;
    if (slot != nullptr) {
      throw ConfigError("TransferEngine: two copy backends for the same kind of stream");
    }
    slot = std::move(backend);
  }
}

std::vector<detail::CopyRun> TransferEngine::plan(const PhysicalPool& src_pool,
                                                  std::span<const BlockId> src_ids,
                                                  const PhysicalPool& dst_pool,
                                                  std::span<const BlockId> dst_ids) {
  if (src_ids.size() != dst_ids.size()) {
    throw std::invalid_argument("copy_blocks: " + std::to_string(src_ids.size()) +
                                " sources for " + std::to_string(dst_ids.size()) +
                                " destinations");
  }
  if (src_pool.block_bytes() != dst_pool.block_bytes()) {
    throw std::invalid_argument("copy_blocks: block_bytes differ between the pools");
  }
  for (const BlockId id : src_ids) static_cast<void>(src_pool.address(id));  // bounds
  for (const BlockId id : dst_ids) static_cast<void>(dst_pool.address(id));
  // Destinations must be distinct (two writers, unordered), and within one pool no block may be
  // both read and written (the copies of one call are unordered on CUDA).
  std::vector<BlockId> sorted_dst(dst_ids.begin(), dst_ids.end());
  std::sort(sorted_dst.begin(), sorted_dst.end());
  if (std::adjacent_find(sorted_dst.begin(), sorted_dst.end()) != sorted_dst.end()) {
    throw std::invalid_argument("copy_blocks: a destination block is listed twice");
  }
  if (src_pool.base() == dst_pool.base()) {
    for (const BlockId id : src_ids) {
      if (std::binary_search(sorted_dst.begin(), sorted_dst.end(), id)) {
        throw std::invalid_argument("copy_blocks: block " + std::to_string(id) +
                                    " is both a source and a destination");
      }
    }
  }
  std::vector<detail::CopyRun> runs;
  for (std::size_t i = 0; i < src_ids.size();) {
    std::size_t n = 1;
    while (i + n < src_ids.size() && src_ids[i + n] == src_ids[i] + n &&
           dst_ids[i + n] == dst_ids[i] + n) {
      ++n;
    }
    runs.push_back({src_pool.address(src_ids[i]), dst_pool.address(dst_ids[i]),
                    src_pool.block_bytes(), src_pool.block_stride(), dst_pool.block_stride(), n});
    i += n;
  }
  return runs;
}

Fence TransferEngine::copy_blocks(const PhysicalPool& src_pool, std::span<const BlockId> src_ids,
                                  const PhysicalPool& dst_pool, std::span<const BlockId> dst_ids,
                                  StreamRef stream) {
  KVBM_NVTX_RANGE_PAYLOAD("TransferEngine::copy_blocks", src_ids.size());
  std::vector<detail::CopyRun> runs = plan(src_pool, src_ids, dst_pool, dst_ids);
  if (runs.empty()) return Fence{};
  detail::CopyBackend* backend = stream.is_host() ? host_backend_.get() : cuda_backend_.get();
  if (backend == nullptr) {
    throw Error(stream.is_host()
                    ? "TransferEngine: no copy backend for host streams (give the engine "
                      "kvbm::make_host_copy_backend())"
                    : "TransferEngine: no copy backend for CUDA streams (build the engine with "
                      "kvbm::make_cuda_transfer_engine)");
  }
  const std::size_t copies = runs.size();
  Fence fence = backend->copy(stream, src_pool.kind(), dst_pool.kind(), std::move(runs));
  calls_.fetch_add(1, std::memory_order_relaxed);
  copies_.fetch_add(copies, std::memory_order_relaxed);
  blocks_.fetch_add(src_ids.size(), std::memory_order_relaxed);
  bytes_.fetch_add(src_ids.size() * src_pool.block_bytes(), std::memory_order_relaxed);
  return fence;
}

TransferStats TransferEngine::stats() const noexcept {
  return {calls_.load(std::memory_order_relaxed), copies_.load(std::memory_order_relaxed),
          blocks_.load(std::memory_order_relaxed), bytes_.load(std::memory_order_relaxed)};
}

}  // namespace kvbm
