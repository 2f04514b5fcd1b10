// A store's hash -> slot index, read under the pool lock and without it (internal).
//
// Why: matching a chain whose blocks are already held (the call an engine makes every step)
// needs no state change beyond each block's reference count, yet under one pool mutex two
// threads matching disjoint chains serialise on it, and one thread pays a locked acquire and
// release per call. Lookups here find candidate slots with plain loads; an unlocked caller then
// takes a reference only if the slot's count is non-zero and checks the slot's hash and state
// while holding it, so a stale or colliding entry is never returned, only skipped.
//
// Contract: writers (insert, erase) run under the pool lock, one at a time; under that lock
// lookups and for_each are exact. Unlocked readers run on any thread, any time, and may miss an
// entry that an erase is shifting back, or see one twice: a miss means "ask under the lock",
// never "absent". Linear probing with backward-shift deletion (no tombstones, so no rebuilds).
// Entry: tag (high half of the hash's mix) << 32 | (slot id + 1); 0 is empty. The home cell is
// the tag's low bits, so an erase can tell where a following entry belongs without its slot.
// Capacity: a power of two of at least twice the slots (at most half full). Memory: 16-32 bytes
// a slot. Complexity: O(1) expected per call; for_each O(capacity).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "kvbm/types.hpp"

namespace kvbm::detail {

class LockFreeHashIndex {
 public:
  explicit LockFreeHashIndex(std::size_t slots)
      : mask_{std::bit_ceil(std::max<std::size_t>(2 * slots, 64)) - 1},
        cells_{std::make_unique<std::atomic<std::uint64_t>[]>(mask_ + 1)} {}

  /// Under the pool lock. `id` must not be present, and at most `slots` entries may be.
  void insert(std::uint64_t mix, BlockId id) noexcept {
    assert(size_ < (mask_ + 1) / 2 && "more entries than the slots the index was sized for");
    std::size_t i = home(mix);
    while (cells_[i].load(std::memory_order_relaxed) != 0) i = (i + 1) & mask_;
    // release: an unlocked reader that sees the entry sees the slot as the writer left it.
    cells_[i].store(entry(mix, id), std::memory_order_release);
    ++size_;
  }

  /// Under the pool lock. `id` must be present under `mix`. Entries after it in its run move
  /// back into the hole, each written to its new cell before its old one is reused.
  void erase(std::uint64_t mix, BlockId id) noexcept {
    const std::uint64_t wanted = entry(mix, id);
    std::size_t hole = home(mix);
    while (cells_[hole].load(std::memory_order_relaxed) != wanted) {
      assert(cells_[hole].load(std::memory_order_relaxed) != 0 && "erase of an absent entry");
      hole = (hole + 1) & mask_;
    }
    for (std::size_t next = (hole + 1) & mask_;; next = (next + 1) & mask_) {
      const std::uint64_t word = cells_[next].load(std::memory_order_relaxed);
      if (word == 0) break;
      // The entry stays unless the hole lies on its probe path (between its home and `next`).
      const std::size_t from_home = (next - home(word)) & mask_;
      const std::size_t hole_from_home = (hole - home(word)) & mask_;
      if (hole_from_home < from_home) {
        cells_[hole].store(word, std::memory_order_release);
        hole = next;
      }
    }
    cells_[hole].store(0, std::memory_order_relaxed);
    --size_;
  }

  /// Any thread: calls `take(id)` for each slot filed under `mix`'s tag, in probe order, until
  /// one returns true; returns whether one did.
  template <class Take>
  bool find_if(std::uint64_t mix, Take&& take) const noexcept {
    const std::uint64_t tag = mix >> 32;
    for (std::size_t i = home(mix);; i = (i + 1) & mask_) {
      const std::uint64_t word = cells_[i].load(std::memory_order_acquire);
      if (word == 0) return false;
      if ((word >> 32) == tag && take(static_cast<BlockId>(word - 1))) return true;
    }
  }

  /// Under the pool lock: `fn(id)` for every entry, in table order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (std::size_t i = 0; i <= mask_; ++i) {
      const std::uint64_t word = cells_[i].load(std::memory_order_relaxed);
      if (word != 0) fn(static_cast<BlockId>(word - 1));
    }
  }

  /// Under the pool lock.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

 private:
  static std::uint64_t entry(std::uint64_t mix, BlockId id) noexcept {
    return (mix >> 32 << 32) | (std::uint64_t{id} + 1);
  }
  /// From the tag (bits 32 and up), so an entry's home is known from the entry alone.
  std::size_t home(std::uint64_t mix_or_entry) const noexcept {
    return static_cast<std::size_t>(mix_or_entry >> 32) & mask_;
  }

  std::size_t mask_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> cells_;
  std::size_t size_ = 0;
};

}  // namespace kvbm::detail
