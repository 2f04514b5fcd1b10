// Full-capacity cycles with the LRU backend (spec core §12 capacity_lifecycle_tests,
// testing/managers tests).
#include <gtest/gtest.h>

#include <set>
#include <unordered_set>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;

std::vector<CompleteBlock<G1>> complete_all(std::vector<MutableBlock<G1>>& blocks,
                                            const TokenBlockSequence& seq, std::size_t offset = 0) {
  std::vector<CompleteBlock<G1>> out;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    out.push_back(std::move(blocks[i]).complete(seq.blocks()[offset + i]));
  }
  blocks.clear();
  return out;
}

TEST(Capacity, FullCapacityRegisterAndReturnToInactive) {
  auto m = create_test_manager(32);
  const auto seq = test::iota_sequence(0, 32);
  {
    auto held = test::register_sequence(m, seq);
    EXPECT_EQ(held.size(), 32u);
    EXPECT_EQ(m.available_blocks(), 0u);
    EXPECT_EQ(m.metrics().inflight_immutable, 32);
    EXPECT_FALSE(m.allocate_blocks(1));
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 32);
  EXPECT_EQ(s.reset_pool_size, 0);
  EXPECT_EQ(s.inflight_immutable, 0);
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_EQ(s.registrations, 32u);
  EXPECT_EQ(s.stagings, 32u);
  EXPECT_EQ(s.allocations, 32u);
  EXPECT_EQ(m.available_blocks(), 32u);
  m.check_invariants();
}

TEST(Capacity, FullCapacityEvictionCycle) {
  auto m = create_test_manager(16);
  const auto seq = test::iota_sequence(0, 16);
  { auto held = test::register_sequence(m, seq); }
  EXPECT_EQ(m.metrics().inactive_pool_size, 16);
  {
    auto r = m.allocate_blocks_with_evictions(16);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->first.size(), 16u);
    EXPECT_EQ(r->second.size(), 16u);
    const std::unordered_set<SequenceHash> evicted(r->second.begin(), r->second.end());
    const auto all = seq.sequence_hashes();
    EXPECT_EQ(evicted, std::unordered_set<SequenceHash>(all.begin(), all.end()));
    const auto s = m.metrics();
    EXPECT_EQ(s.evictions, 16u);
    EXPECT_EQ(s.allocations, 32u);
    EXPECT_EQ(s.allocations_from_reset, 16u);
    EXPECT_EQ(s.inactive_pool_size, 0);
    EXPECT_EQ(s.inflight_mutable, 16);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.reset_pool_size, 16);
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_TRUE(m.match_blocks(seq.sequence_hashes()).empty());
  m.check_invariants();
}

TEST(Capacity, MutableDropsGoToResetNotInactive) {
  auto m = create_test_manager(16);
  { auto b = m.allocate_blocks(16); ASSERT_TRUE(b); }
  EXPECT_EQ(m.metrics().reset_pool_size, 16);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
}

TEST(Capacity, CompleteDropsGoToResetNotInactive) {
  auto m = create_test_manager(16);
  const auto seq = test::iota_sequence(0, 16);
  {
    auto b = m.allocate_blocks(16);
    ASSERT_TRUE(b);
    auto cs = complete_all(*b, seq);
    EXPECT_EQ(cs.size(), 16u);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.reset_pool_size, 16);
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(s.stagings, 16u);
}

TEST(Capacity, MixedReturnPaths) {
  auto m = create_test_manager(24);
  const auto seq = test::iota_sequence(0, 24);
  {
    auto b = m.allocate_blocks(24);
    ASSERT_TRUE(b);
    std::vector<MutableBlock<G1>> mut, comp, reg;
    for (std::size_t i = 0; i < 24; ++i) {
      (i < 8 ? mut : i < 16 ? comp : reg).push_back(std::move((*b)[i]));
    }
    auto staged = complete_all(comp, seq, 8);
    auto to_register = complete_all(reg, seq, 16);
    auto registered = m.register_blocks(std::move(to_register));
    test::drop_in_order(mut);
    test::drop_in_order(staged);
    EXPECT_EQ(m.metrics().reset_pool_size, 16);
    EXPECT_EQ(m.metrics().inactive_pool_size, 0);
    test::drop_in_order(registered);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.reset_pool_size, 16);
  EXPECT_EQ(s.inactive_pool_size, 8);
  EXPECT_EQ(s.stagings, 16u);
  EXPECT_EQ(s.registrations, 8u);
  EXPECT_EQ(m.available_blocks(), 24u);
  m.check_invariants();
}

