// src/core/store_state.hpp — the state behind one BlockStore: its slots, the
// free list, the hash index, the eviction policy and the fence ledger
// (internal).
//
// Everything here is guarded by StoreState::mutex; block_store.cpp makes the
// transitions and store_invariants.cpp checks them. Nothing allocates after
// construction except fence nodes.
#pragma once

#include <absl/container/flat_hash_set.h>

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

/// Hashing and equality of slot ids by the hash their slot holds, and of hashes directly
/// (transparent): the index stores 4-byte ids, not 16-byte hashes next to them.
struct SlotHashOf {
  using is_transparent = void;
  const Slot* slots;
  std::size_t operator()(BlockId id) const noexcept { return slots[id].hash.mix(); }
  std::size_t operator()(const SequenceHash& hash) const noexcept { return hash.mix(); }
};
struct SlotHashEq {
  using is_transparent = void;
  const Slot* slots;
  bool operator()(BlockId a, BlockId b) const noexcept { return a == b; }
  bool operator()(BlockId a, const SequenceHash& b) const noexcept { return slots[a].hash == b; }
  bool operator()(const SequenceHash& a, BlockId b) const noexcept { return a == slots[b].hash; }
};

static_assert(sizeof(Slot) <= 32, "a slot is 32 bytes (memory per block)");

struct StoreState {
  StoreState(const StoreConfig& config, const BlockRegistry& registry_handle,
             std::unique_ptr<InactivePolicy> policy, StoreMetrics& metrics)
      : slots(config.block_count),
        free(config.block_count),
        inactive{std::move(policy)},
        registry{registry_handle},
        core{registry_handle.core().get()},
        tier{core->tier_index(config.tier_key)},
        duplication_policy{config.duplication_policy},
        default_reset_on_release{config.default_reset_on_release},
        fences(config.block_count, metrics),
        scratch(config.block_count) {
    // At least 4/3 of the pool (and 32) slots, sized by the constructor: the index is then at
    // most 3/4 full, under the 25/32 at which absl reclaims tombstones in place instead of
    // growing, so it never grows (a grow allocates, and a failed grow or reserve() corrupts this
    // absl release's table). 5 bytes a slot.
    const std::size_t n = config.block_count;
    by_hash = decltype(by_hash)(std::max<std::size_t>(n + n / 3 + 1, 32),
                                SlotHashOf{slots.data()}, SlotHashEq{slots.data()});
    for (std::size_t id = 0; id < config.block_count; ++id) {
      free.push_back(static_cast<BlockId>(id));
      slots[id].reset_on_release = default_reset_on_release;
    }
  }

  mutable std::mutex mutex;
  std::vector<Slot> slots;
  FreeRing free;
  /// hash -> slot for every Primary and Inactive slot (at most one per hash).
  absl::flat_hash_set<BlockId, SlotHashOf, SlotHashEq> by_hash{0, SlotHashOf{}, SlotHashEq{}};
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
  /// Event records and their delivery; null without a sink (each hook is one null check).
  std::unique_ptr<StoreEvents> events;
};

}  // namespace kvbm::detail
