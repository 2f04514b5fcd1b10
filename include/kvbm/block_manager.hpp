// kvbm/block_manager.hpp — BlockManager<Tier>: one tier's fixed pool of KV block slots.
//
// A slot is Reset (free list) -> Mutable (allocated) -> Staged (complete) -> Primary or
// Duplicate (registered) -> Inactive (cached, evictable) -> Primary again on a cache hit, or
// Mutable again when evicted. See README.md for the state diagram.
//
// Ownership: BlockManager is a cheap handle; copies share one pool. Blocks, pins and weak
// references keep the pool alive after every manager handle is gone.
// Thread safety: every method may be called concurrently from any thread; blocks may be dropped
// on any thread. Each pool has one mutex; each batch call takes it at most once (match_blocks
// takes blocks that other holders keep alive without it). Frequency touches run after the lock
// is released.
// Complexity: O(1) expected per block for every call (no scan of the pool); no heap allocation
// per block in steady state beyond the result vectors the calls return.
// Invariant at every quiescent point: free + inactive + held == total_blocks().
// Exceptions: every call gives the strong guarantee. A call that throws (std::bad_alloc included)
// leaves the pool exactly as before (free list, inactive order, registry, metrics) and the
// caller's blocks with the caller. A moved-from BlockManager names no pool: every member throws
// InvalidHandle.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvbm/blocks.hpp"
#include "kvbm/detail/reserve_more.hpp"
#include "kvbm/eviction.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/kv_events.hpp"
#include "kvbm/metrics.hpp"
#include "kvbm/registry.hpp"
#include "kvbm/types.hpp"

namespace kvbm {

/// Blocks from allocate_blocks_stream_ordered: some slots may still have transfers in flight;
/// work on them must be ordered after every fence in `wait_for` (cudaStreamWaitEvent, or
/// HostStream::wait), or the caller must wait on them.
template <class Tier>
struct FencedAllocation {
  std::vector<MutableBlock<Tier>> blocks;
  std::vector<SequenceHash> evicted;
  std::vector<Fence> wait_for;
};

namespace detail {
struct BindingAccess;
/// Builds a store after validating `config`; throws ConfigError naming the problem.
StorePtr build_store(std::optional<std::size_t> block_count, std::uint32_t block_size,
                     const std::optional<BlockRegistry>& registry, DuplicationPolicy policy,
                     const EvictionConfig& eviction, bool default_reset_on_release,
                     const void* tier_key, const EventSettings& events = {});
}  // namespace detail

template <class Tier>
class BlockManager {
 public:
  using Mutable = MutableBlock<Tier>;
  using Complete = CompleteBlock<Tier>;
  using Immutable = ImmutableBlock<Tier>;
  using Weak = WeakBlock<Tier>;

  class Builder {
   public:
    /// Required, > 0.
    Builder& block_count(std::size_t n) {
      block_count_ = n;
      return *this;
    }
    /// Tokens per block; a power of two in 1..1024. Default 16.
    Builder& block_size(std::uint32_t n) {
      block_size_ = n;
      return *this;
    }
    /// Required; may be shared with the managers of other tiers.
    Builder& registry(BlockRegistry r) {
      registry_ = std::move(r);
      return *this;
    }
    Builder& duplication_policy(DuplicationPolicy p) {
      policy_ = p;
      return *this;
    }
    /// Chooses the eviction backend (default: lineage). Its options (multi-LRU thresholds,
    /// lineage order) keep their defaults unless the named setters below set them.
    Builder& backend(EvictionBackend b) {
      eviction_.backend = b;
      return *this;
    }
    Builder& fifo_backend() { return backend(EvictionBackend::Fifo); }
    Builder& lru_backend() { return backend(EvictionBackend::Lru); }
    Builder& multi_lru_backend(MultiLruThresholds thresholds = {}) {
      eviction_.thresholds = thresholds;
      return backend(EvictionBackend::MultiLru);
    }
    Builder& lineage_backend(LineageEviction order = LineageEviction::Tick) {
      eviction_.lineage = order;
      return backend(EvictionBackend::Lineage);
    }
    /// Store-wide default of the evict-on-reset flag (false: released primaries are cached).
    Builder& default_reset_on_release(bool value) {
      default_reset_on_release_ = value;
      return *this;
    }
    /// Reports this pool's KV events to `sink` (kvbm/kv_events.hpp); null: no events, no cost.
    Builder& event_sink(std::shared_ptr<KvEventSink> sink) {
      events_.sink = std::move(sink);
      return *this;
    }
    /// The medium named in events (default: "GPU" for G1, "CPU" for G2, "DISK" for G3).
    Builder& event_medium(std::optional<std::string> medium) {
      events_.medium = std::move(medium);
      return *this;
    }
    Builder& event_policy(KvEventPolicy policy) {
      events_.policy = policy;
      return *this;
    }
    /// Validates and builds. Throws ConfigError naming the problem.
    [[nodiscard]] BlockManager build() const {
      return BlockManager(detail::build_store(block_count_, block_size_, registry_, policy_,
                                              eviction_, default_reset_on_release_,
                                              detail::tier_key<Tier>(), events_));
    }

