// Using a handle after it was moved from is bad input: every operation that needs the slot
// throws kvbm::InvalidHandle naming the operation, and the pool is untouched.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "test_helpers.hpp"

namespace kvbm::test {
namespace {

template <class F>
void expect_invalid(F&& f, const std::string& operation) {
  try {
    f();
    ADD_FAILURE() << operation << " on a moved-from handle did not throw";
  } catch (const InvalidHandle& e) {
    EXPECT_NE(std::string(e.what()).find(operation), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("moved-from"), std::string::npos) << e.what();
  }
}

TEST(MovedFromHandles, EveryOperationThrowsInvalidHandleAndThePoolIsUntouched) {
  auto m = create_test_manager(4);
  auto blocks = m.allocate_blocks(2).value();
  auto mutable_block = std::move(blocks[0]);
  MutableBlock<G1>& moved_mutable = blocks[0];
  expect_invalid([&] { (void)moved_mutable.block_size(); }, "MutableBlock::block_size");
  expect_invalid([&] { (void)moved_mutable.manager_id(); }, "MutableBlock::manager_id");
  expect_invalid([&] { moved_mutable.add_fence(Fence{}); }, "MutableBlock::add_fence");
  expect_invalid([&] { (void)std::move(moved_mutable).stage(synth_hash(1), kTestBlockSize); },
                 "MutableBlock::stage");
  expect_invalid([&] { (void)std::move(moved_mutable).complete(iota_block(0)); },
                 "MutableBlock::stage");

  auto complete = std::move(mutable_block).stage(synth_hash(1), kTestBlockSize);
  auto kept = std::move(complete);
  expect_invalid([&] { (void)complete.block_size(); }, "CompleteBlock::block_size");
  expect_invalid([&] { (void)complete.manager_id(); }, "CompleteBlock::manager_id");
  expect_invalid([&] { complete.add_fence(Fence{}); }, "CompleteBlock::add_fence");
  expect_invalid([&] { (void)std::move(complete).reset(); }, "CompleteBlock::reset");

  auto immutable = m.register_block(std::move(kept));
  auto moved_to = std::move(immutable);
  expect_invalid([&] { (void)immutable.manager_id(); }, "ImmutableBlock::manager_id");
  expect_invalid([&] { (void)immutable.use_count(); }, "ImmutableBlock::use_count");
  expect_invalid([&] { (void)immutable.pin(); }, "ImmutableBlock::pin");
  expect_invalid([&] { (void)immutable.downgrade(); }, "ImmutableBlock::downgrade");
  expect_invalid([&] { immutable.set_evict_on_reset(true); }, "ImmutableBlock::set_evict_on_reset");
  expect_invalid([&] { immutable.add_fence(Fence{}); }, "ImmutableBlock::add_fence");

  auto weak = moved_to.downgrade();
  auto weak_kept = std::move(weak);
  expect_invalid([&] { (void)weak.upgrade(); }, "WeakBlock::upgrade");

  auto pin = moved_to.pin();
  auto pin_kept = std::move(pin);
  expect_invalid([&] { (void)pin.manager_id(); }, "LifecyclePinRef::manager_id");
  expect_invalid([&] { (void)pin.use_count(); }, "LifecyclePinRef::use_count");
  expect_invalid([&] { pin.add_fence(Fence{}); }, "LifecyclePinRef::add_fence");
  std::ostringstream printed;
  printed << pin;
  EXPECT_EQ(printed.str(), "LifecyclePinRef{moved-from}");

  // The live handles still work and nothing leaked or was released twice.
  EXPECT_EQ(moved_to.use_count(), 2u);  // the block and the pin
  EXPECT_TRUE(weak_kept.upgrade().has_value());
  m.check_invariants();
  EXPECT_EQ(m.available_blocks(), 2u);  // one registered + pinned, one mutable held in blocks[1]
}

}  // namespace
}  // namespace kvbm::test
