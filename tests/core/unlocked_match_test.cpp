// Matching blocks that other holders keep alive without the pool lock: the index on its own
// (backward-shift erase, tag collisions, a randomised run against a map), matches that
// complete while another thread holds the pool lock, and races that could hand out a slot's
// next tenancy (another hash, a duplicate) instead of the block asked for. Run under TSan in CI.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <latch>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvbm/detail/testing.hpp"
#include "kvbm/kvbm.hpp"
#include "lock_free_hash_index.hpp"
#include "test_helpers.hpp"

namespace kvbm {
namespace {

using detail::LockFreeHashIndex;
using test::synth_hash;

std::vector<BlockId> found_ids(const LockFreeHashIndex& index, std::uint64_t mix) {
  std::vector<BlockId> out;
  index.find_if(mix, [&](BlockId id) {
    out.push_back(id);
    return false;  // visit every candidate
  });
  return out;
}

// A mix whose tag (the high half) is `tag`: its home cell is the tag's low bits.
constexpr std::uint64_t mix_of(std::uint64_t tag) { return tag << 32; }
constexpr std::uint64_t kCells = 64;  // the index of a pool of up to 32 slots

TEST(LockFreeHashIndex, EraseShiftsTheRunBackAndKeepsEveryEntryFindable) {
  LockFreeHashIndex index(16);
  index.insert(mix_of(5), 10);               // cell 5
  index.insert(mix_of(kCells + 5), 11);      // home 5: cell 6
  index.insert(mix_of(2 * kCells + 5), 12);  // home 5: cell 7
  index.insert(mix_of(6), 13);               // home 6: cell 8
  index.insert(mix_of(63), 14);              // cell 63
  index.insert(mix_of(kCells + 63), 15);     // home 63: wraps to cell 0
  EXPECT_EQ(index.size(), 6u);
  index.erase(mix_of(5), 10);
  index.erase(mix_of(63), 14);
  EXPECT_EQ(index.size(), 4u);
  EXPECT_TRUE(found_ids(index, mix_of(5)).empty());
  EXPECT_EQ(found_ids(index, mix_of(kCells + 5)), std::vector<BlockId>{11});
  EXPECT_EQ(found_ids(index, mix_of(2 * kCells + 5)), std::vector<BlockId>{12});
  EXPECT_EQ(found_ids(index, mix_of(6)), std::vector<BlockId>{13});
  EXPECT_EQ(found_ids(index, mix_of(kCells + 63)), std::vector<BlockId>{15});
  std::vector<BlockId> all;
  index.for_each([&](BlockId id) { all.push_back(id); });
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<BlockId>{11, 12, 13, 15}));
}

TEST(LockFreeHashIndex, SameTagOffersEveryCandidateInProbeOrder) {
  LockFreeHashIndex index(16);
  index.insert(mix_of(3), 0);
  index.insert(mix_of(kCells + 3), 1);
  index.insert(mix_of(3), 2);  // same tag: told apart by the caller
  EXPECT_EQ(found_ids(index, mix_of(3)), (std::vector<BlockId>{0, 2}));
  // The first candidate the caller accepts ends the search.
  std::vector<BlockId> tried;
  EXPECT_TRUE(index.find_if(mix_of(3), [&](BlockId id) {
    tried.push_back(id);
    return true;
  }));
  EXPECT_EQ(tried, std::vector<BlockId>{0});
  EXPECT_FALSE(index.find_if(mix_of(2 * kCells + 3), [](BlockId) { return true; }));
}

// Random inserts and erases on a crowded table (tags from 8 homes, so runs overlap and wrap)
// against a reference map: after every step each entry is found, nothing else is, and for_each
// and size agree.
TEST(LockFreeHashIndex, RandomInsertsAndErasesMatchAReferenceMap) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    LockFreeHashIndex index(32);
    std::map<BlockId, std::uint64_t> present;  // id -> tag
    for (int step = 0; step < 2000; ++step) {
      const auto id = static_cast<BlockId>(rng() % 32);
      if (const auto it = present.find(id); it != present.end()) {
        index.erase(mix_of(it->second), id);
        present.erase(it);
      } else {
        const std::uint64_t tag = (rng() % 4) * kCells + 60 + rng() % 8;  // homes 60..63, 0..3
        index.insert(mix_of(tag), id);
        present.emplace(id, tag);
      }
      ASSERT_EQ(index.size(), present.size());
      for (const auto& [pid, tag] : present) {
        bool seen = false;
        index.find_if(mix_of(tag), [&](BlockId candidate) { return seen = candidate == pid; });
        ASSERT_TRUE(seen) << "trial " << trial << " step " << step << " id " << pid;
      }
      std::vector<BlockId> listed;
      index.for_each([&](BlockId listed_id) { listed.push_back(listed_id); });
      ASSERT_EQ(listed.size(), present.size());
    }
  }
}

