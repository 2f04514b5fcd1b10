// Evict-on-reset (reset-on-release) flags: per block and store-wide (spec core §4.5,
// §12 reset_on_release_tests).
#include <gtest/gtest.h>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::synth_hash;

BlockManager<G1> manager(std::size_t n, bool default_reset = false,
                         DuplicationPolicy policy = DuplicationPolicy::Allow) {
  test::ManagerOptions o;
  o.block_count = n;
  o.default_reset_on_release = default_reset;
  o.policy = policy;
  return test::make_manager(o, test::make_registry());
}

std::vector<SequenceHash> one(const SequenceHash& h) { return {h}; }

void expect_cached(BlockManager<G1>& m, const SequenceHash& h, bool cached) {
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{cached});
  EXPECT_EQ(m.registry().is_registered(h), cached);
  EXPECT_EQ(m.scan_matches(one(h), false).size(), cached ? 1u : 0u);
}

TEST(ResetOnRelease, PerBlockFlagBypassesInactivePool) {
  auto m = manager(4);
  const auto h = synth_hash(1);
  {
    auto b = test::register_hash(m, h);
    b.set_evict_on_reset(true);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(s.reset_pool_size, 4);
  EXPECT_EQ(s.inflight_immutable, 0);
  EXPECT_EQ(m.available_blocks(), 4u);
  EXPECT_TRUE(m.match_blocks(one(h)).empty());
  expect_cached(m, h, false);
  m.check_invariants();
}

TEST(ResetOnRelease, FlagDoesNotPreventInflightSharing) {
  auto m = manager(4);
  const auto h = synth_hash(2);
  auto a = test::register_hash(m, h);
  auto b = a;
  b.set_evict_on_reset(true);
  {
    auto hit = m.match_blocks(one(h));
    ASSERT_EQ(hit.size(), 1u);
    EXPECT_EQ(hit[0].block_id(), a.block_id());
  }
  { auto x = std::move(b); }
  auto hit = m.match_blocks(one(h));  // still live through `a`
  ASSERT_EQ(hit.size(), 1u);
  hit.clear();
  { auto x = std::move(a); }
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.metrics().reset_pool_size, 4);
  expect_cached(m, h, false);
}

