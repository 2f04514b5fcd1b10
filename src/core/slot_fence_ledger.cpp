#include "slot_fence_ledger.hpp"

#include <utility>

namespace kvbm::detail {

SlotFenceLedger::SlotFenceLedger(std::size_t slot_count, StoreMetrics& metrics)
    : heads_(slot_count, kNone), parked_(slot_count), metrics_{metrics} {}

void SlotFenceLedger::attach(BlockId id, Fence fence) {
  std::uint32_t index = free_nodes_;
  if (index == kNone) {
    index = static_cast<std::uint32_t>(nodes_.size());
    nodes_.emplace_back();
  } else {
    free_nodes_ = nodes_[index].next;
  }
  nodes_[index].fence = std::move(fence);
  nodes_[index].next = heads_[id];
  heads_[id] = index;
}

bool SlotFenceLedger::poll(BlockId id) noexcept {
  std::uint32_t* link = &heads_[id];
  while (*link != kNone) {
    Node& node = nodes_[*link];
    if (node.fence.ready()) {
      const std::uint32_t done = *link;
      *link = node.next;
      free_node(done);
    } else {
      link = &node.next;
    }
  }
  return heads_[id] == kNone;
}

void SlotFenceLedger::hand_over(BlockId id, std::vector<Fence>* out) {
  while (heads_[id] != kNone) {
    const std::uint32_t index = heads_[id];
    heads_[id] = nodes_[index].next;
    if (out != nullptr) out->push_back(std::move(nodes_[index].fence));
    free_node(index);
  }
}

void SlotFenceLedger::copy_oldest(std::size_t count, std::vector<Fence>& out) const {
  for (BlockId id = parked_.front(); id != kInvalidBlockId && count > 0;
       id = parked_.next(id), --count) {
    for (std::uint32_t n = heads_[id]; n != kNone; n = nodes_[n].next)
      out.push_back(nodes_[n].fence);
  }
}

void SlotFenceLedger::park(BlockId id) noexcept {
  parked_.push_back(id);
  metrics_.fenced_slots.fetch_add(1, std::memory_order_relaxed);
}

void SlotFenceLedger::unpark(BlockId id) noexcept {
  parked_.unlink(id);
  metrics_.fenced_slots.fetch_sub(1, std::memory_order_relaxed);
}

void SlotFenceLedger::free_node(std::uint32_t index) noexcept {
  nodes_[index].fence = Fence{};
  nodes_[index].next = free_nodes_;
  free_nodes_ = index;
}

}  // namespace kvbm::detail
