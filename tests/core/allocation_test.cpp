// Allocation: all-or-nothing, FIFO free list, eviction in LRU order (spec core §7, §12).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;

TEST(Allocation, SingleBlock) {
  auto m = create_test_manager(10);
  EXPECT_EQ(m.available_blocks(), 10u);
  {
    auto blocks = m.allocate_blocks(1);
    ASSERT_TRUE(blocks.has_value());
    ASSERT_EQ(blocks->size(), 1u);
    EXPECT_LT(blocks->front().block_id(), 10u);
    EXPECT_TRUE(blocks->front().valid());
    EXPECT_EQ(blocks->front().manager_id(), m.id());
    EXPECT_EQ(m.available_blocks(), 9u);
    const auto s = m.metrics();
    EXPECT_EQ(s.allocations, 1u);
    EXPECT_EQ(s.allocations_from_reset, 1u);
    EXPECT_EQ(s.inflight_mutable, 1);
    EXPECT_EQ(s.reset_pool_size, 9);
    m.check_invariants();
  }
  EXPECT_EQ(m.available_blocks(), 10u);
  const auto s = m.metrics();
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_EQ(s.reset_pool_size, 10);
  EXPECT_EQ(s.allocations, 1u);
  m.check_invariants();
}

TEST(Allocation, MultipleBlocksHaveUniqueIds) {
  auto m = create_test_manager(10);
  {
    auto blocks = m.allocate_blocks(5);
    ASSERT_TRUE(blocks);
    std::set<BlockId> ids;
    for (const auto& b : *blocks) ids.insert(b.block_id());
    EXPECT_EQ(ids.size(), 5u);
    EXPECT_EQ(m.available_blocks(), 5u);
    EXPECT_EQ(m.metrics().inflight_mutable, 5);
  }
  EXPECT_EQ(m.available_blocks(), 10u);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
}

