// Race regressions (spec core §4.7, §11, §12 race_regression_tests): the three races that
// motivated the single-lock store, plus atomic allocation under contention.
// No timing assertions: every check is on state after the threads are joined.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::synth_hash;

std::vector<SequenceHash> one(const SequenceHash& h) { return {h}; }

TEST(Race, ActiveLookupConcurrentWithLastDropNeverGivesTwoPrimaries) {
  auto m = test::create_test_manager(4);
  const auto h = synth_hash(1);
  BlockId slot;
  { slot = test::register_hash(m, h).block_id(); }
  for (int iter = 0; iter < 400; ++iter) {
    // Take the (only) handle again: from the inactive pool.
    auto held = m.match_blocks(one(h));
    ASSERT_EQ(held.size(), 1u);
    ASSERT_EQ(held[0].block_id(), slot);
    std::latch start(3);
    std::vector<ImmutableBlock<G1>> got_b, got_c;
    std::thread dropper([&] {
      start.arrive_and_wait();
      held.clear();
    });
    std::thread b([&] {
      start.arrive_and_wait();
      got_b = m.match_blocks(one(h));
    });
    std::thread c([&] {
      start.arrive_and_wait();
      auto found = m.scan_matches(one(h), true);
      for (auto& [hash, block] : found) got_c.push_back(block);
    });
    dropper.join();
    b.join();
    c.join();
    ASSERT_EQ(got_b.size(), 1u) << iter;  // the block is always live or cached
    ASSERT_EQ(got_c.size(), 1u) << iter;
    // One slot per hash: nobody ever sees a second primary.
    EXPECT_EQ(got_b[0].block_id(), slot) << iter;
    EXPECT_EQ(got_c[0].block_id(), slot) << iter;
    EXPECT_EQ(got_b[0].use_count(), 2u) << iter;
    got_b.clear();
    got_c.clear();
    ASSERT_EQ(m.available_blocks(), 4u) << iter;
    ASSERT_EQ(m.metrics().inactive_pool_size, 1) << iter;
    m.check_invariants();
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.inflight_immutable, 0);
  // Every eager transition is matched by exactly one late release that found the slot moved on.
  EXPECT_EQ(s.eager_primary_to_inactive, s.release_primary_noop);
}

TEST(Race, WeakUpgradeConcurrentWithLastDrop) {
  auto m = test::create_test_manager(4);
  const auto h = synth_hash(2);
  auto first = test::register_hash(m, h);
  const BlockId slot = first.block_id();
  const auto weak = first.downgrade();
  { auto x = std::move(first); }
  for (int iter = 0; iter < 400; ++iter) {
    auto held = weak.upgrade();
    ASSERT_TRUE(held);
    std::latch start(2);
    std::optional<ImmutableBlock<G1>> up;
    std::thread dropper([&] {
      start.arrive_and_wait();
      held.reset();
    });
    std::thread upgrader([&] {
      start.arrive_and_wait();
      up = weak.upgrade();
    });
    dropper.join();
    upgrader.join();
    ASSERT_TRUE(up.has_value()) << iter;
    EXPECT_EQ(up->block_id(), slot) << iter;
    up.reset();
    ASSERT_EQ(m.metrics().inactive_pool_size, 1) << iter;
    m.check_invariants();
  }
  EXPECT_EQ(m.available_blocks(), 4u);
}

TEST(Race, AllocateAllFromEightThreadsGrantsZeroOrAll) {
  constexpr std::size_t kBlocks = 16;
  constexpr int kThreads = 8;
  auto m = test::create_test_manager(kBlocks);
  // Half of the pool is cached, so winners must also evict.
  test::populate_inactive(m, kBlocks / 2);
  for (int round = 0; round < 40; ++round) {
    std::latch start(kThreads);
    std::latch done(kThreads);
    std::atomic<std::size_t> granted{0};
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        auto blocks = m.allocate_blocks(kBlocks);
        if (blocks) {
          EXPECT_EQ(blocks->size(), kBlocks);  // never partial
          granted += blocks->size();
          ++winners;
        }
        done.arrive_and_wait();  // hold the grant until every thread has tried
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(winners.load(), 1) << round;
    EXPECT_EQ(granted.load(), kBlocks) << round;
    EXPECT_EQ(m.available_blocks(), kBlocks);
    m.check_invariants();
  }
}

