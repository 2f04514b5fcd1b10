// The slot store: every state transition of a manager's slots, under one mutex.
//
// Lock order: store mutex -> registry shard mutex (leaf) and store mutex -> frequency tracker
// (leaf, multi-LRU reads it on insert). Nothing user-supplied runs under the store mutex except
// the handle-building emit callbacks of the manager, which only construct handles.
#include "kvbm/detail/block_store.hpp"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <cassert>
#include <mutex>
#include <stdexcept>
#include <string>

#include "eviction/inactive_policy.hpp"
#include "eviction/lru_policy.hpp"
#include "kvbm/block_manager.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/nvtx.hpp"
#include "kvbm/registry.hpp"
#include "registry_core.hpp"

namespace kvbm::detail {

namespace {

enum class SlotState : std::uint8_t { Reset, Mutable, Staged, Primary, Duplicate, Inactive };

constexpr std::uint64_t pack(std::uint32_t generation, std::uint32_t count) noexcept {
  return (static_cast<std::uint64_t>(generation) << 32) | count;
}

/// Fixed-capacity FIFO of slot ids (the free list): no allocation after construction.
class FreeRing {
 public:
  explicit FreeRing(std::size_t capacity) : ids_(capacity) {}
  void push_back(BlockId id) noexcept {
    assert(size_ < ids_.size());
    ids_[(head_ + size_) % ids_.size()] = id;
    ++size_;
  }
  BlockId pop_front() noexcept {
    assert(size_ > 0);
    const BlockId id = ids_[head_];
    head_ = (head_ + 1) % ids_.size();
    --size_;
    return id;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  std::vector<BlockId> ids_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

constexpr std::uint32_t kNoFence = 0xFFFF'FFFFu;

/// One pending fence of a slot; a slot's fences form a singly linked list in a node pool.
struct FenceNode {
  Fence fence;
  std::uint32_t next = kNoFence;
};

struct Slot {
  SequenceHash hash{};
  std::uint32_t fence_head = kNoFence;        // fences not yet seen ready
  RegistryEntry* entry = nullptr;            // while Primary / Duplicate / Inactive
  BlockId keepalive_id = kInvalidBlockId;     // Duplicate: the primary it keeps alive
  std::uint32_t keepalive_generation = 0;
  SlotState state = SlotState::Reset;
  bool reset_on_release = false;
  bool fenced = false;                        // released, parked in `fenced` until fences finish
};

}  // namespace

struct StoreState {
  StoreState(const StoreConfig& config, const BlockRegistry& registry_handle,
             std::unique_ptr<InactivePolicy> policy)
      : slots(config.block_count),
        free(config.block_count),
        inactive{std::move(policy)},
        registry{registry_handle},
        core{registry_handle.core().get()},
        tier{core->tier_index(config.tier_key)},
        duplication_policy{config.duplication_policy},
        default_reset_on_release{config.default_reset_on_release},
        fenced(config.block_count),
        scratch(config.block_count) {
    by_hash.reserve(config.block_count);
    for (std::size_t id = 0; id < config.block_count; ++id) {
      free.push_back(static_cast<BlockId>(id));
      slots[id].reset_on_release = default_reset_on_release;
    }
  }

