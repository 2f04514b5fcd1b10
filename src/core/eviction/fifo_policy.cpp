// FIFO eviction: victims in increasing insertion-counter order (= release order).
#include "eviction/fifo_policy.hpp"

#include <stdexcept>
#include <string>

namespace kvbm::detail {

FifoPolicy::FifoPolicy(std::size_t capacity) : order_{capacity}, key_(capacity, 0) {}

void FifoPolicy::insert(BlockId id, const SequenceHash&) {
  if (contains(id)) {
    throw std::logic_error("fifo policy: block " + std::to_string(id) + " already exists");
  }
  key_[id] = next_key_++;
  order_.push_back(id);
}

void FifoPolicy::remove(BlockId id, const SequenceHash&) {
  if (!contains(id)) {
    throw std::logic_error("fifo policy: block " + std::to_string(id) + " not found");
  }
  order_.unlink(id);
  key_[id] = 0;
}

std::size_t FifoPolicy::evict(std::span<BlockId> out) {
  std::size_t n = 0;
  while (n < out.size() && !order_.empty()) {
    const BlockId id = order_.pop_front();
    key_[id] = 0;
    out[n++] = id;
  }
  return n;
}

}  // namespace kvbm::detail
