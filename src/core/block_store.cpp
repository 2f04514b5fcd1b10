// The slot store: every state transition of a manager's slots, under one mutex.
//
// Lock order: store mutex -> registry shard mutex (leaf) and store mutex -> frequency tracker
// (leaf, multi-LRU reads it on insert). Nothing user-supplied runs under the store mutex except
// the handle-building emit callbacks of the manager, which only construct handles.
// The fence ledger (core/slot_fence_ledger.*), the invariant check (core/store_invariants.cpp)
// and builder validation (core/builder_validation.cpp) live in their own files.
#include "kvbm/detail/block_store.hpp"

#include <algorithm>
#include <cassert>
#include <mutex>
#include <thread>
#include <stdexcept>
#include <string>

#include "store_state.hpp"
#include "kvbm/nvtx.hpp"

namespace kvbm::detail {

namespace {

/// A registry entry taken for one block of a register_blocks batch before any slot changes.
struct PendingEntry {
  RegistryEntry* entry = nullptr;
  bool created = false;
};

constexpr std::uint64_t pack(std::uint32_t generation, std::uint32_t count) noexcept {
  return (static_cast<std::uint64_t>(generation) << 32) | count;
}

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
  state_ = std::make_unique<StoreState>(config, registry, std::move(policy), metrics_);
  if (config.events != nullptr && config.events->sink) {
    state_->events = std::make_unique<StoreEvents>(*config.events, id_, config.block_count,
                                                   config.block_size, state_->mutex);
  }
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
  /// Batch mode (release_many): slots that become cached are collected here (the state's
  /// scratch buffer) and the inactive gauge counted here, both applied by flush_inactive().
  BlockId* batch = nullptr;
  std::size_t batched = 0;
  std::int64_t inactive_added = 0;

  /// The pool-size gauges change only under the store mutex: one writer at a time, so a load
  /// and a store (no locked read-modify-write) keep them exact for lock-free readers.
  static void gauge_add(std::atomic<std::int64_t>& gauge, std::int64_t delta) noexcept {
    gauge.store(gauge.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }

  void to_mutable(BlockId id) noexcept {
    Slot& slot = s.slots[id];
    slot.state = SlotState::Mutable;
    slot.reset_on_release = s.default_reset_on_release;
  }

  void to_free(BlockId id) noexcept {
    s.slots[id].state = SlotState::Reset;
    gauge_add(m.reset_pool_size, 1);
    if (s.fences.poll(id)) {
      s.free.push_back(id);
    } else {
      s.fences.park(id);
    }
  }

  void to_inactive(BlockId id) noexcept {
    Slot& slot = s.slots[id];
    slot.state = SlotState::Inactive;
    if (batch != nullptr) {
      ++inactive_added;
    } else {
      gauge_add(m.inactive_pool_size, 1);
    }
    if (!s.fences.poll(id)) {
      s.fences.park(id);
    } else if (batch != nullptr) {
      batch[batched++] = id;  // at most one entry per slot: a batch releases a tenancy once
    } else {
      s.inactive->insert(id, slot.hash);
    }
  }

  /// Ends batch mode: the collected slots enter the policy in release order, one gauge update.
  void flush_inactive() noexcept {
    if (batched != 0) {
      s.inactive->insert_many({batch, batched},
                              [this](BlockId id) -> const SequenceHash& { return s.slots[id].hash; });
    }
    if (inactive_added != 0) gauge_add(m.inactive_pool_size, inactive_added);
    batch = nullptr;
    batched = 0;
    inactive_added = 0;
  }

  /// Returns every parked slot whose fences completed to the free list or the eviction policy.
  void reclaim() noexcept {
    if (s.fences.none_parked()) return;
    s.fences.reclaim([this](BlockId id) {
      const Slot& slot = s.slots[id];
      if (slot.state == SlotState::Reset) {
        s.free.push_back(id);
      } else {
        s.inactive->insert(id, slot.hash);
      }
    });
  }

  /// After a record could not be stored (out of memory on a release path), the stream is
  /// replaced by Cleared + Stored for every matchable slot, parents first, at the start of the
  /// next locked section; if that cannot allocate either, the one after tries again.
  void resync_events_if_lost() noexcept {
    if (s.events == nullptr || !s.events->lost()) return;
    try {
      std::vector<BlockId> ids;
      ids.reserve(s.by_hash.size());
      s.by_hash.for_each([&](BlockId id) { ids.push_back(id); });
      std::sort(ids.begin(), ids.end(), [&](BlockId a, BlockId b) {
        return s.slots[a].hash.position() < s.slots[b].hash.position();
      });
      s.events->begin_resync(ids.size());
      for (const BlockId id : ids) s.events->stored(id, s.slots[id].hash);
    } catch (...) {  // still lost
    }
  }

  /// The slot's hash leaves this pool: out of the index and its registry presence dropped.
  void forget(Slot& slot) noexcept {
    const auto id = static_cast<BlockId>(&slot - s.slots.data());
    s.by_hash.erase(slot.hash.mix(), id);
    s.inactive->forget(id);
    if (s.events) s.events->removed(id, slot.hash);
    drop_registration(slot);
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
      forget(slot);
      to_free(id);
    } else {
      to_inactive(id);
    }
  }

