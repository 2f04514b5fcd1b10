// release_blocks(vector): one lock for a batch, and exactly the outcome of dropping the blocks
// one by one in order — cache order, duplicates, shared holders, reset flags, metrics.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "test_helpers.hpp"

namespace kvbm::test {
namespace {

std::vector<ImmutableBlock<G1>> register_chain(BlockManager<G1>& m, std::size_t n, std::uint64_t base) {
  std::vector<ImmutableBlock<G1>> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(register_hash(m, synth_hash(base + i)));
  return out;
}

TEST(ReleaseBlocks, BatchReleaseMatchesDroppingInOrder) {
  auto batch = create_test_manager(8);
  auto single = create_test_manager(8);
  auto a = register_chain(batch, 6, 100);
  auto b = register_chain(single, 6, 100);
  std::reverse(a.begin(), a.end());  // tail first, as an engine releases a finished request
  std::reverse(b.begin(), b.end());
  batch.release_blocks(std::move(a));
  EXPECT_TRUE(a.empty());
  while (!b.empty()) b.erase(b.begin());  // drop one by one, front to back
  EXPECT_EQ(batch.metrics().inactive_pool_size, 6);
  EXPECT_EQ(batch.metrics().inflight_immutable, 0);
  // Same cache order: evicting everything yields the same hashes in the same order.
  auto from_batch = batch.allocate_blocks_with_evictions(8).value().second;
  auto from_single = single.allocate_blocks_with_evictions(8).value().second;
  EXPECT_EQ(from_batch, from_single);
  ASSERT_EQ(from_batch.size(), 6u);
  EXPECT_EQ(from_batch.front(), synth_hash(105)) << "the tail was released first";
  batch.check_invariants();
}

// Every backend, chained hashes (so lineage builds a tree), a chain that was cached and then
// revived by a match (lineage keeps its nodes Held): a batch release in either order leaves the
// same cache, in the same eviction order, as dropping the blocks one by one.
TEST(ReleaseBlocks, BatchOfARevivedChainMatchesDroppingInOrderOnEveryBackend) {
  std::vector<SequenceHash> chain;
  for (std::uint32_t i = 0; i < 6; ++i) {
    chain.push_back(SequenceHash::from_parts(
        900 + i, i == 0 ? std::nullopt : std::optional<std::uint64_t>(900 + i - 1), i));
  }
  for (const EvictionBackend backend : all_eviction_backends()) {
    for (const LineageEviction lineage : {LineageEviction::Tick, LineageEviction::Fifo}) {
      for (const bool tail_first : {false, true}) {
        SCOPED_TRACE(std::string(to_string(backend)) + (tail_first ? " tail first" : " root first") +
                     (lineage == LineageEviction::Tick ? " tick" : " fifo"));
        ManagerOptions o;
        o.block_count = 10;
        o.backend = backend;
        o.lineage = lineage;
        auto batch = make_manager(o, make_registry());
        auto single = make_manager(o, make_registry());
        const auto unrelated = synth_hash(77);
        for (auto* m : {&batch, &single}) {
          std::vector<ImmutableBlock<G1>> held;
          for (const auto& h : chain) held.push_back(register_hash(*m, h));
          held.push_back(register_hash(*m, unrelated));
          held.clear();  // all cached
        }
        auto a = batch.match_blocks(chain);
        auto b = single.match_blocks(chain);
        ASSERT_EQ(a.size(), chain.size());
        ASSERT_EQ(b.size(), chain.size());
        if (tail_first) {
          std::reverse(a.begin(), a.end());
          std::reverse(b.begin(), b.end());
        }
        batch.release_blocks(std::move(a));
        while (!b.empty()) b.erase(b.begin());
        EXPECT_EQ(batch.metrics().inactive_pool_size, 7);
        batch.check_invariants();
        single.check_invariants();
        const auto from_batch = batch.allocate_blocks_with_evictions(10).value().second;
        const auto from_single = single.allocate_blocks_with_evictions(10).value().second;
        EXPECT_EQ(from_batch, from_single);
        EXPECT_EQ(from_batch.size(), 7u);
        batch.check_invariants();
      }
      if (backend != EvictionBackend::Lineage) break;  // the lineage order only matters there
    }
  }
}

TEST(ReleaseBlocks, OnlyLastHoldersReleaseAndDuplicatesFreeTheirSlots) {
  auto m = create_test_manager(8);
  auto held = register_chain(m, 3, 200);
  auto copies = held;                                      // shared holders
  auto duplicate = register_hash(m, synth_hash(200));      // Allow: a duplicate of the first
  const BlockId duplicate_id = duplicate.block_id();
  held.push_back(std::move(duplicate));
  held[0].set_evict_on_reset(true);                        // the primary of 200 frees on release
  m.release_blocks(std::move(held));
  EXPECT_EQ(m.metrics().inactive_pool_size, 0) << "copies still hold every primary";
  EXPECT_EQ(m.metrics().inflight_immutable, 3);
  EXPECT_EQ(m.available_blocks(), 8u - 3u) << "the duplicate's slot is free again";
  auto again = m.allocate_blocks(5).value();
  EXPECT_TRUE(std::any_of(again.begin(), again.end(),
                          [&](const auto& b) { return b.block_id() == duplicate_id; }));
  again.clear();
  m.release_blocks(std::move(copies));
  EXPECT_EQ(m.metrics().inactive_pool_size, 2) << "200 was flagged evict-on-reset";
  EXPECT_FALSE(m.registry().is_registered(synth_hash(200)));
  EXPECT_EQ(m.metrics().inflight_immutable, 0);
  m.check_invariants();
  EXPECT_EQ(m.available_blocks(), 8u);
}

TEST(ReleaseBlocks, ForeignOrMovedFromBlocksReleaseNothing) {
  auto m = create_test_manager(4);
  auto other = create_test_manager(4);
  auto mine = register_chain(m, 2, 300);
  mine.push_back(register_hash(other, synth_hash(400)));
  EXPECT_THROW(m.release_blocks(std::move(mine)), ForeignBlock);
  ASSERT_EQ(mine.size(), 3u) << "nothing consumed";
  EXPECT_EQ(m.metrics().inflight_immutable, 2);
  auto foreign = std::move(mine.back());
  mine.pop_back();
  auto moved = std::move(mine[0]);
  EXPECT_THROW(m.release_blocks(std::move(mine)), InvalidHandle);
  ASSERT_EQ(mine.size(), 2u) << "nothing consumed";
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  m.check_invariants();
}

TEST(ReleaseBlocks, ConcurrentBatchAndSingleDropsKeepThePoolWhole) {
  auto m = create_test_manager(32);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        auto hits = m.match_blocks(std::vector{synth_hash(500 + i % 8)});
        std::vector<ImmutableBlock<G1>> mine;
        if (auto blocks = m.allocate_blocks(2)) {
          for (auto& b : *blocks) {
            mine.push_back(m.register_block(std::move(b).stage(synth_hash(500 + (i + t) % 8), 4)));
          }
        }
        for (auto& h : hits) mine.push_back(h);
        if ((i + t) % 2 == 0) {
          m.release_blocks(std::move(mine));
        }  // else: dropped one by one at scope exit
      }
    });
  }
  for (auto& t : threads) t.join();
  m.check_invariants();
  EXPECT_EQ(m.available_blocks(), 32u);
  EXPECT_EQ(m.metrics().inflight_immutable, 0);
}

}  // namespace
}  // namespace kvbm::test
