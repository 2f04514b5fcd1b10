// The state dump, generation and pool-lock hooks of kvbm/detail/testing.hpp (tests only).
#include <mutex>

#include "kvbm/detail/testing.hpp"
#include "store_state.hpp"

namespace kvbm::detail {

StoreDump TestingAccess::dump(const BlockStore& store) {
  std::lock_guard lock{store.state_->mutex};
  const StoreState& s = *store.state_;
  StoreDump out;
  FreeRing free = s.free;  // drain copies: the live structures are untouched
  while (free.size() > 0) out.free_order.push_back(free.pop_front());
  auto policy = s.inactive->clone();
  out.eviction_order.resize(policy->size());
  out.eviction_order.resize(policy->evict(out.eviction_order));
  for (BlockId id = s.fences.oldest_parked(); id != kInvalidBlockId; id = s.fences.next_parked(id)) {
    out.parked.push_back(id);
  }
  out.slots.reserve(s.slots.size());
  for (BlockId id = 0; id < s.slots.size(); ++id) {
    const Slot& slot = s.slots[id];
    out.slots.push_back({static_cast<int>(slot.state), slot.hash, slot.entry != nullptr,
                         slot.keepalive_id, slot.reset_on_release,
                         store.slot_refs_[id].load(std::memory_order_relaxed)});
  }
  out.indexed = s.by_hash.size();
  return out;
}

void TestingAccess::set_generation(BlockStore& store, BlockId id, std::uint32_t generation) {
  std::lock_guard lock{store.state_->mutex};
  auto& word = store.slot_refs_[id];
  const auto count = ref_count(word.load(std::memory_order_relaxed));
  word.store((std::uint64_t{generation} << 32) | count, std::memory_order_release);
}

void TestingAccess::with_pool_lock(BlockStore& store, const std::function<void()>& fn) {
  std::lock_guard lock{store.state_->mutex};
  fn();
}

}  // namespace kvbm::detail
