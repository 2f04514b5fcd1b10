// kvbm/detail/block_store.hpp — the slot store behind one BlockManager (internal).
//
// One BlockStore per manager owns the slot table, the free list, the inactive (evictable) index
// and the hash -> slot map, all under one mutex. Block handles address slots by id; the hot
// paths they need (reference counting) are inline here, everything that changes slot state is
// out of line in src/block_store.cpp.
//
// Reference counts. Each slot has one 64-bit atomic: [generation:32][strong count:32]. The count
// is the number of live ImmutableBlock / LifecyclePinRef handles (and duplicate keep-alives) of
// the slot's current registered tenancy. Copies are one fetch_add; the handle that brings the
// count to zero takes the store lock and releases the slot, but only if the generation still
// matches (a lookup that raced the last drop may have moved the slot on and bumped it).
// The store itself is intrusively counted: the manager handles, every Mutable/Complete/Weak
// handle, and every registered tenancy with a non-zero count hold one reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvbm/detail/function_ref.hpp"
#include "kvbm/detail/striped_gauge.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/metrics.hpp"
#include "kvbm/sequence_hash.hpp"
#include "kvbm/types.hpp"

namespace kvbm {
class BlockRegistry;
class HashKeys;
}

namespace kvbm::detail {

class RegistryEntry;
struct StoreState;
struct EventSettings;
}
#include "kvbm/eviction.hpp"
namespace kvbm::detail {

inline constexpr std::uint64_t kCountMask = 0xFFFF'FFFFull;
[[nodiscard]] constexpr std::uint32_t ref_count(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word & kCountMask);
}
[[nodiscard]] constexpr std::uint32_t ref_generation(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word >> 32);
}

/// What a store hands a handle for one registered block.
struct ImmutableRef {
  BlockId block_id;
  std::uint32_t generation;
  SequenceHash hash;
};

/// Which slots an allocation may hand out.
enum class AllocationMode : std::uint8_t {
  ReadyOnly,      ///< only slots whose fences have completed
  StreamOrdered,  ///< also fenced slots; their fences go to the caller to wait on
};

struct StoreConfig {
  std::size_t block_count = 0;
  std::uint32_t block_size = 16;
  DuplicationPolicy duplication_policy = DuplicationPolicy::Allow;
  bool default_reset_on_release = false;
  const void* tier_key = nullptr;
  const char* tier_name = "";
  const EventSettings* events = nullptr;  ///< null: no event sink (costs nothing)
};

/// Metrics that change outside the pool lock on every match or every dropped handle: striped per
/// thread (see striped_gauge.hpp), so threads matching or dropping at once never share a line.
/// The others change under the pool lock or rarely, and stay one atomic.
constexpr bool striped_gauge(std::string_view name) noexcept { return name == "inflight_immutable"; }
constexpr bool striped_counter(std::string_view name) noexcept {
  return name == "match_hashes_requested" || name == "match_blocks_returned" ||
         name == "scan_hashes_requested" || name == "scan_blocks_returned";
}

