// src/core/slot_fence_ledger.hpp — the pending fences of one store's slots, and
// the released slots parked on them (internal).
//
// A fence is asynchronous work (a copy) still reading or writing a slot. A
// released slot whose fences have not all completed is parked here instead of
// going back to the free list or the eviction policy: it is logically free or
// cached, but never handed out ready until reclaim() sees its fences done. The
// ledger is the only place that knows fences exist; the store decides where a
// reclaimed slot goes. Ownership and threading: one per store, used only under
// the store mutex. Fence nodes are recycled through a free list and the parked
// list is sized to the pool, so nothing allocates in steady state.
// attach/poll/hand_over are O(fences of the slot); park/unpark are O(1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "eviction/lru_policy.hpp"
#include "kvbm/detail/block_store.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/types.hpp"

namespace kvbm::detail {

class SlotFenceLedger {
 public:
  /// `metrics` carries the fenced_slots gauge and the fence_reclaims counter.
  SlotFenceLedger(std::size_t slot_count, StoreMetrics& metrics);

  // ---- fences of a slot ----
  /// Adds a fence to the slot's pending fences (the caller skips ready ones:
  /// polling costs).
  void attach(BlockId id, Fence fence);
  /// Polls the slot's fences without blocking and drops the completed ones;
  /// true if none remain.
  [[nodiscard]] bool poll(BlockId id) noexcept;
  /// Moves every pending fence of the slot to `out` (dropped if null): the
  /// caller now orders its work after them, so the slot no longer waits on
  /// them.
  void hand_over(BlockId id, std::vector<Fence>* out);
  /// Appends copies of the pending fences of the `count` oldest parked slots
  /// (they stay pending: waiting on the copies lets a later reclaim() find them
  /// ready).
  void copy_oldest(std::size_t count, std::vector<Fence>& out) const;

  /// How many fences hand_over() will move when an allocation takes, oldest first, the first
  /// `want_free` parked slots with is_free(id) and the first `want_cached` without: lets the
  /// caller reserve its output before changing anything.
  template <class IsFree>
  [[nodiscard]] std::size_t handover_count(std::size_t want_free, std::size_t want_cached,
                                           IsFree&& is_free) const noexcept {
    std::size_t total = 0;
    for (BlockId id = parked_.front(); id != kInvalidBlockId && want_free + want_cached > 0;
         id = parked_.next(id)) {
      const bool free = is_free(id);
      if (free ? want_free == 0 : want_cached == 0) continue;
      (free ? want_free : want_cached) -= 1;
      for (std::uint32_t n = heads_[id]; n != kNone; n = nodes_[n].next) ++total;
    }
    return total;
  }

  // ---- parked slots (released, waiting on their fences), oldest first ----
  void park(BlockId id) noexcept;
  void unpark(BlockId id) noexcept;
  [[nodiscard]] bool parked(BlockId id) const noexcept { return parked_.contains(id); }
  [[nodiscard]] std::size_t parked_count() const noexcept { return parked_.size(); }
  [[nodiscard]] bool none_parked() const noexcept { return parked_.empty(); }
  /// kInvalidBlockId when none is parked.
  [[nodiscard]] BlockId oldest_parked() const noexcept { return parked_.front(); }
  /// The next parked slot after `id` (kInvalidBlockId at the end); `id` must be
  /// parked.
  [[nodiscard]] BlockId next_parked(BlockId id) const noexcept { return parked_.next(id); }

  /// Unparks, oldest first, every parked slot whose fences all completed and
  /// hands it to `ready(id)` (which returns it to the free list or the eviction
  /// policy).
  template <class Ready>
  void reclaim(Ready&& ready) noexcept {
    for (BlockId id = parked_.front(); id != kInvalidBlockId;) {
      const BlockId next = parked_.next(id);
      if (poll(id)) {
        unpark(id);
        ready(id);
        metrics_.fence_reclaims.fetch_add(1, std::memory_order_relaxed);
      }
      id = next;
    }
  }

 private:
  static constexpr std::uint32_t kNone = 0xFFFF'FFFFu;
  /// One pending fence; a slot's fences form a singly linked list through
  /// `nodes_`.
  struct Node {
    Fence fence;
    std::uint32_t next = kNone;
  };
  void free_node(std::uint32_t index) noexcept;

  std::vector<std::uint32_t> heads_;  // per slot: first pending fence node, or kNone
  std::vector<Node> nodes_;
  std::uint32_t free_nodes_ = kNone;
  IdList parked_;
  StoreMetrics& metrics_;
};

}  // namespace kvbm::detail
