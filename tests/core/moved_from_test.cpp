// Using a handle after it was moved from is bad input: every operation that needs the slot
// throws kvbm::InvalidHandle naming the operation, and the pool is untouched.
#include <gtest/gtest.h>

#include <chrono>
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

// ---- one test per handle type: every member, copies and assignment of an empty handle ----

TEST(MovedFromHandles, MutableBlockEveryMember) {
  auto m = create_test_manager(4);
  auto blocks = m.allocate_blocks(2).value();
  auto kept = std::move(blocks[0]);
  MutableBlock<G1>& empty = blocks[0];
  EXPECT_FALSE(empty.valid());
  expect_invalid([&] { (void)empty.block_id(); }, "MutableBlock::block_id");
  expect_invalid([&] { (void)empty.block_size(); }, "MutableBlock::block_size");
  expect_invalid([&] { (void)empty.manager_id(); }, "MutableBlock::manager_id");
  expect_invalid([&] { empty.add_fence(Fence{}); }, "MutableBlock::add_fence");
  expect_invalid([&] { (void)std::move(empty).stage(synth_hash(1), kTestBlockSize); },
                 "MutableBlock::stage");
  // Move-assigning an empty handle over a live one releases the live slot and leaves it empty.
  blocks[1] = std::move(empty);
  EXPECT_FALSE(blocks[1].valid());
  EXPECT_EQ(m.available_blocks(), 3u);
  EXPECT_TRUE(kept.valid());
  m.check_invariants();
}

TEST(MovedFromHandles, CompleteBlockEveryMember) {
  auto m = create_test_manager(4);
  auto complete = allocate_one(m).stage(synth_hash(1), kTestBlockSize);
  auto kept = std::move(complete);
  EXPECT_FALSE(complete.valid());
  expect_invalid([&] { (void)complete.block_id(); }, "CompleteBlock::block_id");
  expect_invalid([&] { (void)complete.sequence_hash(); }, "CompleteBlock::sequence_hash");
  expect_invalid([&] { (void)complete.block_size(); }, "CompleteBlock::block_size");
  expect_invalid([&] { (void)complete.manager_id(); }, "CompleteBlock::manager_id");
  expect_invalid([&] { complete.add_fence(Fence{}); }, "CompleteBlock::add_fence");
  expect_invalid([&] { (void)std::move(complete).reset(); }, "CompleteBlock::reset");
  expect_invalid([&] { (void)m.register_block(std::move(complete)); }, "register_blocks");
  auto other = allocate_one(m).stage(synth_hash(2), kTestBlockSize);
  other = std::move(complete);  // releases the staged slot
  EXPECT_FALSE(other.valid());
  EXPECT_EQ(m.available_blocks(), 3u);
  EXPECT_EQ(kept.sequence_hash(), synth_hash(1));
  m.check_invariants();
}

TEST(MovedFromHandles, ImmutableBlockEveryMemberAndCopiesOfEmptyAreEmpty) {
  auto m = create_test_manager(4);
  auto block = register_hash(m, synth_hash(1));
  auto kept = std::move(block);
  EXPECT_FALSE(block.valid());
  expect_invalid([&] { (void)block.block_id(); }, "ImmutableBlock::block_id");
  expect_invalid([&] { (void)block.sequence_hash(); }, "ImmutableBlock::sequence_hash");
  expect_invalid([&] { (void)block.manager_id(); }, "ImmutableBlock::manager_id");
  expect_invalid([&] { (void)block.use_count(); }, "ImmutableBlock::use_count");
  expect_invalid([&] { (void)block.downgrade(); }, "ImmutableBlock::downgrade");
  expect_invalid([&] { (void)block.pin(); }, "ImmutableBlock::pin");
  expect_invalid([&] { block.set_evict_on_reset(true); }, "ImmutableBlock::set_evict_on_reset");
  expect_invalid([&] { block.add_fence(Fence{}); }, "ImmutableBlock::add_fence");

  ImmutableBlock<G1> copy(block);  // copy-construct from empty: empty, nothing retained
  EXPECT_FALSE(copy.valid());
  auto live = kept;  // a second holder
  EXPECT_EQ(kept.use_count(), 2u);
  live = block;  // copy-assign from empty: drops live's reference
  EXPECT_FALSE(live.valid());
  EXPECT_EQ(kept.use_count(), 1u);
  live = std::move(copy);
  EXPECT_FALSE(live.valid());
  EXPECT_EQ(m.metrics().inflight_immutable, 1);
  std::vector<ImmutableBlock<G1>> batch;
  batch.push_back(kept);
  batch.push_back(std::move(block));
  expect_invalid([&] { m.release_blocks(std::move(batch)); }, "release_blocks");
  ASSERT_EQ(batch.size(), 2u) << "nothing consumed";
  EXPECT_EQ(kept.use_count(), 2u);
  batch.clear();
  kept = ImmutableBlock<G1>(copy);  // the last holder lets go through assignment
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  m.check_invariants();
}

