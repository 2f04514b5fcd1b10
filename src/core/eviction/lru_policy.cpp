// Least-recently-released-first eviction: an intrusive doubly-linked list over slot ids.
#include "eviction/lru_policy.hpp"

namespace kvbm::detail {

IdList::IdList(std::size_t capacity) : prev_(capacity, kInvalidBlockId), next_(capacity, kInvalidBlockId), linked_(capacity, false) {}

void IdList::push_back(BlockId id) noexcept {
  prev_[id] = tail_;
  next_[id] = kInvalidBlockId;
  if (tail_ != kInvalidBlockId) next_[tail_] = id; else head_ = id;
  tail_ = id;
  linked_[id] = true;
  ++size_;
}

void IdList::unlink(BlockId id) noexcept {
  const BlockId p = prev_[id];
  const BlockId n = next_[id];
  if (p != kInvalidBlockId) next_[p] = n; else head_ = n;
  if (n != kInvalidBlockId) prev_[n] = p; else tail_ = p;
  linked_[id] = false;
  --size_;
}

void IdList::replace(BlockId old_id, BlockId new_id) noexcept {
  const BlockId p = prev_[old_id];
  const BlockId n = next_[old_id];
  prev_[new_id] = p;
  next_[new_id] = n;
  if (p != kInvalidBlockId) next_[p] = new_id; else head_ = new_id;
  if (n != kInvalidBlockId) prev_[n] = new_id; else tail_ = new_id;
  linked_[old_id] = false;
  linked_[new_id] = true;
}

BlockId IdList::pop_front() noexcept {
  const BlockId id = head_;
  if (id != kInvalidBlockId) unlink(id);
  return id;
}

std::size_t LruPolicy::evict(std::span<BlockId> out) {
  std::size_t n = 0;
  while (n < out.size() && !order_.empty()) out[n++] = order_.pop_front();
  return n;
}

}  // namespace kvbm::detail
