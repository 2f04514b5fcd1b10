// LifecyclePinRef / ManagerId (the reference pin module's five tests, plus the C++ contract:
// pins count in use_count but not in inflight_immutable, and are printable).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::iota_block;

/// Registers one iota block (start = `start`) and returns it with the ManagerId seen by its pin.
std::pair<ImmutableBlock<G1>, ManagerId> one_block_and_manager_id(BlockManager<G1>& m, Token start) {
  auto block = test::register_token_block(m, iota_block(start));
  const ManagerId id = block.pin().manager_id();
  return {std::move(block), id};
}

TEST(Pin, ManagerIdUniqueAcrossManagers) {
  auto a = create_test_manager(4);
  auto b = create_test_manager(4);
  auto [block_a, id_a] = one_block_and_manager_id(a, 1);
  auto [block_b, id_b] = one_block_and_manager_id(b, 2);
  EXPECT_NE(id_a, id_b);
  EXPECT_NE(id_a, ManagerId{});
  EXPECT_NE(id_b, ManagerId{});
  EXPECT_FALSE(id_a.is_null());
  EXPECT_EQ(id_a, a.id());
  EXPECT_EQ(id_b, b.id());
}

TEST(Pin, ManagerIdStableAcrossClones) {
  auto m = create_test_manager(4);
  auto [block, manager_id] = one_block_and_manager_id(m, 0);
  auto pin1 = block.pin();
  auto copy = block;
  auto pin2 = copy.pin();
  auto pin3 = pin1;
  EXPECT_EQ(pin1.manager_id(), manager_id);
  EXPECT_EQ(pin2.manager_id(), manager_id);
  EXPECT_EQ(pin3.manager_id(), manager_id);
  EXPECT_EQ(pin1.block_id(), block.block_id());
  EXPECT_EQ(pin1.sequence_hash(), block.sequence_hash());
  EXPECT_EQ(pin2.block_id(), block.block_id());
  EXPECT_EQ(pin3.sequence_hash(), block.sequence_hash());
}

TEST(Pin, KeepsSlotActiveAfterBlockDrops) {
  auto m = create_test_manager(4);
  const auto initial = m.available_blocks();
  auto block = test::register_token_block(m, iota_block(100));
  EXPECT_EQ(m.available_blocks(), initial - 1);
  auto pin = block.pin();
  { auto gone = std::move(block); }
  EXPECT_EQ(m.available_blocks(), initial - 1) << "a pin keeps the slot out of the inactive pool";
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.metrics().inflight_immutable, 0);  // pins are not counted as handles
  EXPECT_EQ(pin.use_count(), 1u);
  // The pinned slot cannot be evicted by allocation pressure.
  EXPECT_FALSE(m.allocate_blocks(initial).has_value());
  { auto gone = std::move(pin); }
  EXPECT_EQ(m.available_blocks(), initial);
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  m.check_invariants();
}

TEST(Pin, CloneIsOneReferenceBump) {
  auto m = create_test_manager(4);
  auto block = test::register_token_block(m, iota_block(200));
  auto pin = block.pin();
  const auto before = pin.use_count();
  EXPECT_EQ(before, 2u);  // the block and the pin
  EXPECT_EQ(block.use_count(), 2u);
  {
    auto clone = pin;
    EXPECT_EQ(pin.use_count(), before + 1);
    EXPECT_EQ(m.metrics().inflight_immutable, 1);
  }
  EXPECT_EQ(pin.use_count(), before);
}

TEST(Pin, DifferentManagersHaveDifferentAddresses) {
  auto a = create_test_manager(4);
  auto b = create_test_manager(4);
  auto block_a = test::register_token_block(a, iota_block(300));
  auto block_b = test::register_token_block(b, iota_block(300));
  auto pin_a = block_a.pin();
  auto pin_b = block_b.pin();
  EXPECT_EQ(pin_a.sequence_hash(), pin_b.sequence_hash());  // same content, same hash
  EXPECT_NE(pin_a.manager_id(), pin_b.manager_id());         // different pools
}

TEST(Pin, MatchWhilePinnedReturnsSameSlot) {
  auto m = create_test_manager(4);
  auto block = test::register_token_block(m, iota_block(400));
  const BlockId id = block.block_id();
  auto pin = block.pin();
  { auto gone = std::move(block); }
  auto hit = m.match_blocks(std::vector<SequenceHash>{pin.sequence_hash()});
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].block_id(), id);
  EXPECT_EQ(pin.use_count(), 2u);
}

TEST(Pin, PinOutlivesManagerHandles) {
  std::optional<LifecyclePinRef> pin;
  ManagerId id;
  {
    auto m = create_test_manager(2);
    id = m.id();
    auto block = test::register_token_block(m, iota_block(500));
    pin.emplace(block.pin());
  }
  EXPECT_EQ(pin->manager_id(), id);
  EXPECT_EQ(pin->use_count(), 1u);
  EXPECT_EQ(pin->sequence_hash(), iota_block(500).sequence_hash());
  pin.reset();  // last reference to the pool (ASan checks the teardown)
}

TEST(Pin, IsPrintable) {
  auto m = create_test_manager(2);
  auto block = test::register_token_block(m, iota_block(600));
  auto pin = block.pin();
  std::ostringstream os;
  os << pin;
  EXPECT_THAT(os.str(), ::testing::HasSubstr("LifecyclePinRef"));
  std::ostringstream id;
  id << m.id();
  EXPECT_THAT(id.str(), ::testing::HasSubstr("ManagerId"));
}

TEST(Pin, PinOfDuplicateKeepsDuplicateSlot) {
  auto m = create_test_manager(4, DuplicationPolicy::Allow);
  const auto h = test::synth_hash(1);
  auto primary = test::register_hash(m, h);
  auto dup = test::register_hash(m, h);
  auto pin = dup.pin();
  EXPECT_EQ(pin.block_id(), dup.block_id());
  { auto gone = std::move(dup); }
  EXPECT_EQ(m.available_blocks(), 2u);  // the duplicate slot is still held by the pin
  { auto gone = std::move(pin); }
  EXPECT_EQ(m.available_blocks(), 3u);
  EXPECT_EQ(m.metrics().reset_pool_size, 3);
}

}  // namespace
}  // namespace kvbm

#include <mutex>
#include <thread>
#include <unordered_set>

namespace kvbm {
namespace {

TEST(ManagerIdApi, NextIsUniqueAcrossThreadsAndNeverNull) {
  std::mutex mu;
  std::unordered_set<ManagerId> ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<ManagerId> local;
      for (int i = 0; i < 500; ++i) local.push_back(ManagerId::next());
      std::lock_guard lock(mu);
      for (auto id : local) {
        EXPECT_FALSE(id.is_null());
        EXPECT_TRUE(ids.insert(id).second);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ids.size(), 2000u);
  std::ostringstream os;
  os << ManagerId{};
  EXPECT_THAT(os.str(), ::testing::HasSubstr("null"));
}

TEST(MetricsApi, SnapshotIsPrintable) {
  auto m = test::create_test_manager(2);
  auto b = test::register_hash(m, test::synth_hash(1));
  std::ostringstream os;
  os << m.metrics();
  EXPECT_THAT(os.str(), ::testing::HasSubstr("allocations"));
}

}  // namespace
}  // namespace kvbm