TEST(MovedFromHandles, WeakBlockEveryMemberAndCopiesOfEmptyAreEmpty) {
  auto m = create_test_manager(4);
  auto block = register_hash(m, synth_hash(1));
  auto weak = block.downgrade();
  auto kept = std::move(weak);
  EXPECT_FALSE(weak.valid());
  EXPECT_TRUE(kept.valid());
  expect_invalid([&] { (void)weak.upgrade(); }, "WeakBlock::upgrade");
  expect_invalid([&] { (void)weak.sequence_hash(); }, "WeakBlock::sequence_hash");
  WeakBlock<G1> copy(weak);
  EXPECT_FALSE(copy.valid());
  auto other = kept;
  other = weak;  // copy-assign from empty releases other's registry reference
  EXPECT_FALSE(other.valid());
  other = std::move(copy);
  EXPECT_FALSE(other.valid());
  EXPECT_TRUE(m.registry().is_registered(synth_hash(1)));
  EXPECT_EQ(kept.upgrade()->sequence_hash(), synth_hash(1));
  m.check_invariants();
}

TEST(MovedFromHandles, LifecyclePinRefEveryMemberAndCopiesOfEmptyAreEmpty) {
  auto m = create_test_manager(4);
  auto block = register_hash(m, synth_hash(1));
  auto pin = block.pin();
  auto kept = std::move(pin);
  EXPECT_FALSE(pin.valid());
  EXPECT_EQ(pin.store(), nullptr);
  expect_invalid([&] { (void)pin.block_id(); }, "LifecyclePinRef::block_id");
  expect_invalid([&] { (void)pin.sequence_hash(); }, "LifecyclePinRef::sequence_hash");
  expect_invalid([&] { (void)pin.manager_id(); }, "LifecyclePinRef::manager_id");
  expect_invalid([&] { (void)pin.use_count(); }, "LifecyclePinRef::use_count");
  expect_invalid([&] { pin.add_fence(Fence{}); }, "LifecyclePinRef::add_fence");
  LifecyclePinRef copy(pin);
  EXPECT_FALSE(copy.valid());
  std::ostringstream printed;
  printed << copy;
  EXPECT_EQ(printed.str(), "LifecyclePinRef{moved-from}");
  auto other = kept;
  EXPECT_EQ(block.use_count(), 3u);
  other = pin;
  EXPECT_FALSE(other.valid());
  EXPECT_EQ(block.use_count(), 2u);
  other = std::move(copy);
  EXPECT_FALSE(other.valid());
  EXPECT_EQ(kept.block_id(), block.block_id());
  m.check_invariants();
}

TEST(MovedFromHandles, BlockManagerEveryMember) {
  auto m = create_test_manager(4);
  auto staged = allocate_one(m).stage(synth_hash(1), kTestBlockSize);
  auto held = register_hash(m, synth_hash(2));
  auto kept = std::move(m);
  const auto hashes = std::vector{synth_hash(2)};
  expect_invalid([&] { (void)m.id(); }, "BlockManager::id");
  expect_invalid([&] { (void)m.total_blocks(); }, "BlockManager::total_blocks");
  expect_invalid([&] { (void)m.block_size(); }, "BlockManager::block_size");
  expect_invalid([&] { (void)m.available_blocks(); }, "BlockManager::available_blocks");
  expect_invalid([&] { (void)m.duplication_policy(); }, "BlockManager::duplication_policy");
  expect_invalid([&] { (void)m.registry(); }, "BlockManager::registry");
  expect_invalid([&] { (void)m.metrics(); }, "BlockManager::metrics");
  expect_invalid([&] { (void)m.allocate_blocks(1); }, "BlockManager::allocate_blocks");
  expect_invalid([&] { (void)m.allocate_blocks_with_evictions(1); }, "BlockManager::allocate_blocks");
  expect_invalid([&] { (void)m.allocate_blocks_blocking(1); }, "BlockManager::allocate_blocks");
  expect_invalid([&] { (void)m.allocate_blocks_blocking(1, std::chrono::milliseconds(1)); },
                 "BlockManager::allocate_blocks");
  expect_invalid([&] { (void)m.allocate_blocks_stream_ordered(1); }, "BlockManager::allocate_blocks");
  expect_invalid([&] { (void)m.register_block(std::move(staged)); }, "BlockManager::register_blocks");
  EXPECT_TRUE(staged.valid()) << "a failed register_block leaves the block with the caller";
  std::vector<CompleteBlock<G1>> batch;
  batch.push_back(std::move(staged));
  expect_invalid([&] { (void)m.register_blocks(std::move(batch)); }, "BlockManager::register_blocks");
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_TRUE(batch[0].valid());
  expect_invalid([&] { (void)m.match_blocks(hashes); }, "BlockManager::match_blocks");
  expect_invalid([&] { (void)m.scan_matches(hashes); }, "BlockManager::scan_matches");
  std::vector<ImmutableBlock<G1>> to_release;
  to_release.push_back(held);
  expect_invalid([&] { m.release_blocks(std::move(to_release)); }, "BlockManager::release_blocks");
  EXPECT_EQ(to_release.size(), 1u);
  expect_invalid([&] { (void)m.reset_inactive_pool(); }, "BlockManager::reset_inactive_pool");
  expect_invalid([&] { m.check_invariants(); }, "BlockManager::check_invariants");
  auto copy = m;  // a copy of a moved-from manager is empty as well
  expect_invalid([&] { (void)copy.total_blocks(); }, "BlockManager::total_blocks");
  m = kept;  // assigning a live manager revives the handle
  EXPECT_EQ(m.total_blocks(), 4u);
  EXPECT_EQ(kept.register_blocks(std::move(batch)).size(), 1u);
  kept.release_blocks(std::move(to_release));
  kept.check_invariants();
}

}  // namespace
}  // namespace kvbm::test