TEST(Capacity, DoubleLifecycleCycle) {
  auto m = create_test_manager(16);
  const auto first = test::iota_sequence(0, 16);
  const auto second = test::iota_sequence(10000, 16);
  { auto held = test::register_sequence(m, first); }
  { auto b = m.allocate_blocks(16); ASSERT_TRUE(b); }  // evicts all 16
  EXPECT_EQ(m.metrics().reset_pool_size, 16);
  { auto held = test::register_sequence(m, second); }
  const auto s = m.metrics();
  EXPECT_EQ(s.allocations, 48u);
  EXPECT_EQ(s.registrations, 32u);
  EXPECT_EQ(s.evictions, 16u);
  EXPECT_EQ(s.inactive_pool_size, 16);
  EXPECT_EQ(s.reset_pool_size, 0);
  EXPECT_EQ(m.match_blocks(second.sequence_hashes()).size(), 16u);
  EXPECT_TRUE(m.match_blocks(first.sequence_hashes()).empty());
  m.check_invariants();
}

TEST(Capacity, LruEvictsLeastRecentlyReleased) {
  auto m = create_test_manager(3);
  const auto a = test::synth_hash(1), b = test::synth_hash(2), c = test::synth_hash(3);
  {
    auto ha = test::register_hash(m, a);
    auto hb = test::register_hash(m, b);
    auto hc = test::register_hash(m, c);
    // Release order: b, a, c.
    { auto x = std::move(hb); }
    { auto x = std::move(ha); }
    { auto x = std::move(hc); }
  }
  // A cache hit on b refreshes it: order becomes a, c, b.
  { auto hit = m.match_blocks(std::vector<SequenceHash>{b}); ASSERT_EQ(hit.size(), 1u); }
  auto r = m.allocate_blocks_with_evictions(3);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, (std::vector<SequenceHash>{a, c, b}));
}

TEST(Capacity, LruEvictsOneAtATimeInOrder) {
  auto m = create_test_manager(4);
  const auto hashes = test::populate_inactive(m, 4);
  std::vector<MutableBlock<G1>> keep;  // keep each allocation so the next call must evict again
  for (std::size_t i = 0; i < 4; ++i) {
    auto r = m.allocate_blocks_with_evictions(1);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->second, std::vector<SequenceHash>{hashes[i]}) << i;
    keep.push_back(std::move(r->first.front()));
  }
  EXPECT_EQ(m.available_blocks(), 0u);
  keep.clear();
  EXPECT_EQ(m.available_blocks(), 4u);
}

TEST(Capacity, PopulateManagerWithBlocks) {
  auto m = create_test_manager(50);
  const auto hashes = test::populate_inactive(m, 10);
  EXPECT_EQ(hashes.size(), 10u);
  EXPECT_EQ(m.available_blocks(), 50u);
  EXPECT_EQ(m.total_blocks(), 50u);
  EXPECT_EQ(m.metrics().inactive_pool_size, 10);
  auto found = m.scan_matches(hashes, false);
  EXPECT_EQ(found.size(), 10u);
}

TEST(Capacity, ResetInactivePoolDrainsAndClearsPresence) {
  auto m = create_test_manager(8);
  const auto hashes = test::populate_inactive(m, 5);
  auto live = test::register_hash(m, test::synth_hash(99));
  EXPECT_EQ(m.registry().check_presence<G1>(hashes), std::vector<bool>(5, true));
  const auto before = m.metrics();
  EXPECT_EQ(m.reset_inactive_pool(), 5u);
  const auto s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(s.reset_pool_size, 7);
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_EQ(s.inflight_immutable, 1);
  // Draining is neither allocation nor eviction.
  EXPECT_EQ(s.evictions, before.evictions);
  EXPECT_EQ(s.allocations, before.allocations);
  EXPECT_EQ(m.available_blocks(), 7u);
  EXPECT_EQ(m.registry().check_presence<G1>(hashes), std::vector<bool>(5, false));
  for (const auto& h : hashes) EXPECT_FALSE(m.registry().is_registered(h));
  EXPECT_TRUE(m.match_blocks(std::vector<SequenceHash>{hashes[0]}).empty());
  // The live block is untouched.
  EXPECT_EQ(m.registry().check_presence<G1>(std::vector<SequenceHash>{live.sequence_hash()}),
            std::vector<bool>{true});
  EXPECT_EQ(m.reset_inactive_pool(), 0u);
  m.check_invariants();
}

}  // namespace
}  // namespace kvbm