  mutable std::mutex mutex;
  std::vector<Slot> slots;
  FreeRing free;
  /// hash -> slot for every Primary and Inactive slot (at most one per hash).
  absl::flat_hash_map<SequenceHash, BlockId, SequenceHashHasher> by_hash;
  std::unique_ptr<InactivePolicy> inactive;
  BlockRegistry registry;
  RegistryCore* core;
  std::size_t tier;
  DuplicationPolicy duplication_policy;
  bool default_reset_on_release;
  /// Released slots (Reset or Inactive) whose fences have not all completed, oldest first.
  /// They are logically free or cached, but never handed out ready until reclaimed.
  IdList fenced;
  std::vector<FenceNode> fence_nodes;
  std::uint32_t free_fence_node = kNoFence;
  std::vector<BlockId> scratch;  // eviction victims (capacity = block count)
};

namespace {

/// Work that must run after the store mutex is released.
struct Deferred {
  std::size_t store_unrefs = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// construction

BlockStore::BlockStore(const StoreConfig& config, const EvictionConfig& eviction,
                       const BlockRegistry& registry)
    : slot_refs_{std::make_unique<std::atomic<std::uint64_t>[]>(config.block_count)},
      id_{ManagerId::next()},
      block_size_{config.block_size},
      total_blocks_{config.block_count} {
  auto policy = make_inactive_policy(eviction, config.block_count,
                                     registry.core()->tracker());
  state_ = std::make_unique<StoreState>(config, registry, std::move(policy));
  metrics_.reset_pool_size.store(static_cast<std::int64_t>(config.block_count));
}

BlockStore* BlockStore::create(const StoreConfig& config, const EvictionConfig& eviction,
                               const BlockRegistry& registry) {
  return new BlockStore(config, eviction, registry);
}

BlockStore::~BlockStore() {
  // Only Reset and Inactive slots remain: every other state holds a store reference.
  for (Slot& slot : state_->slots) {
    if (slot.entry != nullptr) state_->core->release_present(slot.entry, state_->tier);
  }
}

void BlockStore::destroy() noexcept { delete this; }

DuplicationPolicy BlockStore::duplication_policy() const noexcept {
  return state_->duplication_policy;
}
const BlockRegistry& BlockStore::registry() const noexcept { return state_->registry; }

// ---------------------------------------------------------------------------------------------
// locked helpers (free functions over the state so the header stays small)

namespace {

struct Locked {
  StoreState& s;
  BlockStore& store;
  std::atomic<std::uint64_t>* refs;
  StoreMetrics& m;
  Deferred& deferred;

  void to_mutable(BlockId id) noexcept {
    Slot& slot = s.slots[id];
    slot.state = SlotState::Mutable;
    slot.reset_on_release = s.default_reset_on_release;
  }

  void to_free(BlockId id) noexcept {
    s.slots[id].state = SlotState::Reset;
    m.reset_pool_size.fetch_add(1, std::memory_order_relaxed);
    if (fences_ready(id)) {
      s.free.push_back(id);
    } else {
      park(id);
    }
  }

  void to_inactive(BlockId id) noexcept {
    Slot& slot = s.slots[id];
    slot.state = SlotState::Inactive;
    m.inactive_pool_size.fetch_add(1, std::memory_order_relaxed);
    if (fences_ready(id)) {
      s.inactive->insert(id, slot.hash);
    } else {
      park(id);
    }
  }

  // ---- fences ----

  /// Polls the slot's fences without blocking; drops the completed ones. True if none remain.
  bool fences_ready(BlockId id) noexcept {
    std::uint32_t* link = &s.slots[id].fence_head;
    while (*link != kNoFence) {
      FenceNode& node = s.fence_nodes[*link];
      if (node.fence.ready()) {
        const std::uint32_t done = *link;
        *link = node.next;
        free_fence_node(done);
      } else {
        link = &node.next;
      }
    }
    return s.slots[id].fence_head == kNoFence;
  }

  /// Moves every fence of the slot to `out` (the caller now orders its work after them).
  void hand_over_fences(BlockId id, std::vector<Fence>* out) {
    Slot& slot = s.slots[id];
    while (slot.fence_head != kNoFence) {
      const std::uint32_t index = slot.fence_head;
      slot.fence_head = s.fence_nodes[index].next;
      if (out != nullptr) out->push_back(std::move(s.fence_nodes[index].fence));
      free_fence_node(index);
    }
  }

  void free_fence_node(std::uint32_t index) noexcept {
    s.fence_nodes[index].fence = Fence{};
    s.fence_nodes[index].next = s.free_fence_node;
    s.free_fence_node = index;
  }

  void park(BlockId id) noexcept {
    s.slots[id].fenced = true;
    s.fenced.push_back(id);
    m.fenced_slots.fetch_add(1, std::memory_order_relaxed);
  }

  void unpark(BlockId id) noexcept {
    s.slots[id].fenced = false;
    s.fenced.unlink(id);
    m.fenced_slots.fetch_sub(1, std::memory_order_relaxed);
  }

  /// Returns every parked slot whose fences completed to the free list or the eviction policy.
  void reclaim() noexcept {
    for (BlockId id = s.fenced.front(); id != kInvalidBlockId;) {
      const BlockId next = s.fenced.next(id);
      if (fences_ready(id)) {
        unpark(id);
        Slot& slot = s.slots[id];
        if (slot.state == SlotState::Reset) {
          s.free.push_back(id);
        } else {
          s.inactive->insert(id, slot.hash);
        }
        m.fence_reclaims.fetch_add(1, std::memory_order_relaxed);
      }
      id = next;
    }
  }