/// Live metrics (the fields of KVBM_METRICS); relaxed atomics, read through snapshot().
struct StoreMetrics {
#define KVBM_METRICS_COUNTER_ATOMIC(name, meaning) \
  std::conditional_t<striped_counter(#name), StripedCounter, std::atomic<std::uint64_t>> name{};
#define KVBM_METRICS_GAUGE_ATOMIC(name, meaning) \
  std::conditional_t<striped_gauge(#name), StripedGauge, std::atomic<std::int64_t>> name{};
  KVBM_METRICS(KVBM_METRICS_COUNTER_ATOMIC, KVBM_METRICS_GAUGE_ATOMIC)
#undef KVBM_METRICS_COUNTER_ATOMIC
#undef KVBM_METRICS_GAUGE_ATOMIC

  [[nodiscard]] MetricsSnapshot snapshot() const noexcept {
    MetricsSnapshot out;
#define KVBM_METRICS_LOAD(name, meaning) out.name = name.load(std::memory_order_relaxed);
    KVBM_METRICS(KVBM_METRICS_LOAD, KVBM_METRICS_LOAD)
#undef KVBM_METRICS_LOAD
    return out;
  }
};

struct TestingAccess;

class BlockStore {
 public:
  /// Builds a store with one reference owned by the caller. Throws ConfigError.
  static BlockStore* create(const StoreConfig& config, const EvictionConfig& eviction,
                            const BlockRegistry& registry);

  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // ---- store lifetime ----
  void retain(std::size_t n = 1) noexcept { refs_.fetch_add(n, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  /// `n` unref()s as one atomic subtraction.
  void unref_many(std::size_t n) noexcept {
    if (n != 0 && refs_.fetch_sub(n, std::memory_order_acq_rel) == n) destroy();
  }

  // ---- strong slot references (ImmutableBlock, LifecyclePinRef) ----
  void slot_retain(BlockId id) noexcept {
    slot_refs_[id].fetch_add(1, std::memory_order_relaxed);
  }
  void slot_release(BlockId id, std::uint32_t generation) noexcept {
    const auto previous = slot_refs_[id].fetch_sub(1, std::memory_order_acq_rel);
    if (ref_count(previous) == 1) release_last(id, generation);
  }
  /// Drops one strong reference per (slot, generation) in order, releasing under one lock every
  /// tenancy whose count reached zero (ImmutableBlocks released as a batch). Allocates nothing:
  /// `handles` is reused as scratch (its contents are unspecified afterwards).
  void release_many(std::span<std::pair<BlockId, std::uint32_t>> handles) noexcept;
  /// Lock-free upgrade: succeeds only while the tenancy `generation` still has a holder and that
  /// tenancy holds `hash`. The generation is 32 bits and wraps after 2^32 reuses of a slot, so it
  /// alone could alias an old tenancy; the hash check (made while holding the new reference, so
  /// the tenancy cannot change under it) makes a stale handle unable to revive another block.
  [[nodiscard]] bool slot_try_retain(BlockId id, std::uint32_t generation,
                                     const SequenceHash& hash) noexcept {
    auto word = slot_refs_[id].load(std::memory_order_acquire);
    while (ref_generation(word) == generation && ref_count(word) != 0) {
      if (slot_refs_[id].compare_exchange_weak(word, word + 1, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        if (slot_holds(id, hash)) return true;
        slot_release(id, generation);  // a wrapped generation: not our block after all
        return false;
      }
    }
    return false;
  }
  [[nodiscard]] std::uint32_t slot_use_count(BlockId id) const noexcept {
    return ref_count(slot_refs_[id].load(std::memory_order_acquire));
  }

  // ---- identity ----
  [[nodiscard]] ManagerId id() const noexcept { return id_; }
  [[nodiscard]] std::uint32_t block_size() const noexcept { return block_size_; }
  [[nodiscard]] std::size_t total_blocks() const noexcept { return total_blocks_; }
  [[nodiscard]] StoreMetrics& metrics() noexcept { return metrics_; }
  [[nodiscard]] DuplicationPolicy duplication_policy() const noexcept;
  [[nodiscard]] const BlockRegistry& registry() const noexcept;

  // ---- transitions (all take the store lock once) ----
  /// All-or-nothing. Emits each block id; appends evicted hashes (policy order) when asked.
  /// The store takes one store reference per emitted block on the caller's behalf.
  /// StreamOrdered appends the fences of handed-out fenced slots to `wait_for`.
  bool allocate(std::size_t count, FunctionRef<void(BlockId)> emit,
                std::vector<SequenceHash>* evicted,
                AllocationMode mode = AllocationMode::ReadyOnly,
                std::vector<Fence>* wait_for = nullptr);
  /// Blocks (outside the lock) on the fences of the oldest fenced slots until `count` slots
  /// could be allocated ready. False if free + inactive + fenced < count (waiting cannot help),
  /// or when `deadline` passes first (then fences are polled, never waited on).
  bool wait_for_allocatable(std::size_t count,
                            std::optional<std::chrono::steady_clock::time_point> deadline);
  /// Attaches `fence` to the slot: it is not handed out again until the fence is ready.
  void add_fence(BlockId id, Fence fence);
  void stage(BlockId id, const SequenceHash& hash) noexcept;    // Mutable -> Staged
  /// Same, keeping the block's token ids for its Stored event when the sink wants them.
  void stage(BlockId id, const SequenceHash& hash, std::span<const std::uint32_t> tokens) noexcept;
  /// Same, with the hash keys the block was hashed under (null: none), for its Stored event.
  void stage(BlockId id, const SequenceHash& hash, std::span<const std::uint32_t> tokens,
             std::shared_ptr<const HashKeys> keys) noexcept;
  void unstage(BlockId id) noexcept;                             // Staged -> Mutable
  void release_mutable(BlockId id) noexcept;                     // Mutable -> Reset, unref
  void release_staged(BlockId id) noexcept;                      // Staged -> Reset, unref
  /// Registers `count` staged blocks (each input consumes one store reference of a
  /// CompleteBlock). Emits one ImmutableRef per input, in order. Every emitting call counts its
  /// handles in inflight_immutable once, so handles built from its refs must not count again.
  void register_staged(std::size_t count, FunctionRef<std::pair<BlockId, SequenceHash>(std::size_t)> input,
                       FunctionRef<void(const ImmutableRef&)> emit);
  /// Prefix walk; returns how many were emitted.
  std::size_t match_prefix(std::span<const SequenceHash> hashes,
                           FunctionRef<void(const ImmutableRef&)> emit);
  /// Every hash independently; `wanted` filters hashes already answered (repeats).
  std::size_t scan(std::span<const SequenceHash> hashes,
                   FunctionRef<bool(const SequenceHash&)> wanted,
                   FunctionRef<void(const ImmutableRef&)> emit);
  /// Slow path of WeakBlock::upgrade: live primary, else resurrect from the inactive pool.
  std::optional<ImmutableRef> acquire(const SequenceHash& hash);
  void set_reset_on_release(BlockId id, std::uint32_t generation, bool value) noexcept;
  /// Drains the inactive pool into the free list; returns how many were drained.
  std::size_t reset_inactive_pool();
  /// Calls `fn` with every matchable hash (Primary or Inactive), under the lock; O(pool).
  void for_each_matchable(FunctionRef<void(const SequenceHash&)> fn) const;
  /// free + inactive, read under one lock.
  [[nodiscard]] std::size_t available_blocks() const;

  // ---- registry references held by WeakBlock ----
  [[nodiscard]] RegistryEntry* registry_acquire(const SequenceHash& hash);
  void registry_retain(RegistryEntry* entry) noexcept;
  void registry_release(RegistryEntry* entry) noexcept;
  /// Frequency touches after the store lock (one per hash).
  void touch_all(std::span<const SequenceHash> hashes) const;
  void touch_one(const SequenceHash& hash) const;

  /// Test/diagnostic: throws std::logic_error if an internal invariant is broken
  /// (free + inactive + held != total, index and slot states disagree).
  void check_invariants() const;

 private:
  BlockStore(const StoreConfig& config, const EvictionConfig& eviction,
             const BlockRegistry& registry);
  ~BlockStore();
  void destroy() noexcept;
  void release_last(BlockId id, std::uint32_t generation) noexcept;
  /// Whether slot `id`'s current tenancy holds `hash` (the caller holds a reference to it).
  [[nodiscard]] bool slot_holds(BlockId id, const SequenceHash& hash) const noexcept;
  /// The lookup loop of match_prefix (Prefix: stop at the first miss) and scan (EveryHash, each
  /// hash filtered by `wanted` when given), under at most one lock; counts into the two
  /// counters. Prefix first takes the blocks other holders keep alive without the lock, while it
  /// can.
  enum class Lookup : std::uint8_t { Prefix, EveryHash };
  std::size_t acquire_each(std::span<const SequenceHash> hashes, Lookup lookup,
                           const FunctionRef<bool(const SequenceHash&)>* wanted,
                           FunctionRef<void(const ImmutableRef&)> emit,
                           StripedCounter& requested, StripedCounter& returned);
  /// Lock-free: one more reference to the live primary holding `hash`, if another holder keeps
  /// it alive and the unlocked index finds it; block_id kInvalidBlockId means "look under the
  /// lock". Eight bytes, so it comes back in a register.
  struct TakenRef {
    BlockId block_id;
    std::uint32_t generation;
  };
  [[nodiscard]] TakenRef try_acquire_held(const SequenceHash& hash) noexcept;
  friend struct TestingAccess;  // the release hook (kvbm/detail/testing.hpp)

  std::atomic<std::size_t> refs_{1};
  std::unique_ptr<std::atomic<std::uint64_t>[]> slot_refs_;
  ManagerId id_;
  std::uint32_t block_size_;
  std::size_t total_blocks_;
  StoreMetrics metrics_;
  std::unique_ptr<StoreState> state_;
  /// Test hook: runs on a releasing thread after a tenancy's count reached zero and before it
  /// takes the store lock (set only through kvbm/detail/testing.hpp, before the pool is used).
  std::function<void()> release_hook_;
};

/// The store behind a handle; throws InvalidHandle naming `operation` for a moved-from handle.
inline BlockStore& live_store(BlockStore* store, const char* operation) {
  if (store == nullptr) {
    throw InvalidHandle(std::string(operation) + " on a moved-from handle (it names no slot)");
  }
  return *store;
}

/// Intrusive owning pointer to a store (what a BlockManager holds).
class StorePtr {
 public:
  StorePtr() noexcept = default;
  explicit StorePtr(BlockStore* adopted) noexcept : store_{adopted} {}
  StorePtr(const StorePtr& other) noexcept : store_{other.store_} {
    if (store_ != nullptr) store_->retain();
  }
  StorePtr(StorePtr&& other) noexcept : store_{std::exchange(other.store_, nullptr)} {}
  StorePtr& operator=(StorePtr other) noexcept {
    std::swap(store_, other.store_);
    return *this;
  }
  ~StorePtr() {
    if (store_ != nullptr) store_->unref();
  }
  BlockStore* operator->() const noexcept { return store_; }
  BlockStore& operator*() const noexcept { return *store_; }
  [[nodiscard]] BlockStore* get() const noexcept { return store_; }

 private:
  BlockStore* store_ = nullptr;
};

}  // namespace kvbm::detail