TEST(ResetOnRelease, LastWriterWinsAcrossClones) {
  auto m = manager(4);
  const auto h = synth_hash(3);
  {
    auto a = test::register_hash(m, h);
    auto b = a;
    a.set_evict_on_reset(true);
    b.set_evict_on_reset(false);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  expect_cached(m, h, true);
}

TEST(ResetOnRelease, NoPoisoningAcrossRegistrations) {
  auto m = manager(1);
  const auto h1 = synth_hash(4), h2 = synth_hash(5);
  BlockId first_id;
  {
    auto b = test::register_hash(m, h1);
    first_id = b.block_id();
    b.set_evict_on_reset(true);
  }
  EXPECT_EQ(m.metrics().reset_pool_size, 1);
  {
    auto b = test::register_hash(m, h2);  // same slot, new tenant, default flag
    EXPECT_EQ(b.block_id(), first_id);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  expect_cached(m, h2, true);
}

TEST(ResetOnRelease, StoreWideDefaultResetsOnRelease) {
  auto m = manager(4, true);
  const auto h = synth_hash(6);
  { auto b = test::register_hash(m, h); }
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.metrics().reset_pool_size, 4);
  expect_cached(m, h, false);
}

TEST(ResetOnRelease, PerBlockCanOptOutOfStoreDefault) {
  auto m = manager(4, true);
  const auto h = synth_hash(7);
  {
    auto b = test::register_hash(m, h);
    b.set_evict_on_reset(false);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  expect_cached(m, h, true);
}

TEST(ResetOnRelease, OptOutSurvivesInactiveResurrection) {
  auto m = manager(4, true);
  const auto h = synth_hash(8);
  {
    auto b = test::register_hash(m, h);
    b.set_evict_on_reset(false);
  }
  {
    auto hit = m.match_blocks(one(h));
    ASSERT_EQ(hit.size(), 1u);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);  // the override travelled with the slot
  expect_cached(m, h, true);
}

TEST(ResetOnRelease, OverrideSurvivesMultipleResurrectionCycles) {
  auto m = manager(4, true);
  const auto h = synth_hash(9);
  {
    auto b = test::register_hash(m, h);
    b.set_evict_on_reset(false);
  }
  for (int hop = 0; hop < 3; ++hop) {
    {
      auto hit = hop % 2 == 0 ? m.match_blocks(one(h)) : std::vector<ImmutableBlock<G1>>{};
      if (hop % 2 == 1) {
        auto found = m.scan_matches(one(h), true);
        ASSERT_EQ(found.size(), 1u) << hop;
      } else {
        ASSERT_EQ(hit.size(), 1u) << hop;
      }
    }
    EXPECT_EQ(m.metrics().inactive_pool_size, 1) << hop;
  }
  expect_cached(m, h, true);
}

TEST(ResetOnRelease, SetOnResurrectedBlockTakesEffect) {
  auto m = manager(4);
  const auto h = synth_hash(10);
  { auto b = test::register_hash(m, h); }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  {
    auto hit = m.match_blocks(one(h));
    ASSERT_EQ(hit.size(), 1u);
    hit[0].set_evict_on_reset(true);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.metrics().reset_pool_size, 4);
  expect_cached(m, h, false);
}

TEST(ResetOnRelease, WeakUpgradedBlockHonoursFlag) {
  auto m = manager(4);
  const auto h = synth_hash(11);
  auto w = test::register_hash(m, h).downgrade();
  {
    auto up = w.upgrade();
    ASSERT_TRUE(up);
    up->set_evict_on_reset(true);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_FALSE(w.upgrade().has_value());
}

TEST(ResetOnRelease, MixedFlagsInSingleRegisterBlocksCall) {
  auto m = manager(8);
  const std::vector<SequenceHash> hs{synth_hash(20), synth_hash(21), synth_hash(22), synth_hash(23)};
  {
    auto blocks = m.allocate_blocks(4);
    ASSERT_TRUE(blocks);
    std::vector<CompleteBlock<G1>> cs;
    for (std::size_t i = 0; i < 4; ++i) cs.push_back(std::move((*blocks)[i]).stage(hs[i], 4));
    auto imms = m.register_blocks(std::move(cs));
    imms[0].set_evict_on_reset(true);
    imms[2].set_evict_on_reset(true);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 2);
  EXPECT_EQ(s.reset_pool_size, 6);
  EXPECT_EQ(m.registry().check_presence<G1>(hs), (std::vector<bool>{false, true, false, true}));
  auto found = m.scan_matches(hs, false);
  EXPECT_EQ(found.size(), 2u);
  EXPECT_EQ(found.count(hs[1]), 1u);
  EXPECT_EQ(found.count(hs[3]), 1u);
}

TEST(ResetOnRelease, OverrideDiscardedOnEvictionBackToMutable) {
  auto m = manager(1, true);
  const auto h1 = synth_hash(30), h2 = synth_hash(31);
  {
    auto b = test::register_hash(m, h1);
    b.set_evict_on_reset(false);  // cached despite the store default
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  { auto b = test::register_hash(m, h2); }  // evicts h1: the slot's override is dropped
  EXPECT_EQ(m.metrics().evictions, 1u);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);  // h2 used the store default (reset)
  EXPECT_EQ(m.metrics().reset_pool_size, 1);
  expect_cached(m, h2, false);
}

TEST(ResetOnRelease, OverrideDiscardedOnCompleteReset) {
  auto m = manager(1, true);
  const auto h1 = synth_hash(32), h2 = synth_hash(33);
  {
    auto b = test::register_hash(m, h1);
    b.set_evict_on_reset(false);
  }
  // Allocation evicts the cached block and resets its flag; staging and rolling back keep default.
  auto mb = test::allocate_one(m);
  auto cb = std::move(mb).stage(h2, 4);
  auto back = std::move(cb).reset();
  { auto imm = m.register_block(std::move(back).stage(h2, 4)); }
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.metrics().reset_pool_size, 1);
}

TEST(ResetOnRelease, DuplicateReleaseAlwaysResetsWithDefaultFalse) {
  auto m = manager(4);
  const auto h = synth_hash(40);
  {
    auto p = test::register_hash(m, h);
    auto d = test::register_hash(m, h);
    { auto x = std::move(d); }
    EXPECT_EQ(m.metrics().reset_pool_size, 3);
    EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  EXPECT_EQ(m.metrics().reset_pool_size, 3);
}

TEST(ResetOnRelease, DuplicateSetEvictOnResetIsNoop) {
  {
    auto m = manager(4);  // default false
    const auto h = synth_hash(41);
    {
      auto p = test::register_hash(m, h);
      auto d = test::register_hash(m, h);
      d.set_evict_on_reset(true);  // ignored for a duplicate, and must not reach the primary
    }
    EXPECT_EQ(m.metrics().inactive_pool_size, 1);
    EXPECT_EQ(m.metrics().reset_pool_size, 3);
    expect_cached(m, h, true);
  }
  {
    auto m = manager(4, true);  // default true
    const auto h = synth_hash(42);
    {
      auto p = test::register_hash(m, h);
      p.set_evict_on_reset(false);
      auto d = test::register_hash(m, h);
      d.set_evict_on_reset(true);
      { auto x = std::move(d); }  // a duplicate always returns to the free list
      EXPECT_EQ(m.metrics().reset_pool_size, 3);
    }
    EXPECT_EQ(m.metrics().inactive_pool_size, 1);  // the primary kept its own opt-out
  }
}

TEST(ResetOnRelease, MetricGaugesStayCoherent) {
  auto m = manager(6);
  std::vector<ImmutableBlock<G1>> held;
  for (std::uint64_t i = 0; i < 6; ++i) {
    held.push_back(test::register_hash(m, synth_hash(100 + i)));
    if (i % 2 == 0) held.back().set_evict_on_reset(true);
  }
  EXPECT_EQ(m.metrics().inflight_immutable, 6);
  test::drop_in_order(held);
  const auto s = m.metrics();
  EXPECT_EQ(s.inflight_immutable, 0);
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_EQ(s.reset_pool_size, 3);
  EXPECT_EQ(s.inactive_pool_size, 3);
  EXPECT_EQ(static_cast<std::size_t>(s.reset_pool_size + s.inactive_pool_size), m.available_blocks());
  EXPECT_EQ(m.available_blocks(), m.total_blocks());
  m.check_invariants();
}

}  // namespace
}  // namespace kvbm
