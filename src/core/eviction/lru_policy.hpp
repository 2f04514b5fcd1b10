// src/eviction/lru_policy.hpp — IdList (intrusive list over dense slot ids) and the LRU policy.
#pragma once

#include <memory>
#include <stdexcept>
#include <vector>

#include "eviction/inactive_policy.hpp"

namespace kvbm::detail {

/// Doubly-linked list threaded through arrays indexed by slot id: O(1) push/unlink/pop and no
/// allocation after construction. Reusable by any policy that keeps one or more FIFO orders.
class IdList {
 public:
  explicit IdList(std::size_t capacity);
  void push_back(BlockId id) noexcept;
  void unlink(BlockId id) noexcept;
  /// `new_id` (not linked) takes linked `old_id`'s place in the order.
  void replace(BlockId old_id, BlockId new_id) noexcept;
  /// kInvalidBlockId when empty.
  BlockId pop_front() noexcept;
  [[nodiscard]] BlockId front() const noexcept { return head_; }
  /// kInvalidBlockId when empty.
  [[nodiscard]] BlockId back() const noexcept { return tail_; }
  /// Successor of a linked id (kInvalidBlockId at the tail).
  [[nodiscard]] BlockId next(BlockId id) const noexcept { return next_[id]; }
  [[nodiscard]] bool contains(BlockId id) const noexcept { return linked_[id]; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  std::vector<BlockId> prev_;
  std::vector<BlockId> next_;
  std::vector<bool> linked_;
  BlockId head_ = kInvalidBlockId;
  BlockId tail_ = kInvalidBlockId;
  std::size_t size_ = 0;
};

/// Evicts the block released longest ago. Hits remove the entry, so "recency" is the time of
/// the last release.
class LruPolicy final : public InactivePolicy {
 public:
  explicit LruPolicy(std::size_t capacity) : order_{capacity} {}
  void insert(BlockId id, const SequenceHash&) override { push(id); }
  // Recency needs no hash: the batch skips hash_of.
  void insert_many(std::span<const BlockId> ids,
                   FunctionRef<const SequenceHash&(BlockId)>) override {
    for (const BlockId id : ids) push(id);
  }
  void remove(BlockId id, const SequenceHash&) override {
    if (!order_.contains(id)) throw std::logic_error("lru policy: removing a block it does not hold");
    order_.unlink(id);
  }
  std::size_t evict(std::span<BlockId> out) override;
  [[nodiscard]] std::size_t size() const noexcept override { return order_.size(); }
  [[nodiscard]] bool contains(BlockId id) const noexcept override { return order_.contains(id); }
  [[nodiscard]] const char* name() const noexcept override { return "lru"; }
  [[nodiscard]] std::unique_ptr<InactivePolicy> clone() const override {
    return std::make_unique<LruPolicy>(*this);
  }

 private:
  void push(BlockId id) {
    if (order_.contains(id)) throw std::logic_error("lru policy: block inserted twice");
    order_.push_back(id);
  }

  IdList order_;
};

}  // namespace kvbm::detail