TEST(Race, AllocationUnderContentionNeverOverCommits) {
  constexpr std::size_t kBlocks = 16;
  auto m = test::create_test_manager(kBlocks);
  std::atomic<long> outstanding{0};
  std::atomic<bool> over{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::size_t n = 1 + static_cast<std::size_t>((t + i) % 5);
        auto blocks = m.allocate_blocks(n);
        if (!blocks) continue;
        EXPECT_EQ(blocks->size(), n);
        if (outstanding.fetch_add(static_cast<long>(n)) + static_cast<long>(n) > 16) over = true;
        outstanding.fetch_sub(static_cast<long>(n));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(over.load());
  EXPECT_EQ(m.available_blocks(), kBlocks);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
  m.check_invariants();
}

TEST(Race, EvictionThenReregisterPreservesPresenceSequential) {
  auto m = test::create_test_manager(1);
  auto old_hash = synth_hash(100);
  { auto b = test::register_hash(m, old_hash); }
  for (std::uint64_t i = 1; i <= 50; ++i) {
    const auto new_hash = synth_hash(100 + i);
    { auto b = test::register_hash(m, new_hash); }  // evicts old_hash from the only slot
    EXPECT_EQ(m.registry().check_presence<G1>(std::vector<SequenceHash>{old_hash, new_hash}),
              (std::vector<bool>{false, true}))
        << i;
    old_hash = new_hash;
  }
  EXPECT_EQ(m.metrics().evictions, 50u);
}

TEST(Race, EvictionConcurrentWithReregisterKeepsPresenceExact) {
  auto reg = test::make_registry();
  test::ManagerOptions o;
  o.block_count = 3;
  auto g1 = test::make_manager<G1>(o, reg);
  o.policy = DuplicationPolicy::Reject;
  auto g2 = test::make_manager<G2>(o, reg);
  const std::vector<SequenceHash> hashes{synth_hash(1), synth_hash(2), synth_hash(3), synth_hash(4)};
  auto worker = [&](auto& manager, int seed) {
    return [&manager, &hashes, seed] {
      for (int i = 0; i < 300; ++i) {
        const auto& h = hashes[static_cast<std::size_t>(seed * 7 + i * 3) % hashes.size()];
        auto blocks = manager.allocate_blocks(1);
        if (!blocks) continue;
        auto imm = manager.register_block(std::move(blocks->front()).stage(h, 4));
        EXPECT_EQ(imm.sequence_hash(), h);
      }
    };
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) threads.emplace_back(worker(g1, t));
  for (int t = 0; t < 2; ++t) threads.emplace_back(worker(g2, t + 5));
  for (auto& th : threads) th.join();
  // Quiescent: presence is exact. Read it before the scan (which revives blocks).
  const auto p1 = reg.check_presence<G1>(hashes);
  const auto p2 = reg.check_presence<G2>(hashes);
  auto r1 = g1.scan_matches(hashes, false);
  auto r2 = g2.scan_matches(hashes, false);
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(p1[i], r1.count(hashes[i]) == 1) << i;
    EXPECT_EQ(p2[i], r2.count(hashes[i]) == 1) << i;
    EXPECT_EQ(reg.is_registered(hashes[i]), p1[i] || p2[i]) << i;
  }
  r1.clear();
  r2.clear();
  EXPECT_EQ(g1.available_blocks(), 3u);
  EXPECT_EQ(g2.available_blocks(), 3u);
  g1.check_invariants();
  g2.check_invariants();
}

TEST(Race, DuplicateDropPreservesPresence) {
  auto m = test::create_test_manager(4, DuplicationPolicy::Allow);
  const auto h = synth_hash(7);
  auto p = test::register_hash(m, h);
  auto d = test::register_hash(m, h);
  ASSERT_NE(p.block_id(), d.block_id());
  { auto x = std::move(d); }
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{true});
  { auto x = std::move(p); }
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{true});  // inactive
  EXPECT_EQ(m.reset_inactive_pool(), 1u);
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{false});
}

TEST(Race, ConcurrentPrimaryAndDuplicateDropsKeepPresence) {
  auto m = test::create_test_manager(4, DuplicationPolicy::Allow);
  const auto h = synth_hash(8);
  for (int iter = 0; iter < 300; ++iter) {
    auto p = m.match_blocks(one(h));
    std::optional<ImmutableBlock<G1>> primary;
    if (p.empty()) {
      primary.emplace(test::register_hash(m, h));
    } else {
      primary.emplace(std::move(p[0]));
    }
    std::optional<ImmutableBlock<G1>> dup(test::register_hash(m, h));
    ASSERT_NE(dup->block_id(), primary->block_id());
    std::latch start(2);
    std::thread a([&] {
      start.arrive_and_wait();
      primary.reset();
    });
    std::thread b([&] {
      start.arrive_and_wait();
      dup.reset();
    });
    a.join();
    b.join();
    ASSERT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{true}) << iter;
    ASSERT_EQ(m.metrics().inactive_pool_size, 1) << iter;
    ASSERT_EQ(m.metrics().reset_pool_size, 3) << iter;
    m.check_invariants();
  }
}

TEST(Race, EvictOnResetFlagSurvivesDropVsMatchRace) {
  auto m = test::create_test_manager(4);
  for (int iter = 0; iter < 300; ++iter) {
    const auto h = synth_hash(1000 + static_cast<std::uint64_t>(iter));
    std::optional<ImmutableBlock<G1>> held(test::register_hash(m, h));
    held->set_evict_on_reset(true);
    std::latch start(2);
    std::vector<ImmutableBlock<G1>> got;
    std::thread a([&] {
      start.arrive_and_wait();
      held.reset();
    });
    std::thread b([&] {
      start.arrive_and_wait();
      got = m.match_blocks(one(h));
    });
    a.join();
    b.join();
    got.clear();
    // Whoever released last, the flag applied: the slot is free, not cached.
    ASSERT_EQ(m.metrics().inactive_pool_size, 0) << iter;
    ASSERT_EQ(m.available_blocks(), 4u) << iter;
    ASSERT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{false}) << iter;
    m.check_invariants();
  }
}

}  // namespace
}  // namespace kvbm
