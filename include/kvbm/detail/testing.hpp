// kvbm/detail/testing.hpp — hooks for kvbm's own tests; not part of the public
// API.
//
// Nothing here is needed to use kvbm, and nothing here is stable. The hooks
// change timing only (they never change what a call does), so a test can force
// an interleaving deterministically.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "kvbm/block_manager.hpp"

namespace kvbm::detail {

/// Everything a pool's state consists of, in comparable form (fault-injection tests check that a
/// failed call left it unchanged).
struct StoreDump {
  struct SlotDump {
    int state;
    SequenceHash hash;
    bool registered;
    BlockId keepalive;
    bool reset_on_release;
    std::uint64_t refs;  // [generation:32][count:32]
    friend bool operator==(const SlotDump&, const SlotDump&) = default;
  };
  std::vector<BlockId> free_order;      // the free list, next to be handed out first
  std::vector<BlockId> eviction_order;  // the inactive pool in eviction order
  std::vector<BlockId> parked;          // fenced slots, oldest first
  std::vector<SlotDump> slots;
  std::size_t indexed = 0;              // hash index size
  friend bool operator==(const StoreDump&, const StoreDump&) = default;
};

struct TestingAccess {
  /// O(pool) copy of the pool's state under its lock (drains a copy of the eviction policy).
  static StoreDump dump(const BlockStore& store);
  /// Sets the generation of slot `id`'s reference word, keeping its count.
  static void set_generation(BlockStore& store, BlockId id, std::uint32_t generation);

  template <class Tier>
  static BlockStore& store(BlockManager<Tier>& manager) noexcept {
    return *manager.store_;
  }
  static void set_release_hook(BlockStore& store, std::function<void()> hook) {
    store.release_hook_ = std::move(hook);
  }
  /// Runs `fn` while holding the pool lock.
  static void with_pool_lock(BlockStore& store, const std::function<void()>& fn);
};

}  // namespace kvbm::detail

namespace kvbm::testing {

/// Runs `hook` on a releasing thread after a tenancy's reference count reached
/// zero and before that thread takes the pool lock, so a test can park a last
/// drop and race a lookup against it. Set it before any thread uses the pool
/// (it is read without synchronization).
template <class Tier>
void set_release_hook(BlockManager<Tier>& manager, std::function<void()> hook) {
  detail::TestingAccess::set_release_hook(detail::TestingAccess::store(manager), std::move(hook));
}

/// The pool's whole state (free list order, eviction order, slots, index size).
template <class Tier>
[[nodiscard]] detail::StoreDump dump(BlockManager<Tier>& manager) {
  return detail::TestingAccess::dump(detail::TestingAccess::store(manager));
}

/// Sets slot `id`'s generation (the count is kept), e.g. near 2^32 so a test can cross the
/// wrap in a few reuses instead of 2^32. Only on a quiescent pool; changes nothing else.
template <class Tier>
void set_slot_generation(BlockManager<Tier>& manager, BlockId id, std::uint32_t generation) {
  detail::TestingAccess::set_generation(detail::TestingAccess::store(manager), id, generation);
}

/// Runs `fn` on the calling thread while it holds the pool lock, so a test can tell which calls
/// complete without that lock. `fn` must not call into the manager from this thread.
template <class Tier>
void with_pool_lock(BlockManager<Tier>& manager, const std::function<void()>& fn) {
  detail::TestingAccess::with_pool_lock(detail::TestingAccess::store(manager), fn);
}

/// The generation of slot `id`'s current (or next) tenancy.
template <class Tier>
[[nodiscard]] std::uint32_t slot_generation(BlockManager<Tier>& manager, BlockId id) {
  const auto dumped = dump(manager);
  return detail::ref_generation(dumped.slots.at(id).refs);
}

}  // namespace kvbm::testing