  void release_duplicate(BlockId id, std::uint32_t generation) noexcept {
    Slot& slot = s.slots[id];
    refs[id].store(pack(generation + 1, 0), std::memory_order_release);
    const BlockId primary = slot.keepalive_id;
    slot.keepalive_id = kInvalidBlockId;
    drop_registration(slot);
    to_free(id);
    drop_strong(primary);
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
  void drop_strong(BlockId id) noexcept {
    const auto previous = refs[id].fetch_sub(1, std::memory_order_acq_rel);
    if (ref_count(previous) != 1) return;
    release_primary(id, ref_generation(previous));  // the tenancy the keep-alive held
    ++deferred.store_unrefs;  // the primary tenancy's store reference
  }

  /// Live primary or cached block for `hash`, with one new strong reference; nullopt on a miss.
  std::optional<ImmutableRef> acquire(const SequenceHash& hash) noexcept {
    const BlockId id = s.find(hash);
    if (id == kInvalidBlockId) return std::nullopt;
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
    if (s.fences.parked(id)) {
      s.fences.unpark(id);  // a cache hit may read a slot whose transfers are still in flight
    } else {
      s.inactive->remove(id, hash);
    }
    gauge_add(m.inactive_pool_size, -1);
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
  EventFlush events_flush{state_->events.get()};                  \
  StoreLock lock{state_->mutex, events_flush};                    \
  Locked name{*state_, *this, slot_refs_.get(), metrics_, deferred}; \
  name.resync_events_if_lost()

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

void BlockStore::release_many(std::span<std::pair<BlockId, std::uint32_t>> handles) noexcept {
  KVBM_NVTX_RANGE_PAYLOAD("release_blocks", handles.size());
  // Tenancies whose count reached zero, compacted to the front of `handles`: no allocation, so
  // the caller's handles, already disarmed, can never be lost to a bad_alloc.
  std::size_t zeroed = 0;
  for (const auto& [id, generation] : handles) {
    const auto previous = slot_refs_[id].fetch_sub(1, std::memory_order_acq_rel);
    if (ref_count(previous) == 1) handles[zeroed++] = {id, generation};
  }
  const auto last = handles.first(zeroed);
  if (last.empty()) return;
  if (release_hook_) release_hook_();
  {
    KVBM_LOCKED(locked);
    locked.batch = state_->scratch.data();  // free under the lock outside allocation/draining
    for (const auto& [id, generation] : last) locked.release_last(id, generation);
    locked.flush_inactive();
    lock.unlock();
    unref_many(deferred.store_unrefs);
  }
  // The released tenancies' store references; the last may destroy the store.
  unref_many(last.size());
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
  locked.reclaim();
  const std::size_t fenced_usable =
      mode == AllocationMode::StreamOrdered ? s.fences.parked_count() : 0;
  if (s.free.size() + s.inactive->size() + fenced_usable < count) return false;

  // Order: ready free slots, then fenced free slots (a stream wait costs less than a cache
  // entry), then ready cached blocks by policy, then fenced cached blocks.
  const std::size_t from_free = std::min(count, s.free.size());
  std::size_t remaining = count - from_free;
  std::size_t fenced_free = 0;
  if (mode == AllocationMode::StreamOrdered && remaining > 0) {
    for (BlockId id = s.fences.oldest_parked(); id != kInvalidBlockId && fenced_free < remaining;
         id = s.fences.next_parked(id)) {
      fenced_free += s.slots[id].state == SlotState::Reset ? 1 : 0;
    }
    remaining -= fenced_free;
  }
  const std::size_t to_evict = std::min(remaining, s.inactive->size());
  const std::size_t fenced_cached = remaining - to_evict;

  // Everything that can allocate happens before the first slot changes state (strong guarantee).
  if (evicted != nullptr) evicted->reserve(evicted->size() + to_evict + fenced_cached);
  if (s.events) s.events->reserve_removed(to_evict + fenced_cached);
  if (wait_for != nullptr && fenced_free + fenced_cached > 0) {
    wait_for->reserve(wait_for->size() + s.fences.handover_count(fenced_free, fenced_cached, [&](BlockId id) {
      return s.slots[id].state == SlotState::Reset;
    }));
  }

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

  auto evict_slot = [&](BlockId id) {
    Slot& slot = s.slots[id];
    if (evicted != nullptr) evicted->push_back(slot.hash);
    locked.forget(slot);
  };
  for (std::size_t i = 0; i < from_free; ++i) {
    const BlockId id = s.free.pop_front();
    locked.to_mutable(id);
    emit(id);
  }
  if (fenced_free + fenced_cached > 0) {
    std::size_t want_free = fenced_free;
    std::size_t want_cached = fenced_cached;
    for (BlockId id = s.fences.oldest_parked();
         id != kInvalidBlockId && want_free + want_cached > 0;) {
      const BlockId next = s.fences.next_parked(id);
      const bool is_free = s.slots[id].state == SlotState::Reset;
      if (is_free ? want_free > 0 : want_cached > 0) {
        (is_free ? want_free : want_cached) -= 1;
        s.fences.unpark(id);
        s.fences.hand_over(id, wait_for);
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

bool BlockStore::wait_for_allocatable(
    std::size_t count, std::optional<std::chrono::steady_clock::time_point> deadline) {
  KVBM_NVTX_RANGE_PAYLOAD("wait_for_fences", count);
  std::vector<Fence> fences;
  for (;;) {
    if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
    {
      KVBM_LOCKED(locked);
      StoreState& s = *state_;
      locked.reclaim();
      const std::size_t ready = s.free.size() + s.inactive->size();
      if (ready >= count) return true;
      if (ready + s.fences.parked_count() < count) return false;
      // Copy (not take) the fences of the oldest parked slots we need; reclaim() frees them.
      s.fences.copy_oldest(count - ready, fences);
    }
    if (deadline) {
      // Bounded: poll with a backoff up to 1 ms, since a Fence has no timed wait.
      auto pause = std::chrono::microseconds(20);
      for (const Fence& fence : fences) {
        while (!fence.ready()) {
          if (std::chrono::steady_clock::now() >= *deadline) return false;
          std::this_thread::sleep_for(pause);
          pause = std::min(pause * 2, std::chrono::microseconds(1000));
        }
      }
    } else {
      for (const Fence& fence : fences) fence.wait();
    }
    metrics_.fence_waits.fetch_add(fences.size(), std::memory_order_relaxed);
    fences.clear();
  }
}

void BlockStore::add_fence(BlockId id, Fence fence) {
  if (fence.ready()) return;
  std::lock_guard lock{state_->mutex};
  state_->fences.attach(id, std::move(fence));
}

void BlockStore::stage(BlockId id, const SequenceHash& hash) noexcept {
  stage(id, hash, std::span<const std::uint32_t>{});
}

void BlockStore::stage(BlockId id, const SequenceHash& hash,
                       std::span<const std::uint32_t> tokens) noexcept {
  stage(id, hash, tokens, nullptr);
}

void BlockStore::stage(BlockId id, const SequenceHash& hash, std::span<const std::uint32_t> tokens,
                       std::shared_ptr<const HashKeys> keys) noexcept {
  // Wire hashes before the lock (events is fixed at construction, so this read is safe); a
  // pulling sink's thread hashes them instead.
  const bool hash_now = state_->events != nullptr && state_->events->wire_at_stage();
  const std::uint64_t wire = hash_now ? wire_hash(hash) : 0;
  const std::uint64_t parent_wire = hash_now ? parent_wire_hash(hash).value_or(0) : 0;
  std::lock_guard lock{state_->mutex};
  Slot& slot = state_->slots[id];
  assert(slot.state == SlotState::Mutable);
  slot.state = SlotState::Staged;
  slot.hash = hash;
  if (state_->events) {  // kept for the Stored event; empty tokens: staged by hash alone
    if (tokens.empty()) {
      state_->events->forget_tokens(id);
    } else {
      state_->events->stage_tokens(id, tokens);
    }
    state_->events->stage_wire(id, wire, parent_wire);
    state_->events->swap_keys(id, keys);  // the slot's previous keys die with `keys`, unlocked
  }
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
  // Registry entries of every input, taken before any slot changes (they are the only thing
  // registration allocates): a bad_alloc leaves the pool, the registry and the caller's blocks
  // as they were.
  std::vector<PendingEntry> entries(count);
  {
    KVBM_LOCKED(locked);
    StoreState& s = *state_;
    std::size_t taken = 0;
    try {
      for (; taken < count; ++taken) {
        entries[taken].entry =
            s.core->acquire_present(input(taken).second, s.tier, &entries[taken].created);
      }
      if (s.events) s.events->reserve_stored(count);
    } catch (...) {
      while (taken > 0) s.core->release_present(entries[--taken].entry, s.tier);
      throw;
    }
    // From here nothing throws: the caller disarms its handles once this returns.
    for (std::size_t i = 0; i < count; ++i) {
      const auto [id, hash] = input(i);
      Slot& slot = s.slots[id];
      assert(slot.state == SlotState::Staged && slot.hash == hash);
      const std::uint32_t generation = ref_generation(slot_refs_[id].load(std::memory_order_relaxed));

      if (auto existing = locked.acquire(hash)) {
        if (s.duplication_policy == DuplicationPolicy::Reject) {
          s.core->release_present(entries[i].entry, s.tier);
          locked.to_free(id);
          ++deferred.store_unrefs;
          metrics_.registration_dedup.fetch_add(1, std::memory_order_relaxed);
          emit(*existing);
          continue;
        }
        // Allow: a second physical copy; the reference just taken keeps the primary alive.
        slot.state = SlotState::Duplicate;
        slot.keepalive_id = existing->block_id;
        slot.entry = entries[i].entry;
        slot_refs_[id].store(pack(generation, 1), std::memory_order_release);
        metrics_.duplicate_blocks.fetch_add(1, std::memory_order_relaxed);
        emit(ImmutableRef{id, generation, hash});
        continue;
      }
      slot.entry = entries[i].entry;
      if (entries[i].created && s.core->tracker()) fresh.push_back(hash);
      slot.state = SlotState::Primary;
      s.by_hash.insert(hash.mix(), id);  // never grows (see StoreState::by_hash)
      if (s.events) s.events->stored(id, hash);
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
  return acquire_each(hashes, Lookup::Prefix, nullptr, emit, metrics_.match_hashes_requested,
                      metrics_.match_blocks_returned);
}

std::size_t BlockStore::scan(std::span<const SequenceHash> hashes,
                             FunctionRef<bool(const SequenceHash&)> wanted,
                             FunctionRef<void(const ImmutableRef&)> emit) {
  KVBM_NVTX_RANGE_PAYLOAD("scan_matches", hashes.size());
  return acquire_each(hashes, Lookup::EveryHash, &wanted, emit, metrics_.scan_hashes_requested,
                      metrics_.scan_blocks_returned);
}

std::size_t BlockStore::acquire_each(std::span<const SequenceHash> hashes, Lookup lookup,
                                     const FunctionRef<bool(const SequenceHash&)>* wanted,
                                     FunctionRef<void(const ImmutableRef&)> emit,
                                     StripedCounter& requested, StripedCounter& returned) {
  std::size_t found = 0;
  std::size_t next = 0;
  if (lookup == Lookup::Prefix) {
    // Blocks that other holders keep alive need only a reference each: taken without the lock
    // until the first one that is not (cached, mid-release, or a miss), which the lock settles.
    for (; next < hashes.size(); ++next) {
      const TakenRef taken = try_acquire_held(hashes[next]);
      if (taken.block_id == kInvalidBlockId) break;
      // Built here, not returned through memory: a ref written field by field and read back
      // whole by emit stalls on store forwarding (measured a fifth of a held block's time).
      const ImmutableRef ref{taken.block_id, taken.generation, hashes[next]};
      emit(ref);
      ++found;
    }
  }
  if (next < hashes.size()) {
    KVBM_LOCKED(locked);
    for (const SequenceHash& hash : hashes.subspan(next)) {
      if (wanted != nullptr && !(*wanted)(hash)) continue;
      const auto ref = locked.acquire(hash);
      if (!ref) {
        if (lookup == Lookup::Prefix) break;
        continue;
      }
      emit(*ref);
      ++found;
    }
  }
  requested.fetch_add(hashes.size());
  returned.fetch_add(found);
  metrics_.inflight_immutable.fetch_add(static_cast<std::int64_t>(found),
                                        std::memory_order_relaxed);
  return found;
}

BlockStore::TakenRef BlockStore::try_acquire_held(const SequenceHash& hash) noexcept {
  TakenRef out{kInvalidBlockId, 0};
  state_->by_hash.find_if(hash.mix(), [&](BlockId id) {
    // Only a count above zero may grow here: zero means cached or mid-release, which the lock
    // settles. A failed exchange means another thread is changing this count right now, most
    // likely matching the same chain: taking the lock then lets the two take turns instead of
    // moving every block's line between their cores (two threads on one chain: 0.6x one
    // thread's throughput this way, 0.34x retrying without the lock).
    auto word = slot_refs_[id].load(std::memory_order_acquire);
    if (ref_count(word) == 0 ||
        !slot_refs_[id].compare_exchange_strong(word, word + 1, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
      return false;
    }
    // Holding a reference, the tenancy cannot end: its state and hash (written before its count
    // was published with release) are stable to read. A duplicate, or another hash's tenancy of
    // a reused slot, is given back.
    const Slot& slot = state_->slots[id];
    if (slot.state == SlotState::Primary && slot.hash == hash) {
      out = TakenRef{id, ref_generation(word)};
      return true;
    }
    slot_release(id, ref_generation(word));
    return false;
  });
  return out;
}

std::optional<ImmutableRef> BlockStore::acquire(const SequenceHash& hash) {
  KVBM_NVTX_RANGE("upgrade_weak_block");
  KVBM_LOCKED(locked);
  auto ref = locked.acquire(hash);
  if (ref) metrics_.inflight_immutable.fetch_add(1, std::memory_order_relaxed);
  return ref;
}

bool BlockStore::slot_holds(BlockId id, const SequenceHash& hash) const noexcept {
  // Unlocked: the caller holds a strong reference, and the hash only changes after a tenancy
  // ends (its reference word, read with acquire by the caller, orders the write before).
  return state_->slots[id].hash == hash;
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
  const std::size_t first_event = s.events ? s.events->pending_size() : 0;
  const std::size_t n = s.inactive->size();
  if (s.events) s.events->reserve_removed(n + s.fences.parked_count());  // before any change
  std::span<BlockId> victims{s.scratch.data(), n};
  const std::size_t got = s.inactive->evict(victims);
  for (std::size_t i = 0; i < got; ++i) {
    locked.forget(s.slots[victims[i]]);
    locked.to_free(victims[i]);
  }
  std::size_t drained = got;
  for (BlockId id = s.fences.oldest_parked(); id != kInvalidBlockId;
       id = s.fences.next_parked(id)) {
    Slot& slot = s.slots[id];
    if (slot.state != SlotState::Inactive) continue;
    locked.forget(slot);
    slot.state = SlotState::Reset;  // stays parked until its fences complete
    metrics_.reset_pool_size.fetch_add(1, std::memory_order_relaxed);
    ++drained;
  }
  metrics_.inactive_pool_size.fetch_sub(static_cast<std::int64_t>(drained),
                                        std::memory_order_relaxed);
  // Nothing matchable is left: one Cleared says it (and lets a router drop the whole pool).
  if (s.events && drained > 0 && s.by_hash.empty()) s.events->collapse_to_cleared(first_event);
  return drained;
}

void BlockStore::for_each_matchable(FunctionRef<void(const SequenceHash&)> fn) const {
  std::lock_guard lock{state_->mutex};
  state_->by_hash.for_each([&](BlockId id) { fn(state_->slots[id].hash); });
}

std::size_t BlockStore::available_blocks() const {
  auto* self = const_cast<BlockStore*>(this);  // reclaiming is invisible bookkeeping
  Deferred deferred;
  std::lock_guard lock{state_->mutex};
  Locked locked{*state_, *self, self->slot_refs_.get(), self->metrics_, deferred};
  locked.reclaim();
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

}  // namespace kvbm::detail
