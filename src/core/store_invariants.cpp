// BlockStore::check_invariants: every index and gauge agrees with the slot
// states.
#include <mutex>
#include <stdexcept>
#include <string>

#include "kvbm/detail/block_store.hpp"
#include "store_state.hpp"

namespace kvbm::detail {

void BlockStore::check_invariants() const {
  std::lock_guard lock{state_->mutex};
  const StoreState& s = *state_;
  std::size_t counts[kSlotStateCount] = {};
  std::size_t parked_by_state[2] = {};  // Reset, Inactive
  auto fail = [](const std::string& what) { throw std::logic_error("kvbm invariant: " + what); };
  auto fail_slot = [&](BlockId id, const char* what) {
    fail("slot " + std::to_string(id) + " " + what);
  };
  for (BlockId id = 0; id < s.slots.size(); ++id) {
    const Slot& slot = s.slots[id];
    const bool parked = s.fences.parked(id);
    ++counts[static_cast<int>(slot.state)];
    const bool indexed = slot.state == SlotState::Primary || slot.state == SlotState::Inactive;
    if (indexed) {
      if (s.find(slot.hash) != id) fail_slot(id, "not indexed by its hash");
    }
    const bool registered = indexed || slot.state == SlotState::Duplicate;
    if (registered != (slot.entry != nullptr)) fail_slot(id, "registry entry mismatch");
    if ((slot.state == SlotState::Inactive && !parked) != s.inactive->contains(id)) {
      fail_slot(id, "inactive membership mismatch");
    }
    if (parked && slot.state != SlotState::Reset && slot.state != SlotState::Inactive) {
      fail("held slot parked as fenced");
    }
    if (parked) ++parked_by_state[slot.state == SlotState::Reset ? 0 : 1];
  }
  const auto n = [&](SlotState st) { return counts[static_cast<int>(st)]; };
  const auto gauge = [](const std::atomic<std::int64_t>& value, std::size_t expected,
                        const char* name) {
    if (value.load() != static_cast<std::int64_t>(expected)) {
      throw std::logic_error(std::string("kvbm invariant: ") + name + " gauge");
    }
  };
  if (n(SlotState::Reset) != s.free.size() + parked_by_state[0]) {
    fail("free list + fenced free != Reset slots");
  }
  if (n(SlotState::Inactive) != s.inactive->size() + parked_by_state[1]) {
    fail("inactive pool + fenced cached != Inactive slots");
  }
  if (s.by_hash.size() != n(SlotState::Primary) + n(SlotState::Inactive)) {
    fail("hash index size mismatch");
  }
  gauge(metrics_.reset_pool_size, n(SlotState::Reset), "reset_pool_size");
  gauge(metrics_.inactive_pool_size, n(SlotState::Inactive), "inactive_pool_size");
  gauge(metrics_.fenced_slots, s.fences.parked_count(), "fenced_slots");
  gauge(metrics_.inflight_mutable, n(SlotState::Mutable), "inflight_mutable");
}

}  // namespace kvbm::detail