TEST(Allocation, AllBlocks) {
  auto m = create_test_manager(10);
  auto blocks = m.allocate_blocks(10);
  ASSERT_TRUE(blocks);
  std::set<BlockId> ids;
  for (const auto& b : *blocks) ids.insert(b.block_id());
  EXPECT_EQ(ids, (std::set<BlockId>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(m.available_blocks(), 0u);
  EXPECT_FALSE(m.allocate_blocks(1).has_value());
}

TEST(Allocation, MoreThanAvailableGivesNothingAndChangesNothing) {
  auto m = create_test_manager(5);
  auto held = m.allocate_blocks(2);
  ASSERT_TRUE(held);
  const auto before = m.metrics();
  EXPECT_FALSE(m.allocate_blocks(10).has_value());
  EXPECT_FALSE(m.allocate_blocks(4).has_value());
  EXPECT_FALSE(m.allocate_blocks_with_evictions(4).has_value());
  const auto after = m.metrics();
  EXPECT_EQ(after.allocations, before.allocations);
  EXPECT_EQ(after.reset_pool_size, 3);
  EXPECT_EQ(after.inflight_mutable, 2);
  EXPECT_EQ(m.available_blocks(), 3u);
  auto rest = m.allocate_blocks(3);
  ASSERT_TRUE(rest);
  EXPECT_EQ(rest->size(), 3u);
  m.check_invariants();
}

TEST(Allocation, ZeroBlocksGivesEmptyVector) {
  auto m = create_test_manager(5);
  auto blocks = m.allocate_blocks(0);
  ASSERT_TRUE(blocks.has_value());
  EXPECT_TRUE(blocks->empty());
  EXPECT_EQ(m.metrics().allocations, 0u);
  auto with = m.allocate_blocks_with_evictions(0);
  ASSERT_TRUE(with.has_value());
  EXPECT_TRUE(with->first.empty());
  EXPECT_TRUE(with->second.empty());
  // Even with nothing available.
  auto all = m.allocate_blocks(5);
  ASSERT_TRUE(all);
  auto none = m.allocate_blocks(0);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST(Allocation, SequentialAllocationsExhaustThenStepBack) {
  auto m = create_test_manager(10);
  auto a = m.allocate_blocks(3);
  auto b = m.allocate_blocks(4);
  auto c = m.allocate_blocks(3);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(m.available_blocks(), 0u);
  EXPECT_FALSE(m.allocate_blocks(1).has_value());
  EXPECT_EQ(m.metrics().inflight_mutable, 10);
  b.reset();
  EXPECT_EQ(m.available_blocks(), 4u);
  EXPECT_EQ(m.metrics().inflight_mutable, 6);
  EXPECT_EQ(m.metrics().reset_pool_size, 4);
  a.reset();
  EXPECT_EQ(m.available_blocks(), 7u);
  c.reset();
  EXPECT_EQ(m.available_blocks(), 10u);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
  EXPECT_EQ(m.metrics().allocations, 10u);
}

TEST(Allocation, ExhaustionThenRecovery) {
  auto m = create_test_manager(3);
  auto all = m.allocate_blocks(3);
  ASSERT_TRUE(all);
  EXPECT_FALSE(m.allocate_blocks(1));
  test::drop_at(*all, 0);
  auto one = m.allocate_blocks(1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
}

TEST(Allocation, FreeListIsFifo) {
  auto m = create_test_manager(6);
  // A fresh pool hands out ids in order.
  auto first = m.allocate_blocks(6);
  ASSERT_TRUE(first);
  EXPECT_EQ(test::ids_of(*first), (std::vector<BlockId>{0, 1, 2, 3, 4, 5}));
  // Return 4, 1, 5 (in that order): they come back in the order they were freed.
  std::vector<MutableBlock<G1>> held;
  for (auto& b : *first) held.push_back(std::move(b));
  auto drop_id = [&](BlockId id) {
    auto it = std::find_if(held.begin(), held.end(), [&](const auto& b) { return b.block_id() == id; });
    ASSERT_NE(it, held.end());
    test::drop_at(held, static_cast<std::size_t>(it - held.begin()));
  };
  drop_id(4);
  drop_id(1);
  drop_id(5);
  auto again = m.allocate_blocks(2);
  ASSERT_TRUE(again);
  EXPECT_EQ(test::ids_of(*again), (std::vector<BlockId>{4, 1}));
  drop_id(0);
  auto more = m.allocate_blocks(2);
  ASSERT_TRUE(more);
  EXPECT_EQ(test::ids_of(*more), (std::vector<BlockId>{5, 0}));
}

TEST(Allocation, FreeListBeforeEvictionThenLruOrder) {
  auto m = create_test_manager(4);
  // Three blocks cached (released in order h0, h1, h2), one free.
  const auto hashes = test::populate_inactive(m, 3);
  EXPECT_EQ(m.metrics().inactive_pool_size, 3);
  EXPECT_EQ(m.metrics().reset_pool_size, 1);
  const auto before = m.metrics();
  auto r = m.allocate_blocks_with_evictions(3);
  ASSERT_TRUE(r.has_value());
  auto& [blocks, evicted] = *r;
  ASSERT_EQ(blocks.size(), 3u);
  // One from the free list, two evicted: least recently released first.
  EXPECT_EQ(evicted, (std::vector<SequenceHash>{hashes[0], hashes[1]}));
  const auto s = m.metrics();
  EXPECT_EQ(s.allocations - before.allocations, 3u);
  EXPECT_EQ(s.allocations_from_reset - before.allocations_from_reset, 1u);
  EXPECT_EQ(s.evictions - before.evictions, 2u);
  EXPECT_EQ(s.inactive_pool_size, 1);
  EXPECT_EQ(s.reset_pool_size, 0);
  EXPECT_EQ(s.inflight_mutable, 3);
  // The evicted hashes are gone, the third is still cached.
  EXPECT_TRUE(m.match_blocks(std::vector<SequenceHash>{hashes[0]}).empty());
  EXPECT_TRUE(m.match_blocks(std::vector<SequenceHash>{hashes[1]}).empty());
  EXPECT_EQ(m.match_blocks(std::vector<SequenceHash>{hashes[2]}).size(), 1u);
  EXPECT_EQ(m.registry().check_presence<G1>(hashes), (std::vector<bool>{false, false, true}));
  m.check_invariants();
}

TEST(Allocation, WithEvictionsReportsNothingWhenFreeListSuffices) {
  auto m = create_test_manager(4);
  test::populate_inactive(m, 2);
  auto r = m.allocate_blocks_with_evictions(2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first.size(), 2u);
  EXPECT_TRUE(r->second.empty());
  EXPECT_EQ(m.metrics().evictions, 0u);
  EXPECT_EQ(m.metrics().inactive_pool_size, 2);
}

TEST(Allocation, AllOrNothingCountsInactiveBlocks) {
  auto m = create_test_manager(4);
  test::populate_inactive(m, 4);
  EXPECT_EQ(m.available_blocks(), 4u);
  EXPECT_FALSE(m.allocate_blocks(5));
  EXPECT_EQ(m.metrics().inactive_pool_size, 4);  // nothing evicted by the failed call
  auto all = m.allocate_blocks(4);
  ASSERT_TRUE(all);
  EXPECT_EQ(m.metrics().evictions, 4u);
  EXPECT_EQ(m.metrics().allocations_from_reset, 4u);  // the populate allocations only
}

}  // namespace
}  // namespace kvbm