  void drop_registration(Slot& slot) noexcept {
    s.core->release_present(slot.entry, s.tier);
    slot.entry = nullptr;
  }

  /// A released primary tenancy: cache it, or free it when flagged.
  void release_primary(BlockId id, std::uint32_t generation) noexcept {
    Slot& slot = s.slots[id];
    refs[id].store(pack(generation + 1, 0), std::memory_order_release);
    if (slot.reset_on_release) {
      s.by_hash.erase(slot.hash);
      drop_registration(slot);
      to_free(id);
    } else {
      to_inactive(id);
    }
  }

  void release_duplicate(BlockId id, std::uint32_t generation) noexcept {
    Slot& slot = s.slots[id];
    refs[id].store(pack(generation + 1, 0), std::memory_order_release);
    const BlockId primary = slot.keepalive_id;
    const std::uint32_t primary_generation = slot.keepalive_generation;
    slot.keepalive_id = kInvalidBlockId;
    drop_registration(slot);
    to_free(id);
    drop_strong(primary, primary_generation);
  }

  /// The holder that brought a tenancy's count to zero releases it, unless a lookup already
  /// moved the slot on (the generation changed): then it does nothing.
  void release_last(BlockId id, std::uint32_t generation) noexcept {
    Slot& slot = s.slots[id];
    const auto word = refs[id].load(std::memory_order_acquire);
    if (ref_generation(word) != generation || ref_count(word) != 0) {
      m.release_primary_noop.fetch_add(1, std::memory_order_relaxed);
    } else if (slot.state == SlotState::Primary) {
      release_primary(id, generation);
    } else if (slot.state == SlotState::Duplicate) {
      release_duplicate(id, generation);
    } else {
      m.release_primary_noop.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// Drops one strong reference while holding the lock (a duplicate's keep-alive).
  void drop_strong(BlockId id, std::uint32_t generation) noexcept {
    const auto previous = refs[id].fetch_sub(1, std::memory_order_acq_rel);
    if (ref_count(previous) != 1) return;
    release_primary(id, generation);
    ++deferred.store_unrefs;  // the primary tenancy's store reference
  }

  /// Live primary or cached block for `hash`, with one new strong reference; nullopt on a miss.
  std::optional<ImmutableRef> acquire(const SequenceHash& hash) noexcept {
    const auto it = s.by_hash.find(hash);
    if (it == s.by_hash.end()) return std::nullopt;
    const BlockId id = it->second;
    Slot& slot = s.slots[id];
    if (slot.state == SlotState::Primary) {
      auto word = refs[id].load(std::memory_order_acquire);
      while (ref_count(word) != 0) {
        if (refs[id].compare_exchange_weak(word, word + 1, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
          return ImmutableRef{id, ref_generation(word), hash};
        }
      }
      // The last holder is between its final decrement and taking this lock: finish its
      // release here (its own release will find the generation moved on and do nothing).
      refs[id].store(pack(ref_generation(word) + 1, 0), std::memory_order_release);
      to_inactive(id);
      m.eager_primary_to_inactive.fetch_add(1, std::memory_order_relaxed);
    }
    assert(slot.state == SlotState::Inactive);
    if (slot.fenced) {
      unpark(id);  // a cache hit may read a slot whose transfers are still in flight
    } else {
      s.inactive->remove(id, hash);
    }
    m.inactive_pool_size.fetch_sub(1, std::memory_order_relaxed);
    slot.state = SlotState::Primary;
    const std::uint32_t generation = ref_generation(refs[id].load(std::memory_order_relaxed));
    refs[id].store(pack(generation, 1), std::memory_order_release);
    store.retain();
    return ImmutableRef{id, generation, hash};
  }
};

}  // namespace

#define KVBM_LOCKED(name)                                         \
  Deferred deferred;                                              \
  std::unique_lock lock{state_->mutex};                           \
  Locked name{*state_, *this, slot_refs_.get(), metrics_, deferred}

void BlockStore::release_last(BlockId id, std::uint32_t generation) noexcept {
  if (release_hook_) release_hook_();
  {
    KVBM_LOCKED(locked);
    locked.release_last(id, generation);
    lock.unlock();
    for (std::size_t i = 0; i < deferred.store_unrefs; ++i) unref();
  }
  unref();  // the released tenancy's store reference (last: may destroy the store)
}

void BlockStore::release_many(std::span<const std::pair<BlockId, std::uint32_t>> handles) {
  KVBM_NVTX_RANGE_PAYLOAD("release_blocks", handles.size());
  std::vector<std::pair<BlockId, std::uint32_t>> last;  // tenancies whose count reached zero
  last.reserve(handles.size());
  for (const auto& [id, generation] : handles) {
    const auto previous = slot_refs_[id].fetch_sub(1, std::memory_order_acq_rel);
    if (ref_count(previous) == 1) last.emplace_back(id, generation);
  }
  if (last.empty()) return;
  if (release_hook_) release_hook_();
  {
    KVBM_LOCKED(locked);
    for (const auto& [id, generation] : last) locked.release_last(id, generation);
    lock.unlock();
    for (std::size_t i = 0; i < deferred.store_unrefs; ++i) unref();
  }
  // The released tenancies' store references; the last may destroy the store.
  for (std::size_t i = 0; i < last.size(); ++i) unref();
}

// ---------------------------------------------------------------------------------------------
// allocation and the mutable/staged life

bool BlockStore::allocate(std::size_t count, FunctionRef<void(BlockId)> emit,
                          std::vector<SequenceHash>* evicted, AllocationMode mode,
                          std::vector<Fence>* wait_for) {
  if (count == 0) return true;
  KVBM_NVTX_RANGE_PAYLOAD("allocate_blocks", count);
  KVBM_LOCKED(locked);
  StoreState& s = *state_;
  if (!s.fenced.empty()) locked.reclaim();
  const std::size_t fenced_usable = mode == AllocationMode::StreamOrdered ? s.fenced.size() : 0;
  if (s.free.size() + s.inactive->size() + fenced_usable < count) return false;

  // Order: ready free slots, then fenced free slots (a stream wait costs less than a cache
  // entry), then ready cached blocks by policy, then fenced cached blocks.
  const std::size_t from_free = std::min(count, s.free.size());
  std::size_t remaining = count - from_free;
  std::size_t fenced_free = 0;
  if (mode == AllocationMode::StreamOrdered && remaining > 0) {
    for (BlockId id = s.fenced.front(); id != kInvalidBlockId && fenced_free < remaining;
         id = s.fenced.next(id)) {
      fenced_free += s.slots[id].state == SlotState::Reset ? 1 : 0;
    }
    remaining -= fenced_free;
  }
  const std::size_t to_evict = std::min(remaining, s.inactive->size());
  const std::size_t fenced_cached = remaining - to_evict;

  std::span<BlockId> victims{s.scratch.data(), to_evict};
  if (to_evict > 0) {
    KVBM_NVTX_RANGE_PAYLOAD("evict_inactive", to_evict);
    const std::size_t got = s.inactive->evict(victims);
    if (got != to_evict) {
      for (std::size_t i = 0; i < got; ++i) s.inactive->insert(victims[i], s.slots[victims[i]].hash);
      throw std::logic_error(std::string("eviction policy '") + s.inactive->name() +
                             "' returned fewer victims than its size promised");
    }
  }
  if (evicted != nullptr) evicted->reserve(evicted->size() + to_evict + fenced_cached);

  auto evict_slot = [&](BlockId id) {
    Slot& slot = s.slots[id];
    s.by_hash.erase(slot.hash);
    if (evicted != nullptr) evicted->push_back(slot.hash);
    locked.drop_registration(slot);
  };
  for (std::size_t i = 0; i < from_free; ++i) {
    const BlockId id = s.free.pop_front();
    locked.to_mutable(id);
    emit(id);
  }
  if (fenced_free + fenced_cached > 0) {
    std::size_t want_free = fenced_free;
    std::size_t want_cached = fenced_cached;
    for (BlockId id = s.fenced.front(); id != kInvalidBlockId && want_free + want_cached > 0;) {
      const BlockId next = s.fenced.next(id);
      const bool is_free = s.slots[id].state == SlotState::Reset;
      if (is_free ? want_free > 0 : want_cached > 0) {
        (is_free ? want_free : want_cached) -= 1;
        locked.unpark(id);
        locked.hand_over_fences(id, wait_for);
        if (!is_free) evict_slot(id);
        locked.to_mutable(id);
        emit(id);
      }
      id = next;
    }
    metrics_.fenced_handoffs.fetch_add(fenced_free + fenced_cached, std::memory_order_relaxed);
  }
  for (const BlockId id : victims) {
    evict_slot(id);
    locked.to_mutable(id);
    emit(id);
  }
  retain(count);
  const std::size_t evictions = to_evict + fenced_cached;
  metrics_.allocations.fetch_add(count, std::memory_order_relaxed);
  metrics_.allocations_from_reset.fetch_add(from_free + fenced_free, std::memory_order_relaxed);
  metrics_.evictions.fetch_add(evictions, std::memory_order_relaxed);
  metrics_.reset_pool_size.fetch_sub(static_cast<std::int64_t>(from_free + fenced_free),
                                     std::memory_order_relaxed);
  metrics_.inactive_pool_size.fetch_sub(static_cast<std::int64_t>(evictions),
                                        std::memory_order_relaxed);
  metrics_.inflight_mutable.fetch_add(static_cast<std::int64_t>(count), std::memory_order_relaxed);
  return true;
}

bool BlockStore::wait_for_allocatable(std::size_t count) {
  KVBM_NVTX_RANGE_PAYLOAD("wait_for_fences", count);
  std::vector<Fence> fences;
  for (;;) {
    {
      KVBM_LOCKED(locked);
      StoreState& s = *state_;
      if (!s.fenced.empty()) locked.reclaim();
      const std::size_t ready = s.free.size() + s.inactive->size();
      if (ready >= count) return true;
      if (ready + s.fenced.size() < count) return false;
      // Copy (not take) the fences of the oldest parked slots we need; reclaim() frees them.
      std::size_t needed = count - ready;
      for (BlockId id = s.fenced.front(); id != kInvalidBlockId && needed > 0;
           id = s.fenced.next(id), --needed) {
        for (std::uint32_t n = s.slots[id].fence_head; n != kNoFence; n = s.fence_nodes[n].next) {
          fences.push_back(s.fence_nodes[n].fence);
        }
      }
    }
    for (const Fence& fence : fences) fence.wait();
    metrics_.fence_waits.fetch_add(fences.size(), std::memory_order_relaxed);
    fences.clear();
  }
}

void BlockStore::add_fence(BlockId id, Fence fence) {
  if (fence.ready()) return;
  std::lock_guard lock{state_->mutex};
  StoreState& s = *state_;
  std::uint32_t index = s.free_fence_node;
  if (index == kNoFence) {
    index = static_cast<std::uint32_t>(s.fence_nodes.size());
    s.fence_nodes.emplace_back();
  } else {
    s.free_fence_node = s.fence_nodes[index].next;
  }
  s.fence_nodes[index].fence = std::move(fence);
  s.fence_nodes[index].next = s.slots[id].fence_head;
  s.slots[id].fence_head = index;
}

void BlockStore::stage(BlockId id, const SequenceHash& hash) noexcept {
  std::lock_guard lock{state_->mutex};
  Slot& slot = state_->slots[id];
  assert(slot.state == SlotState::Mutable);
  slot.state = SlotState::Staged;
  slot.hash = hash;
  metrics_.stagings.fetch_add(1, std::memory_order_relaxed);
  metrics_.inflight_mutable.fetch_sub(1, std::memory_order_relaxed);
}

void BlockStore::unstage(BlockId id) noexcept {
  std::lock_guard lock{state_->mutex};
  Slot& slot = state_->slots[id];
  assert(slot.state == SlotState::Staged);
  slot.state = SlotState::Mutable;
  slot.reset_on_release = state_->default_reset_on_release;
  metrics_.inflight_mutable.fetch_add(1, std::memory_order_relaxed);
}

void BlockStore::release_mutable(BlockId id) noexcept {
  {
    KVBM_LOCKED(locked);
    assert(state_->slots[id].state == SlotState::Mutable);
    locked.to_free(id);
    metrics_.inflight_mutable.fetch_sub(1, std::memory_order_relaxed);
  }
  unref();
}

void BlockStore::release_staged(BlockId id) noexcept {
  {
    KVBM_LOCKED(locked);
    assert(state_->slots[id].state == SlotState::Staged);
    locked.to_free(id);
  }
  unref();
}

// ---------------------------------------------------------------------------------------------
// registration and lookups

void BlockStore::register_staged(
    std::size_t count, FunctionRef<std::pair<BlockId, SequenceHash>(std::size_t)> input,
    FunctionRef<void(const ImmutableRef&)> emit) {
  KVBM_NVTX_RANGE_PAYLOAD("register_blocks", count);
  std::vector<SequenceHash> fresh;  // newly registered hashes: touched after the lock
  if (state_->core->tracker()) fresh.reserve(count);  // one allocation per call, not per block
  {
    KVBM_LOCKED(locked);
    StoreState& s = *state_;
    for (std::size_t i = 0; i < count; ++i) {
      const auto [id, hash] = input(i);  // the handle is disarmed: its store reference is ours
      Slot& slot = s.slots[id];
      assert(slot.state == SlotState::Staged && slot.hash == hash);
      const std::uint32_t generation = ref_generation(slot_refs_[id].load(std::memory_order_relaxed));

      if (auto existing = locked.acquire(hash)) {
        if (s.duplication_policy == DuplicationPolicy::Reject) {
          locked.to_free(id);
          ++deferred.store_unrefs;
          metrics_.registration_dedup.fetch_add(1, std::memory_order_relaxed);
          emit(*existing);
          continue;
        }
        // Allow: a second physical copy; the reference just taken keeps the primary alive.
        slot.state = SlotState::Duplicate;
        slot.keepalive_id = existing->block_id;
        slot.keepalive_generation = existing->generation;
        slot.entry = s.core->acquire_present(hash, s.tier, nullptr);
        slot_refs_[id].store(pack(generation, 1), std::memory_order_release);
        metrics_.duplicate_blocks.fetch_add(1, std::memory_order_relaxed);
        emit(ImmutableRef{id, generation, hash});
        continue;
      }
      bool created = false;
      slot.entry = s.core->acquire_present(hash, s.tier, &created);
      if (created && s.core->tracker()) fresh.push_back(hash);
      slot.state = SlotState::Primary;
      s.by_hash.emplace(hash, id);
      slot_refs_[id].store(pack(generation, 1), std::memory_order_release);
      emit(ImmutableRef{id, generation, hash});
    }
    metrics_.registrations.fetch_add(count, std::memory_order_relaxed);
    metrics_.inflight_immutable.fetch_add(static_cast<std::int64_t>(count), std::memory_order_relaxed);
    lock.unlock();
    for (std::size_t i = 0; i < deferred.store_unrefs; ++i) unref();
  }
  touch_all(fresh);
}

std::size_t BlockStore::match_prefix(std::span<const SequenceHash> hashes,
                                     FunctionRef<void(const ImmutableRef&)> emit) {
  KVBM_NVTX_RANGE_PAYLOAD("match_blocks", hashes.size());
  std::size_t found = 0;
  {
    KVBM_LOCKED(locked);
    for (const SequenceHash& hash : hashes) {
      const auto ref = locked.acquire(hash);
      if (!ref) break;
      emit(*ref);
      ++found;
    }
  }
  metrics_.match_hashes_requested.fetch_add(hashes.size(), std::memory_order_relaxed);
  metrics_.match_blocks_returned.fetch_add(found, std::memory_order_relaxed);
  metrics_.inflight_immutable.fetch_add(static_cast<std::int64_t>(found), std::memory_order_relaxed);
  return found;
}

std::size_t BlockStore::scan(std::span<const SequenceHash> hashes,
                             FunctionRef<bool(const SequenceHash&)> wanted,
                             FunctionRef<void(const ImmutableRef&)> emit) {
  KVBM_NVTX_RANGE_PAYLOAD("scan_matches", hashes.size());
  std::size_t found = 0;
  {
    KVBM_LOCKED(locked);
    for (const SequenceHash& hash : hashes) {
      if (!wanted(hash)) continue;
      if (const auto ref = locked.acquire(hash)) {
        emit(*ref);
        ++found;
      }
    }
  }
  metrics_.scan_hashes_requested.fetch_add(hashes.size(), std::memory_order_relaxed);
  metrics_.scan_blocks_returned.fetch_add(found, std::memory_order_relaxed);
  metrics_.inflight_immutable.fetch_add(static_cast<std::int64_t>(found), std::memory_order_relaxed);
  return found;
}

std::optional<ImmutableRef> BlockStore::acquire(const SequenceHash& hash) {
  KVBM_NVTX_RANGE("upgrade_weak_block");
  KVBM_LOCKED(locked);
  auto ref = locked.acquire(hash);
  if (ref) metrics_.inflight_immutable.fetch_add(1, std::memory_order_relaxed);
  return ref;
}

void BlockStore::set_reset_on_release(BlockId id, std::uint32_t generation, bool value) noexcept {
  std::lock_guard lock{state_->mutex};
  Slot& slot = state_->slots[id];
  if (slot.state != SlotState::Primary) return;  // duplicates always free on release
  if (ref_generation(slot_refs_[id].load(std::memory_order_relaxed)) != generation) return;
  slot.reset_on_release = value;
}

std::size_t BlockStore::reset_inactive_pool() {
  KVBM_NVTX_RANGE("reset_inactive_pool");
  KVBM_LOCKED(locked);
  StoreState& s = *state_;
  const std::size_t n = s.inactive->size();
  std::span<BlockId> victims{s.scratch.data(), n};
  const std::size_t got = s.inactive->evict(victims);
  for (std::size_t i = 0; i < got; ++i) {
    Slot& slot = s.slots[victims[i]];
    s.by_hash.erase(slot.hash);
    locked.drop_registration(slot);
    locked.to_free(victims[i]);
  }
  std::size_t drained = got;
  for (BlockId id = s.fenced.front(); id != kInvalidBlockId; id = s.fenced.next(id)) {
    Slot& slot = s.slots[id];
    if (slot.state != SlotState::Inactive) continue;
    s.by_hash.erase(slot.hash);
    locked.drop_registration(slot);
    slot.state = SlotState::Reset;  // stays parked until its fences complete
    metrics_.reset_pool_size.fetch_add(1, std::memory_order_relaxed);
    ++drained;
  }
  metrics_.inactive_pool_size.fetch_sub(static_cast<std::int64_t>(drained),
                                        std::memory_order_relaxed);
  return drained;
}

std::size_t BlockStore::available_blocks() const {
  auto* self = const_cast<BlockStore*>(this);  // reclaiming is invisible bookkeeping
  Deferred deferred;
  std::lock_guard lock{state_->mutex};
  Locked locked{*state_, *self, self->slot_refs_.get(), self->metrics_, deferred};
  if (!state_->fenced.empty()) locked.reclaim();
  return state_->free.size() + state_->inactive->size();
}

// ---------------------------------------------------------------------------------------------
// registry references and frequency

RegistryEntry* BlockStore::registry_acquire(const SequenceHash& hash) {
  return state_->core->acquire(hash, nullptr);
}
void BlockStore::registry_retain(RegistryEntry* entry) noexcept { state_->core->retain(entry); }
void BlockStore::registry_release(RegistryEntry* entry) noexcept { state_->core->release(entry); }

void BlockStore::touch_all(std::span<const SequenceHash> hashes) const {
  const auto& tracker = state_->core->tracker();
  if (!tracker) return;
  if (!hashes.empty()) tracker->touch_many(hashes);
}
void BlockStore::touch_one(const SequenceHash& hash) const {
  if (const auto& tracker = state_->core->tracker()) tracker->touch(hash.as_u128());
}

// ---------------------------------------------------------------------------------------------
// diagnostics

void BlockStore::check_invariants() const {
  std::lock_guard lock{state_->mutex};
  const StoreState& s = *state_;
  std::size_t counts[6] = {};
  std::size_t fenced_by_state[2] = {};  // Reset, Inactive
  auto fail = [](const std::string& what) { throw std::logic_error("kvbm invariant: " + what); };
  for (BlockId id = 0; id < s.slots.size(); ++id) {
    const Slot& slot = s.slots[id];
    ++counts[static_cast<int>(slot.state)];
    const bool indexed = slot.state == SlotState::Primary || slot.state == SlotState::Inactive;
    if (indexed) {
      const auto it = s.by_hash.find(slot.hash);
      if (it == s.by_hash.end() || it->second != id) fail("slot " + std::to_string(id) + " not indexed by its hash");
    }
    const bool registered = indexed || slot.state == SlotState::Duplicate;
    if (registered != (slot.entry != nullptr)) fail("slot " + std::to_string(id) + " registry entry mismatch");
    if ((slot.state == SlotState::Inactive && !slot.fenced) != s.inactive->contains(id)) fail("slot " + std::to_string(id) + " inactive membership mismatch");
    if (slot.fenced != s.fenced.contains(id)) fail("slot " + std::to_string(id) + " fenced membership mismatch");
    if (slot.fenced && slot.state != SlotState::Reset && slot.state != SlotState::Inactive) fail("held slot parked as fenced");
    if (slot.fenced) ++fenced_by_state[slot.state == SlotState::Reset ? 0 : 1];
  }
  const auto n = [&](SlotState st) { return counts[static_cast<int>(st)]; };
  if (n(SlotState::Reset) != s.free.size() + fenced_by_state[0]) fail("free list + fenced free != Reset slots");
  if (n(SlotState::Inactive) != s.inactive->size() + fenced_by_state[1]) fail("inactive pool + fenced cached != Inactive slots");
  if (s.by_hash.size() != n(SlotState::Primary) + n(SlotState::Inactive)) fail("hash index size mismatch");
  if (metrics_.reset_pool_size.load() != static_cast<std::int64_t>(n(SlotState::Reset))) fail("reset_pool_size gauge");
  if (metrics_.inactive_pool_size.load() != static_cast<std::int64_t>(n(SlotState::Inactive))) fail("inactive_pool_size gauge");
  if (metrics_.fenced_slots.load() != static_cast<std::int64_t>(s.fenced.size())) fail("fenced_slots gauge");
  if (metrics_.inflight_mutable.load() != static_cast<std::int64_t>(n(SlotState::Mutable))) fail("inflight_mutable gauge");
}

MetricsSnapshot StoreMetrics::snapshot() const noexcept {
  constexpr auto r = std::memory_order_relaxed;
  MetricsSnapshot m;
  m.allocations = allocations.load(r);
  m.allocations_from_reset = allocations_from_reset.load(r);
  m.evictions = evictions.load(r);
  m.registrations = registrations.load(r);
  m.duplicate_blocks = duplicate_blocks.load(r);
  m.registration_dedup = registration_dedup.load(r);
  m.stagings = stagings.load(r);
  m.match_hashes_requested = match_hashes_requested.load(r);
  m.match_blocks_returned = match_blocks_returned.load(r);
  m.scan_hashes_requested = scan_hashes_requested.load(r);
  m.scan_blocks_returned = scan_blocks_returned.load(r);
  m.eager_primary_to_inactive = eager_primary_to_inactive.load(r);
  m.release_primary_noop = release_primary_noop.load(r);
  m.fence_reclaims = fence_reclaims.load(r);
  m.fence_waits = fence_waits.load(r);
  m.fenced_handoffs = fenced_handoffs.load(r);
  m.fenced_slots = fenced_slots.load(r);
  m.inflight_mutable = inflight_mutable.load(r);
  m.inflight_immutable = inflight_immutable.load(r);
  m.reset_pool_size = reset_pool_size.load(r);
  m.inactive_pool_size = inactive_pool_size.load(r);
  return m;
}

// ---------------------------------------------------------------------------------------------
// builder validation

StorePtr build_store(std::optional<std::size_t> block_count, std::uint32_t block_size,
                     const std::optional<BlockRegistry>& registry, DuplicationPolicy policy,
                     const EvictionConfig& eviction, bool default_reset_on_release,
                     const void* tier_key) {
  if (!block_count) throw ConfigError("Builder validation failed: block_count is required");
  if (*block_count == 0) throw ConfigError("Builder validation failed: block_count must be greater than 0");
  if (*block_count >= kInvalidBlockId) {
    throw ConfigError("Builder validation failed: block_count must be below " +
                      std::to_string(kInvalidBlockId));
  }
  if (block_size == 0 || block_size > 1024 || (block_size & (block_size - 1)) != 0) {
    throw ConfigError("Builder validation failed: block_size must be a power of two in 1..1024 (got " +
                      std::to_string(block_size) + ")");
  }
  if (!registry) throw ConfigError("Builder validation failed: registry is required");
  StoreConfig config;
  config.block_count = *block_count;
  config.block_size = block_size;
  config.duplication_policy = policy;
  config.default_reset_on_release = default_reset_on_release;
  config.tier_key = tier_key;
  return StorePtr(BlockStore::create(config, eviction, *registry));
}

}  // namespace kvbm::detail
