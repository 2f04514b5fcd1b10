// kvbm/transfer_engine.hpp — TransferEngine: block copies between tiers, returning a Fence.
//
// The engine (kvbm::device) plans and validates; the copies themselves go to the backends it was
// given, one per kind of stream: kvbm::make_host_copy_backend() (kvbm/host/backends.hpp) and
// kvbm::make_cuda_copy_backend() (kvbm/cuda/backends.hpp).
// copy_blocks(src_pool, src_ids, dst_pool, dst_ids, stream) copies block src_ids[i] to
// dst_ids[i]. Runs where both ids advance by one are coalesced into a single copy (one memcpy /
// cudaMemcpyAsync for dense pools, one strided 2D copy otherwise). On a host stream the copies are
// memcpy on the stream's worker; on a CUDA stream (engine from kvbm::make_cuda_transfer_engine, kvbm/cuda/backends.hpp)
// they are cudaMemcpyAsync and the fence is a pooled CUDA event. The returned fence is ready once
// every byte has landed; attach it to the source pins and the destination blocks so neither slot
// is recycled while the copy runs: the handle overload below does that for you.
// Ownership: the engine owns nothing but its backend and counters; pools and buffers are the
// caller's and must outlive the fence. Thread safety: copy_blocks may be called concurrently.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/errors.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/stream_ref.hpp"
#include "kvbm/types.hpp"

namespace kvbm {

namespace detail {

/// One coalesced copy: `blocks` blocks of `block_bytes`, rows `src_pitch` / `dst_pitch` apart.
struct CopyRun {
  const std::byte* src;
  std::byte* dst;
  std::size_t block_bytes;
  std::size_t src_pitch;
  std::size_t dst_pitch;
  std::size_t blocks;

  /// Rows are back to back on both sides: one flat copy of block_bytes * blocks serves the run.
  [[nodiscard]] bool is_dense() const noexcept {
    return src_pitch == block_bytes && dst_pitch == block_bytes;
  }
};

/// Backend hook (host: src/host/, CUDA: cuda/). For library backends.
class CopyBackend {
 public:
  virtual ~CopyBackend() = default;
  /// The kind of stream this backend enqueues on.
  [[nodiscard]] virtual StreamRef::Kind stream_kind() const noexcept = 0;
  /// Enqueues the runs on `stream` (of a kind this backend accepts) and returns their fence.
  virtual Fence copy(StreamRef stream, MemoryKind src_kind, MemoryKind dst_kind,
                     std::vector<CopyRun> runs) = 0;
};

}  // namespace detail

struct TransferStats {
  std::uint64_t calls{0};   ///< copy_blocks calls that copied something
  std::uint64_t copies{0};  ///< coalesced copies issued (memcpy / cudaMemcpy*Async calls)
  std::uint64_t blocks{0};
  std::uint64_t bytes{0};
};

class TransferEngine {
 public:
  /// Serves the streams of `backend`'s kind (kvbm::make_host_copy_backend() in
  /// kvbm/host/backends.hpp, kvbm::make_cuda_copy_backend() in kvbm/cuda/backends.hpp).
  explicit TransferEngine(std::shared_ptr<detail::CopyBackend> backend);
  /// Each backend serves the streams of its kind. Throws ConfigError for a null backend or two
  /// backends of one kind.
  explicit TransferEngine(std::vector<std::shared_ptr<detail::CopyBackend>> backends);

  /// Copies src_ids[i] -> dst_ids[i]. Throws std::invalid_argument (size / block_bytes mismatch,
  /// a destination listed twice, a destination that is also a source in the same pool),
  /// std::out_of_range (id outside a pool) and kvbm::Error (a stream kind with no backend, device
  /// memory on a host stream) before anything is enqueued. An empty copy returns a ready fence.
  Fence copy_blocks(const PhysicalPool& src_pool, std::span<const BlockId> src_ids,
                    const PhysicalPool& dst_pool, std::span<const BlockId> dst_ids,
                    StreamRef stream);

  /// Same with slot handles (ImmutableBlock / LifecyclePinRef sources, MutableBlock
  /// destinations, or anything with block_id(), manager_id() and add_fence(Fence)): after
  /// enqueueing, the fence is attached to every source and destination slot, so the block
  /// manager keeps them out of circulation until the copy has finished.
  template <class SrcHandle, class DstHandle>
  Fence copy_blocks(const PhysicalPool& src_pool, std::span<SrcHandle> src_blocks,
                    const PhysicalPool& dst_pool, std::span<DstHandle> dst_blocks,
                    StreamRef stream) {
    std::vector<BlockId> src_ids;
    std::vector<BlockId> dst_ids;
    src_ids.reserve(src_blocks.size());
    dst_ids.reserve(dst_blocks.size());
    for (const auto& b : src_blocks) {
      if (b.manager_id() != src_pool.manager_id()) throw ForeignBlock("copy_blocks: source block of another manager");
      src_ids.push_back(b.block_id());
    }
    for (const auto& b : dst_blocks) {
      if (b.manager_id() != dst_pool.manager_id()) throw ForeignBlock("copy_blocks: destination block of another manager");
      dst_ids.push_back(b.block_id());
    }
    Fence fence = copy_blocks(src_pool, std::span<const BlockId>{src_ids}, dst_pool,
                              std::span<const BlockId>{dst_ids}, stream);
    for (const auto& b : src_blocks) b.add_fence(fence);
    for (const auto& b : dst_blocks) b.add_fence(fence);
    return fence;
  }

  [[nodiscard]] TransferStats stats() const noexcept;

  /// Splits a copy into coalesced runs (exposed for tests and benchmarks).
  [[nodiscard]] static std::vector<detail::CopyRun> plan(const PhysicalPool& src_pool,
                                                         std::span<const BlockId> src_ids,
                                                         const PhysicalPool& dst_pool,
                                                         std::span<const BlockId> dst_ids);

 private:
  std::shared_ptr<detail::CopyBackend> host_backend_;
  std::shared_ptr<detail::CopyBackend> cuda_backend_;
  std::atomic<std::uint64_t> calls_{0};
  std::atomic<std::uint64_t> copies_{0};
  std::atomic<std::uint64_t> blocks_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

}  // namespace kvbm
