// kvbm/detail/testing.hpp — hooks for kvbm's own tests; not part of the public
// API.
//
// Nothing here is needed to use kvbm, and nothing here is stable. The hooks
// change timing only (they never change what a call does), so a test can force
// an interleaving deterministically.
#pragma once

#include <functional>
#include <utility>

#include "kvbm/block_manager.hpp"

namespace kvbm::detail {

struct TestingAccess {
  template <class Tier>
  static BlockStore& store(BlockManager<Tier>& manager) noexcept {
    return *manager.store_;
  }
  static void set_release_hook(BlockStore& store, std::function<void()> hook) {
    store.release_hook_ = std::move(hook);
  }
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

}  // namespace kvbm::testing
