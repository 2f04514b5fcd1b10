// src/core/store_state.hpp — the state behind one BlockStore: its slots, the
// free list, the hash index, the eviction policy and the fence ledger
// (internal).
//
// Everything here is guarded by StoreState::mutex (the hash index is also read
// without it, by matches of held blocks); block_store.cpp makes the transitions
// and store_invariants.cpp checks them. Nothing allocates after construction
// except fence nodes.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "eviction/inactive_policy.hpp"
#include "kvbm/detail/block_store.hpp"
#include "kvbm/registry.hpp"
#include "lock_free_hash_index.hpp"
#include "registry_core.hpp"
#include "slot_fence_ledger.hpp"
#include "store_events.hpp"

namespace kvbm::detail {

enum class SlotState : std::uint8_t { Reset, Mutable, Staged, Primary, Duplicate, Inactive };
inline constexpr std::size_t kSlotStateCount = 6;

/// Fixed-capacity FIFO of slot ids (the free list): no allocation after
/// construction.
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

struct Slot {
  SequenceHash hash{};
  RegistryEntry* entry = nullptr;          // while Primary / Duplicate / Inactive
  BlockId keepalive_id = kInvalidBlockId;  // Duplicate: the primary it keeps alive (whose
                                           // generation cannot move while it does)
  SlotState state = SlotState::Reset;
  bool reset_on_release = false;
};

static_assert(sizeof(Slot) <= 32, "a slot is 32 bytes (memory per block)");

struct StoreState {
  StoreState(const StoreConfig& config, const BlockRegistry& registry_handle,
             std::unique_ptr<InactivePolicy> policy, StoreMetrics& metrics)
      : slots(config.block_count),
        free(config.block_count),
        by_hash(config.block_count),
        inactive{std::move(policy)},
        registry{registry_handle},
        core{registry_handle.core().get()},
        tier{core->tier_index(config.tier_key)},
        duplication_policy{config.duplication_policy},
        default_reset_on_release{config.default_reset_on_release},
        fences(config.block_count, metrics),
        scratch(config.block_count) {
    for (std::size_t id = 0; id < config.block_count; ++id) {
      free.push_back(static_cast<BlockId>(id));
      slots[id].reset_on_release = default_reset_on_release;
    }
  }

  mutable std::mutex mutex;
  std::vector<Slot> slots;
  FreeRing free;
  /// hash -> slot for every Primary and Inactive slot (at most one per hash). Written under this
  /// mutex; matches of held blocks also read it without (see lock_free_hash_index.hpp). Sized
  /// for the pool at construction: it never allocates afterwards.
  LockFreeHashIndex by_hash;
  std::unique_ptr<InactivePolicy> inactive;
  BlockRegistry registry;
  RegistryCore* core;
  std::size_t tier;
  DuplicationPolicy duplication_policy;
  bool default_reset_on_release;
  /// Pending fences; released slots (Reset or Inactive) parked on them are
  /// logically free or cached, but never handed out ready until reclaimed.
  SlotFenceLedger fences;
  std::vector<BlockId> scratch;  // eviction victims (capacity = block count)

  /// Under the mutex: the Primary or Inactive slot holding `hash`, or kInvalidBlockId.
  [[nodiscard]] BlockId find(const SequenceHash& hash) const noexcept {
    BlockId found = kInvalidBlockId;
    by_hash.find_if(hash.mix(), [&](BlockId id) {
      if (slots[id].hash != hash) return false;
      found = id;
      return true;
    });
    return found;
  }
  /// Event records and their delivery; null without a sink (each hook is one null check).
  std::unique_ptr<StoreEvents> events;
};

}  // namespace kvbm::detail