   private:
    std::optional<std::size_t> block_count_;
    std::uint32_t block_size_ = 16;
    std::optional<BlockRegistry> registry_;
    DuplicationPolicy policy_ = DuplicationPolicy::Allow;
    detail::EvictionConfig eviction_{};
    bool default_reset_on_release_ = false;
    detail::EventSettings events_{nullptr, default_medium<Tier>(), KvEventPolicy::All};
  };

  [[nodiscard]] static Builder builder() { return Builder{}; }

  [[nodiscard]] ManagerId id() const { return live("BlockManager::id").id(); }
  [[nodiscard]] std::size_t total_blocks() const {
    return live("BlockManager::total_blocks").total_blocks();
  }
  [[nodiscard]] std::size_t block_size() const {
    return live("BlockManager::block_size").block_size();
  }
  /// Free + inactive, one consistent snapshot.
  [[nodiscard]] std::size_t available_blocks() const {
    return live("BlockManager::available_blocks").available_blocks();
  }
  [[nodiscard]] DuplicationPolicy duplication_policy() const {
    return live("BlockManager::duplication_policy").duplication_policy();
  }
  [[nodiscard]] const BlockRegistry& registry() const {
    return live("BlockManager::registry").registry();
  }
  [[nodiscard]] MetricsSnapshot metrics() const {
    return live("BlockManager::metrics").metrics().snapshot();
  }

  /// All-or-nothing: `n` blocks from the free list (FIFO), then by evicting inactive blocks in
  /// policy order; nullopt (nothing changed) if free + inactive < n. n == 0 gives an empty vector.
  /// n > total_blocks() is nullopt at once (nothing is reserved for it).
  [[nodiscard]] std::optional<std::vector<Mutable>> allocate_blocks(std::size_t n) {
    return allocate(n, nullptr);
  }
  /// Same, plus the hashes evicted to satisfy it (in eviction order).
  [[nodiscard]] std::optional<std::pair<std::vector<Mutable>, std::vector<SequenceHash>>>
  allocate_blocks_with_evictions(std::size_t n) {
    std::vector<SequenceHash> evicted;
    auto blocks = allocate(n, &evicted);
    if (!blocks) return std::nullopt;
    return std::pair{std::move(*blocks), std::move(evicted)};
  }

  /// Like allocate_blocks, but when enough slots exist and only their fences are pending, waits
  /// for those fences (oldest first) instead of failing. nullopt only if free + inactive +
  /// fenced < n. Never call it while holding blocks whose release it would need.
  [[nodiscard]] std::optional<std::vector<Mutable>> allocate_blocks_blocking(std::size_t n) {
    for (;;) {
      if (auto blocks = allocate(n, nullptr)) return blocks;
      if (!store_->wait_for_allocatable(n, std::nullopt)) return std::nullopt;
    }
  }
  /// Same, but gives up after `timeout` (nullopt, nothing changed): a fence that never completes
  /// cannot hang the caller. Fences are polled without blocking until the deadline, so the wait
  /// may overrun it by about a millisecond. A zero timeout behaves like allocate_blocks.
  template <class Rep, class Period>
  [[nodiscard]] std::optional<std::vector<Mutable>> allocate_blocks_blocking(
      std::size_t n, std::chrono::duration<Rep, Period> timeout) {
    using Clock = std::chrono::steady_clock;
    const auto now = Clock::now();
    const auto room = Clock::time_point::max() - now;  // saturate: a huge timeout never wraps
    const auto deadline =
        timeout <= std::chrono::duration<Rep, Period>::zero() ? now
        : std::chrono::duration<double>(timeout) >= std::chrono::duration<double>(room)
            ? Clock::time_point::max()
            : now + std::chrono::ceil<Clock::duration>(timeout);
    for (;;) {
      if (auto blocks = allocate(n, nullptr)) return blocks;
      if (!store_->wait_for_allocatable(n, deadline)) return std::nullopt;
    }
  }