// A held chain is matched while another thread holds the pool lock; a cached block, which must
// leave the inactive pool, waits for the lock.
TEST(UnlockedMatch, HeldChainMatchesWhileThePoolLockIsHeld) {
  auto m = test::create_test_manager(32);
  auto chain = test::register_sequence(m, test::iota_sequence(0, 8));
  const auto hashes = test::hashes_of(chain);
  const SequenceHash cached = [&] {
    auto block = test::register_hash(m, synth_hash(99));
    return block.sequence_hash();
  }();
  // Futures outlive the locked section: a failed wait returns from it, and the lock must be
  // released before a future's destructor waits for its thread.
  std::future<std::vector<ImmutableBlock<G1>>> held_match;
  std::future<std::vector<ImmutableBlock<G1>>> cached_match;
  testing::with_pool_lock(m, [&] {
    held_match = std::async(std::launch::async, [&] { return m.match_blocks(hashes); });
    ASSERT_EQ(held_match.wait_for(std::chrono::seconds(10)), std::future_status::ready)
        << "a held chain's match waited for the pool lock";
    cached_match = std::async(std::launch::async, [&] { return m.match_blocks({&cached, 1}); });
    EXPECT_EQ(cached_match.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  });
  const auto matched = held_match.get();
  ASSERT_EQ(matched.size(), hashes.size());
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(matched[i].block_id(), chain[i].block_id()) << i;
    EXPECT_EQ(matched[i].use_count(), 2u) << i;
  }
  EXPECT_EQ(cached_match.get().size(), 1u);
  const auto s = m.metrics();
  EXPECT_EQ(s.match_hashes_requested, hashes.size() + 1);
  EXPECT_EQ(s.match_blocks_returned, hashes.size() + 1);
  EXPECT_EQ(s.inflight_immutable, static_cast<std::int64_t>(2 * hashes.size()));
  m.check_invariants();
}

// Two threads matching one held chain at once: every result is the whole chain, whichever way
// each block was taken, and the counts come back exact.
TEST(UnlockedMatch, TwoThreadsOnOneChainGetTheWholeChain) {
  auto m = test::create_test_manager(64);
  auto chain = test::register_sequence(m, test::iota_sequence(0, 32));
  const auto hashes = test::hashes_of(chain);
  const auto ids = test::ids_of(chain);
  std::atomic<int> short_results{0};
  std::latch start(2);
  auto run = [&] {
    start.arrive_and_wait();
    for (int i = 0; i < 2000; ++i) {
      const auto got = m.match_blocks(hashes);
      if (test::ids_of(got) != ids) short_results.fetch_add(1);
    }
  };
  std::thread a(run);
  std::thread b(run);
  a.join();
  b.join();
  EXPECT_EQ(short_results.load(), 0);
  EXPECT_EQ(m.metrics().inflight_immutable, static_cast<std::int64_t>(hashes.size()));
  EXPECT_EQ(m.metrics().match_blocks_returned, 2u * 2000 * hashes.size());
  for (const auto& block : chain) EXPECT_EQ(block.use_count(), 1u);
  m.check_invariants();
}

// A chain whose head is held and tail is cached: the held part without the lock, the rest under
// it, in order, as one result.
TEST(UnlockedMatch, HeldHeadAndCachedTailMatchAsOnePrefix) {
  auto m = test::create_test_manager(32);
  auto chain = test::register_sequence(m, test::iota_sequence(0, 6));
  const auto hashes = test::hashes_of(chain);
  const auto ids = test::ids_of(chain);
  chain.erase(chain.begin() + 3, chain.end());  // the tail goes to the inactive pool
  const auto matched = m.match_blocks(hashes);
  ASSERT_EQ(matched.size(), hashes.size());
  EXPECT_EQ(test::ids_of(matched), ids);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  m.check_invariants();
}

// Many evictions and registrations shift entries around the index; held blocks are still found
// without the lock afterwards.
TEST(UnlockedMatch, HeldBlocksFoundAfterManyEvictions) {
  auto m = test::create_test_manager(16);
  auto held = test::register_sequence(m, test::iota_sequence(0, 4));
  const auto hashes = test::hashes_of(held);
  for (std::uint64_t round = 0; round < 500; ++round) {
    auto blocks = m.allocate_blocks(12);  // evicts the previous round's 12 cached blocks
    ASSERT_TRUE(blocks.has_value()) << round;
    std::vector<CompleteBlock<G1>> staged;
    for (std::size_t i = 0; i < blocks->size(); ++i) {
      staged.push_back(std::move((*blocks)[i]).stage(synth_hash(1000 + round * 12 + i), 4));
    }
    (void)m.register_blocks(std::move(staged));  // dropped: cached until the next round
  }
  m.check_invariants();
  std::future<std::vector<ImmutableBlock<G1>>> found;
  testing::with_pool_lock(m, [&] {
    found = std::async(std::launch::async, [&] { return m.match_blocks(hashes); });
    EXPECT_EQ(found.wait_for(std::chrono::seconds(10)), std::future_status::ready)
        << "a held chain's match waited for the pool lock";
  });
  EXPECT_EQ(test::ids_of(found.get()), test::ids_of(held));
}

