// kvbm/pin.hpp — LifecyclePinRef: a type-erased keepalive naming one slot.
//
// A pin names a slot by (manager_id, block_id, sequence_hash) whatever the manager's tier, so an
// offload connector can keep heterogeneous lists of slots it is moving. While a pin lives, the
// slot stays registered and cannot be cached or recycled, exactly as if an ImmutableBlock were
// held. Copying a pin is one atomic increment. Thread safety: as for ImmutableBlock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <utility>

#include "kvbm/detail/block_store.hpp"
#include "kvbm/detail/slot_ref.hpp"

namespace kvbm {

template <class Tier>
class ImmutableBlock;

class LifecyclePinRef : private detail::SlotRef</*CountsInflight=*/false> {
 public:
  LifecyclePinRef(const LifecyclePinRef&) noexcept = default;
  LifecyclePinRef(LifecyclePinRef&&) noexcept = default;
  LifecyclePinRef& operator=(const LifecyclePinRef&) noexcept = default;
  LifecyclePinRef& operator=(LifecyclePinRef&&) noexcept = default;
  ~LifecyclePinRef() = default;

  [[nodiscard]] ManagerId manager_id() const {
    return detail::live_store(store_, "LifecyclePinRef::manager_id").id();
  }
  [[nodiscard]] BlockId block_id() const {
    detail::live_store(store_, "LifecyclePinRef::block_id");
    return block_id_;
  }
  [[nodiscard]] SequenceHash sequence_hash() const {
    detail::live_store(store_, "LifecyclePinRef::sequence_hash");
    return hash_;
  }
  /// False once moved from.
  [[nodiscard]] bool valid() const noexcept { return store_ != nullptr; }
  /// Attaches a fence for asynchronous work on this slot (e.g. an offload copy reading it): the
  /// slot is not handed out again, after every handle and pin is gone, until it is ready.
  void add_fence(Fence fence) const {
    detail::live_store(store_, "LifecyclePinRef::add_fence").add_fence(block_id_, std::move(fence));
  }
  /// Strong references to the slot's tenancy (blocks, pins, duplicate keep-alives); diagnostics.
  [[nodiscard]] std::size_t use_count() const {
    return detail::live_store(store_, "LifecyclePinRef::use_count").slot_use_count(block_id_);
  }

  friend std::ostream& operator<<(std::ostream& os, const LifecyclePinRef& pin) {
    if (pin.store_ == nullptr) return os << "LifecyclePinRef{moved-from}";
    return os << "LifecyclePinRef{" << pin.manager_id() << ", block " << pin.block_id_ << ", "
              << pin.hash_ << ", use_count " << pin.use_count() << '}';
  }

  /// For the library (transfer engine, fences); not for users.
  [[nodiscard]] detail::BlockStore* store() const noexcept { return store_; }

 private:
  template <class Tier>
  friend class ImmutableBlock;
  LifecyclePinRef(detail::BlockStore* store, BlockId id, std::uint32_t generation,
                  const SequenceHash& hash) noexcept
      : SlotRef(store, id, generation, hash) {}
};

}  // namespace kvbm