  /// Non-blocking and all-or-nothing like allocate_blocks, but may also hand out slots whose
  /// fences are pending (free ones before evicting cached blocks); their fences are returned
  /// for the caller's stream to wait on, as a stream-ordered allocator does.
  [[nodiscard]] std::optional<FencedAllocation<Tier>> allocate_blocks_stream_ordered(std::size_t n) {
    FencedAllocation<Tier> result;
    auto blocks = allocate(n, &result.evicted, detail::AllocationMode::StreamOrdered,
                           &result.wait_for);
    if (!blocks) return std::nullopt;
    result.blocks = std::move(*blocks);
    return result;
  }

  /// Registers one staged block. Under Allow a second registration of a hash gives a duplicate
  /// with its own id; under Reject the caller receives the existing primary and the submitted
  /// slot is recycled. Throws ForeignBlock (block untouched) for a block of another manager.
  [[nodiscard]] Immutable register_block(Complete&& block) {
    std::vector<Complete> one;
    one.push_back(std::move(block));
    try {
      auto result = register_blocks(std::move(one));
      return std::move(result.front());
    } catch (...) {
      block = std::move(one.front());
      throw;
    }
  }
  /// Registers a batch under one lock; results are in input order. On ForeignBlock nothing is
  /// consumed: every block is still in `blocks`.
  /// A moved-from block throws InvalidHandle, also consuming nothing. If the call throws
  /// anything else (std::bad_alloc), nothing was consumed or changed either.
  [[nodiscard]] std::vector<Immutable> register_blocks(std::vector<Complete>&& blocks) {
    detail::BlockStore& store = live("BlockManager::register_blocks");
    for (const auto& block : blocks) {
      if (block.store_ == nullptr) {
        throw InvalidHandle("register_blocks: a moved-from CompleteBlock (it names no slot)");
      }
      if (block.store_ != &store) {
        throw ForeignBlock("register_blocks: a CompleteBlock belongs to another manager");
      }
    }
    std::vector<Immutable> out;
    out.reserve(blocks.size());
    // The store reads the blocks and consumes their store references only if it succeeds; they
    // are disarmed after it returns (nothing between can throw).
    store.register_staged(
        blocks.size(),
        [&](std::size_t i) { return std::pair{blocks[i].block_id_, blocks[i].hash_}; },
        [&](const detail::ImmutableRef& ref) { out.push_back(make_immutable(ref)); });
    for (auto& block : blocks) detail::BlockAccess::disarm(block);
    blocks.clear();
    return out;
  }

  /// Longest contiguous prefix of `hashes` held by this pool (live or cached; cached blocks are
  /// revived). Stops at the first miss. One frequency touch per returned block.
  [[nodiscard]] std::vector<Immutable> match_blocks(std::span<const SequenceHash> hashes) {
    std::vector<Immutable> out;
    match_blocks(hashes, out);
    return out;
  }

  /// Same match, appended to the caller's `out` (its earlier contents are kept); returns how
  /// many blocks were appended. For a scheduler that matches every step: reusing one vector
  /// saves the result vector's allocation and free per call (about a twelfth of the instructions
  /// of a held 8-block match).
  /// Room for `hashes.size()` more is reserved before any block is acquired, so a bad_alloc
  /// leaves `out` and the pool as they were.
  std::size_t match_blocks(std::span<const SequenceHash> hashes, std::vector<Immutable>& out) {
    live("BlockManager::match_blocks");
    detail::reserve_more(out, hashes.size());  // geometric: appending calls stay linear
    const std::size_t found = store_->match_prefix(
        hashes, [&](const detail::ImmutableRef& ref) { out.push_back(make_immutable(ref)); });
    store_->touch_all(hashes.first(found));
    return found;
  }

  /// Every hash independently (no stop on a miss); repeated hashes give one entry. Touches the
  /// frequency tracker once per returned block when `touch`.
  [[nodiscard]] std::unordered_map<SequenceHash, Immutable> scan_matches(
      std::span<const SequenceHash> hashes, bool touch = true) {
    live("BlockManager::scan_matches");
    // Every map node is made before the pool lock (an empty handle per distinct hash), so
    // nothing allocates after a block has been acquired; misses are erased afterwards.
    std::unordered_map<SequenceHash, Immutable> out;
    out.reserve(hashes.size());
    for (const SequenceHash& hash : hashes) {
      out.try_emplace(hash, detail::BlockAccess::make<Immutable>());
    }
    store_->scan(
        hashes, [&](const SequenceHash& hash) { return !out.find(hash)->second.valid(); },
        [&](const detail::ImmutableRef& ref) { out.find(ref.hash)->second = make_immutable(ref); });
    std::erase_if(out, [](const auto& entry) { return !entry.second.valid(); });
    if (touch) {
      for (const auto& [hash, block] : out) store_->touch_one(hash);
    }
    return out;
  }

