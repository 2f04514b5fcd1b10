// src/eviction/fifo_policy.hpp — FIFO (order of release) eviction.
//
// The original pairs a hash map with a FIFO reuse policy keyed by a monotonic insertion counter
// (never a timestamp: two releases within one clock tick must still be ordered). Here the store
// already owns the hash -> slot map, so the policy is the order alone: each insert takes the next
// counter value, and victims leave in increasing counter order. Since counters only grow, the
// order is exactly the release order, which an intrusive list over slot ids keeps in O(1).
// Complexity: O(1) insert / remove / evict one; no allocation after construction.
#pragma once

#include <cstdint>
#include <vector>

#include "eviction/lru_policy.hpp"

namespace kvbm::detail {

class FifoPolicy final : public InactivePolicy {
 public:
  explicit FifoPolicy(std::size_t capacity);
  /// Throws std::logic_error if `id` is already queued (a store bug: a slot released twice).
  void insert(BlockId id, const SequenceHash& hash) override;
  /// Throws std::logic_error if `id` is not queued.
  void remove(BlockId id, const SequenceHash& hash) override;
  std::size_t evict(std::span<BlockId> out) override;
  [[nodiscard]] std::size_t size() const noexcept override { return order_.size(); }
  [[nodiscard]] bool contains(BlockId id) const noexcept override {
    return id < key_.size() && order_.contains(id);
  }
  [[nodiscard]] const char* name() const noexcept override { return "fifo"; }
  [[nodiscard]] std::unique_ptr<InactivePolicy> clone() const override {
    return std::make_unique<FifoPolicy>(*this);
  }

  /// The insertion counter value `id` was queued with (diagnostics and tests); 0 if absent.
  [[nodiscard]] std::uint64_t key_of(BlockId id) const noexcept {
    return contains(id) ? key_[id] : 0;
  }
  /// Id that would be evicted next, kInvalidBlockId when empty (does not change the order).
  [[nodiscard]] BlockId peek() const noexcept { return order_.front(); }

 private:
  IdList order_;
  std::vector<std::uint64_t> key_;
  std::uint64_t next_key_ = 1;
};

}  // namespace kvbm::detail
