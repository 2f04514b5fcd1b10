// kvbm/detail/slot_ref.hpp — the strong reference to a registered slot's tenancy that
// ImmutableBlock and LifecyclePinRef are made of; not part of the public API.
//
// Ownership: adopts one reference at construction; a copy takes one more (one atomic increment),
// destruction gives its one back, a move transfers it. A moved-from or default SlotRef holds no
// store and does nothing. ImmutableBlock also counts itself in the inflight_immutable gauge
// (CountsInflight); a pin does not. Thread safety: as for the handles (one owner per object).
#pragma once

#include <cstdint>
#include <utility>

#include "kvbm/detail/block_store.hpp"

namespace kvbm::detail {

template <bool CountsInflight>
class SlotRef {
 public:
  SlotRef() noexcept = default;
  SlotRef(BlockStore* store, BlockId id, std::uint32_t generation, const SequenceHash& hash) noexcept
      : store_{store}, block_id_{id}, generation_{generation}, hash_{hash} {}
  SlotRef(const SlotRef& other) noexcept
      : store_{other.store_}, block_id_{other.block_id_}, generation_{other.generation_},
        hash_{other.hash_} {
    if (store_ == nullptr) return;  // a copy of an empty handle is empty
    store_->slot_retain(block_id_);
    if constexpr (CountsInflight) {
      store_->metrics().inflight_immutable.fetch_add(1, std::memory_order_relaxed);
    }
  }
  SlotRef(SlotRef&& other) noexcept
      : store_{std::exchange(other.store_, nullptr)}, block_id_{other.block_id_},
        generation_{other.generation_}, hash_{other.hash_} {}
  SlotRef& operator=(SlotRef other) noexcept {
    std::swap(store_, other.store_);
    std::swap(block_id_, other.block_id_);
    std::swap(generation_, other.generation_);
    std::swap(hash_, other.hash_);
    return *this;
  }
  ~SlotRef() {
    if (store_ == nullptr) return;
    if constexpr (CountsInflight) {
      store_->metrics().inflight_immutable.fetch_sub(1, std::memory_order_relaxed);
    }
    store_->slot_release(block_id_, generation_);
  }

 protected:
  BlockStore* store_ = nullptr;
  BlockId block_id_ = kInvalidBlockId;
  std::uint32_t generation_ = 0;
  SequenceHash hash_{};
};

}  // namespace kvbm::detail