  /// Releases a batch of blocks — e.g. a finished request's, tail first — exactly as dropping
  /// them in order would, but with one pool-lock acquisition for all the slots whose last holder
  /// they were. Throws InvalidHandle if a block is moved-from and ForeignBlock if one belongs
  /// to another manager (nothing released either way).
  void release_blocks(std::vector<Immutable>&& blocks) {
    detail::BlockStore& store = live("BlockManager::release_blocks");
    std::vector<std::pair<BlockId, std::uint32_t>> handles;
    handles.reserve(blocks.size());
    for (const auto& block : blocks) {
      if (block.store_ == nullptr) {
        throw InvalidHandle("release_blocks: a moved-from ImmutableBlock (it names no slot)");
      }
      if (block.store_ != &store) {
        throw ForeignBlock("release_blocks: an ImmutableBlock belongs to another manager");
      }
      handles.emplace_back(block.block_id_, detail::BlockAccess::generation(block));
    }
    for (auto& block : blocks) detail::BlockAccess::disarm(block);
    blocks.clear();
    release_taken(handles);
  }

  /// Every hash matchable now (live primaries and cached blocks), in no particular order.
  /// O(pool size) under the pool lock: diagnostics, cache dumps and tests.
  [[nodiscard]] std::vector<SequenceHash> matchable_hashes() const {
    std::vector<SequenceHash> out;
    store_->for_each_matchable([&](const SequenceHash& hash) { out.push_back(hash); });
    return out;
  }

  /// Evicts every cached block to the free list; returns how many were drained.
  std::size_t reset_inactive_pool() {
    return live("BlockManager::reset_inactive_pool").reset_inactive_pool();
  }

  /// Diagnostics: throws std::logic_error if the pool's bookkeeping is inconsistent (O(pool
  /// size), under the pool lock). Test-only hooks live in kvbm/detail/testing.hpp.
  void check_invariants() const { live("BlockManager::check_invariants").check_invariants(); }

 private:
  friend struct detail::TestingAccess;
  friend struct detail::BindingAccess;
  explicit BlockManager(detail::StorePtr store) noexcept : store_{std::move(store)} {}

  /// Gives up the references of ImmutableBlocks already disarmed by the caller, named by
  /// (slot, generation): each of this pool, each once. One pool lock for the slots whose last
  /// holder they were; never fails.
  void release_taken(std::span<std::pair<BlockId, std::uint32_t>> taken) const noexcept {
    store_->metrics().inflight_immutable.fetch_sub(static_cast<std::int64_t>(taken.size()),
                                                   std::memory_order_relaxed);
    store_->release_many(taken);
  }

  std::optional<std::vector<Mutable>> allocate(
      std::size_t n, std::vector<SequenceHash>* evicted,
      detail::AllocationMode mode = detail::AllocationMode::ReadyOnly,
      std::vector<Fence>* wait_for = nullptr) {
    // More than the pool can never succeed: answer before reserving n of anything.
    if (n > live("BlockManager::allocate_blocks").total_blocks()) return std::nullopt;
    std::vector<Mutable> out;
    out.reserve(n);
    const bool ok = store_->allocate(
        n, [&](BlockId id) { out.push_back(detail::BlockAccess::make<Mutable>(store_.get(), id)); },
        evicted, mode, wait_for);
    if (!ok) return std::nullopt;
    return out;
  }
  Immutable make_immutable(const detail::ImmutableRef& ref) {
    return detail::BlockAccess::make<Immutable>(store_.get(), ref);
  }
  /// The pool; throws InvalidHandle naming `operation` on a moved-from manager.
  detail::BlockStore& live(const char* operation) const {
    if (store_.get() == nullptr) {
      throw InvalidHandle(std::string(operation) + " on a moved-from BlockManager (it names no pool)");
    }
    return *store_;
  }

  detail::StorePtr store_;
};

namespace detail {
/// For language bindings that keep handles in objects of their own (the Python package):
/// release_blocks without moving each handle into a vector first. The binding checks each
/// handle (live, of `manager`'s pool via pool(), named once), takes its (block_id, generation)
/// and disarms it (BlockAccess), then hands them over here. Not for applications.
struct BindingAccess {
  template <class Tier>
  [[nodiscard]] static BlockStore* pool(const BlockManager<Tier>& manager) noexcept {
    return manager.store_.get();
  }
  template <class Tier>
  static void release_taken(const BlockManager<Tier>& manager,
                            std::span<std::pair<BlockId, std::uint32_t>> taken) noexcept {
    manager.release_taken(taken);
  }
};
}  // namespace detail

}  // namespace kvbm