// Two hashes whose mixes share the tag (and so the home cell): found by a birthday search over
// synthetic hashes (about 2^16 of them).
std::pair<SequenceHash, SequenceHash> colliding_pair() {
  std::unordered_map<std::uint64_t, std::uint64_t> seen;
  for (std::uint64_t value = 1;; ++value) {
    const auto [it, fresh] = seen.emplace(synth_hash(value).mix() >> 32, value);
    if (!fresh) return {synth_hash(it->second), synth_hash(value)};
  }
}

// The index offers a held block of another hash whose fingerprint collides: the matcher takes
// a reference, sees the slot holds another hash, gives it back and asks under the lock.
TEST(UnlockedMatch, FingerprintCollisionIsToldApartByTheSlotsHash) {
  const auto [held_hash, absent_hash] = colliding_pair();
  ASSERT_EQ(held_hash.mix() >> 32, absent_hash.mix() >> 32);
  ASSERT_NE(held_hash, absent_hash);
  auto m = test::create_test_manager(2);
  auto held = test::register_hash(m, held_hash);
  EXPECT_TRUE(m.match_blocks({&absent_hash, 1}).empty());
  EXPECT_EQ(held.use_count(), 1u);  // the reference taken to check was given back
  const auto matched = m.match_blocks({&held_hash, 1});
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].block_id(), held.block_id());
  // Registered as well, each hash finds its own block.
  auto second = test::register_hash(m, absent_hash);
  const auto both = m.match_blocks(std::vector<SequenceHash>{absent_hash, held_hash});
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].block_id(), second.block_id());
  EXPECT_EQ(both[1].block_id(), held.block_id());
  m.check_invariants();
}

// A matcher races the last drop of a block, its eviction and the slot's reuse for another hash
// (and, with Allow, for a duplicate of the same hash): whatever it reads from the index, it
// never returns a block holding another hash, nor a duplicate, and the pool stays whole.
TEST(UnlockedMatch, RacingSlotReuseNeverReturnsAnotherTenancy) {
  for (const auto policy : {DuplicationPolicy::Allow, DuplicationPolicy::Reject}) {
    auto m = test::create_test_manager(2, policy);
    const SequenceHash wanted = synth_hash(7);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> hits{0};
    std::atomic<std::uint64_t> wrong{0};
    std::latch start(2);
    std::thread matcher([&] {
      start.arrive_and_wait();
      while (!stop.load(std::memory_order_relaxed)) {
        auto got = m.match_blocks({&wanted, 1});
        if (got.empty()) continue;
        // Counted, not asserted: the matcher must keep going while the main thread waits on it.
        if (got[0].sequence_hash() != wanted) wrong.fetch_add(1, std::memory_order_relaxed);
        hits.fetch_add(1, std::memory_order_relaxed);
      }
    });
    start.arrive_and_wait();
    // In a lambda, so a failed assertion still stops and joins the matcher.
    [&] {
    for (int round = 0; round < 2000; ++round) {
      {
        const std::uint64_t before = hits.load();
        auto primary = test::register_hash(m, wanted);
        if (policy == DuplicationPolicy::Allow) {
          auto duplicate = test::register_hash(m, wanted);  // the pool's other slot
          (void)duplicate;
        }
        // Overlap for certain: the matcher has taken the live block at least once this round,
        // and is matching again while the block is dropped, evicted and its slot reused.
        while (hits.load() == before) std::this_thread::yield();
      }
      // Both slots to other hashes: evicts `wanted` and reuses its slot while it may be probed.
      // The matcher may hold `wanted` for a moment: then both slots are not yet free.
      auto others = m.allocate_blocks(2);
      while (!others) {
        std::this_thread::yield();
        others = m.allocate_blocks(2);
      }
      std::vector<CompleteBlock<G1>> staged;
      staged.push_back(std::move((*others)[0]).stage(synth_hash(100 + 2 * round), 4));
      staged.push_back(std::move((*others)[1]).stage(synth_hash(101 + 2 * round), 4));
      auto registered = m.register_blocks(std::move(staged));
      registered.clear();
    }
    }();
    stop.store(true);
    matcher.join();
    m.check_invariants();
    EXPECT_EQ(m.metrics().inflight_immutable, 0);
    EXPECT_GE(hits.load(), 2000u);
    EXPECT_EQ(wrong.load(), 0u) << "a match returned a block holding another hash";
  }
}

}  // namespace
}  // namespace kvbm
