// Prefix matching (single-lock walk over live and cached blocks) and scatter scans
// (spec core §7, §12 matching_tests, single_lock_match_tests, scan_matches_tests, audit counters).
#include <gtest/gtest.h>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::iota_block;
using test::synth_hash;

std::vector<SequenceHash> one(const SequenceHash& h) { return {h}; }

/// A manager (metered) holding a 6-block chain; `held[i]` says whether block i is kept live (A)
/// or dropped into the inactive pool (I).
struct ChainFixture {
  test::Metered<G1> metered;
  TokenBlockSequence seq;
  std::vector<std::optional<ImmutableBlock<G1>>> held;
  std::vector<BlockId> ids;

  ChainFixture(const std::vector<bool>& active, std::size_t block_count = 16)
      : metered(test::create_metered_manager([&] {
          test::ManagerOptions o;
          o.block_count = block_count;
          return o;
        }())),
        seq(test::iota_sequence(0, active.size())) {
    auto blocks = test::register_sequence(metered.manager, seq);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      ids.push_back(blocks[i].block_id());
      held.emplace_back(std::move(blocks[i]));
    }
    for (std::size_t i = 0; i < active.size(); ++i) {
      if (!active[i]) held[i].reset();
    }
    metered.tracker->reset();
  }
  BlockManager<G1>& m() { return metered.manager; }
  SequenceHash h(std::size_t i) const { return seq.blocks()[i].sequence_hash(); }
};

TEST(Matching, NoBlocks) {
  auto m = create_test_manager(10);
  EXPECT_TRUE(m.match_blocks(one(iota_block(0).sequence_hash())).empty());
  EXPECT_EQ(m.metrics().match_hashes_requested, 1u);
  EXPECT_EQ(m.metrics().match_blocks_returned, 0u);
}

TEST(Matching, SingleBlockActiveThenFromInactive) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(0);
  BlockId id;
  {
    auto imm = test::register_token_block(m, tb);
    id = imm.block_id();
    auto matched = m.match_blocks(one(tb.sequence_hash()));
    ASSERT_EQ(matched.size(), 1u);
    EXPECT_EQ(matched[0].block_id(), id);
    EXPECT_EQ(matched[0].sequence_hash(), tb.sequence_hash());
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  {
    auto matched = m.match_blocks(one(tb.sequence_hash()));
    ASSERT_EQ(matched.size(), 1u);
    EXPECT_EQ(matched[0].block_id(), id);
    EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.match_hashes_requested, 2u);
  EXPECT_EQ(s.match_blocks_returned, 2u);
}

TEST(Matching, MultipleBlocksInOrder) {
  auto m = create_test_manager(10);
  const auto seq = test::iota_sequence(0, 4);
  auto held = test::register_sequence(m, seq);
  auto matched = m.match_blocks(seq.sequence_hashes());
  ASSERT_EQ(matched.size(), 4u);
  EXPECT_EQ(test::hashes_of(matched), seq.sequence_hashes());
  EXPECT_EQ(test::ids_of(matched), test::ids_of(held));
  EXPECT_EQ(m.metrics().match_hashes_requested, 4u);
  EXPECT_EQ(m.metrics().match_blocks_returned, 4u);
}

TEST(Matching, PartialPrefix) {
  auto m = create_test_manager(10);
  const auto seq = test::iota_sequence(0, 3);
  auto mutables = m.allocate_blocks(2);
  ASSERT_TRUE(mutables);
  std::vector<CompleteBlock<G1>> cs;
  cs.push_back(std::move((*mutables)[0]).complete(seq.blocks()[0]));
  cs.push_back(std::move((*mutables)[1]).complete(seq.blocks()[1]));
  auto held = m.register_blocks(std::move(cs));
  auto matched = m.match_blocks(seq.sequence_hashes());
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_EQ(matched[0].sequence_hash(), seq.blocks()[0].sequence_hash());
  EXPECT_EQ(matched[1].sequence_hash(), seq.blocks()[1].sequence_hash());
  EXPECT_EQ(m.metrics().match_hashes_requested, 3u);
  EXPECT_EQ(m.metrics().match_blocks_returned, 2u);
}

TEST(Matching, ReturnedBlocksDowngrade) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(0);
  auto held = test::register_token_block(m, tb);
  auto matched = m.match_blocks(one(tb.sequence_hash()));
  ASSERT_EQ(matched.size(), 1u);
  auto weak = matched[0].downgrade();
  EXPECT_EQ(weak.sequence_hash(), tb.sequence_hash());
}

TEST(Matching, EmptyInputReturnsEmpty) {
  auto f = ChainFixture({true, false});
  auto matched = f.m().match_blocks(std::span<const SequenceHash>{});
  EXPECT_TRUE(matched.empty());
  EXPECT_EQ(f.m().metrics().match_blocks_returned, 0u);
  EXPECT_EQ(f.m().metrics().match_hashes_requested, 0u);
  EXPECT_EQ(f.metered.tracker->total(), 0u);
}

TEST(Matching, AppendingFormKeepsEarlierBlocksAndMatchesLikeTheReturningForm) {
  // Block 1 is cached, block 3 is missing: the prefix is blocks 0..2, one revived.
  ChainFixture f({true, false, true, true});
  f.held[3]->set_evict_on_reset(true);
  f.held[3].reset();  // freed, not cached
  std::vector<ImmutableBlock<G1>> out;
  const auto earlier = f.m().match_blocks(one(f.h(0)));
  out.push_back(earlier[0]);
  const std::vector<SequenceHash> hashes{f.h(0), f.h(1), f.h(2), f.h(3)};
  EXPECT_EQ(f.m().match_blocks(hashes, out), 3u);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].block_id(), f.ids[0]);  // the caller's element is untouched
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out[1 + i].block_id(), f.ids[i]);
    EXPECT_EQ(out[1 + i].sequence_hash(), f.h(i));
  }
  EXPECT_EQ(f.metered.tracker->touches(f.h(1)), 1u);  // one touch per returned block
  const auto s = f.m().metrics();
  EXPECT_EQ(s.inflight_immutable, 2 /*held*/ + 1 /*earlier*/ + 4 /*out*/);
  EXPECT_EQ(s.inactive_pool_size, 0);
  const auto returning = f.m().match_blocks(hashes);
  ASSERT_EQ(returning.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(returning[i].block_id(), out[1 + i].block_id());
  // A total miss appends nothing; an appending caller's vector grows geometrically.
  EXPECT_EQ(f.m().match_blocks(one(synth_hash(999, 0)), out), 0u);
  EXPECT_EQ(out.size(), 4u);
  out.clear();
  f.held.clear();
  f.m().check_invariants();
  EXPECT_EQ(f.m().metrics().inflight_immutable, 1 /*earlier*/ + 3 /*returning*/);
}

TEST(Matching, AppendingFormOnAMovedFromManagerThrowsAndKeepsTheVector) {
  auto m = create_test_manager(10);
  auto held = test::register_token_block(m, iota_block(0));
  std::vector<ImmutableBlock<G1>> out;
  out.push_back(held);
  auto moved = std::move(m);
  EXPECT_THROW((void)m.match_blocks(one(iota_block(0).sequence_hash()), out), InvalidHandle);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].block_id(), held.block_id());
  EXPECT_EQ(moved.match_blocks(one(iota_block(0).sequence_hash()), out), 1u);
}

TEST(SingleLockMatch, MixedActiveInactivePrefixReturnsFullLength) {
  auto f = ChainFixture({true, true, false, false, true, true});
  EXPECT_EQ(f.m().metrics().inactive_pool_size, 2);
  const auto hashes = f.seq.sequence_hashes();
  auto matched = f.m().match_blocks(hashes);
  ASSERT_EQ(matched.size(), 6u);
  EXPECT_EQ(test::hashes_of(matched), hashes);
  EXPECT_EQ(test::ids_of(matched), f.ids);  // cached blocks revived in their own slots
  EXPECT_EQ(f.m().metrics().inactive_pool_size, 0);
  EXPECT_EQ(f.m().metrics().match_blocks_returned, 6u);
  f.m().check_invariants();
}

TEST(SingleLockMatch, InactiveThenActive) {
  auto f = ChainFixture({false, true});
  auto matched = f.m().match_blocks(f.seq.sequence_hashes());
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_EQ(test::ids_of(matched), f.ids);
}

TEST(SingleLockMatch, ActiveInactiveActive) {
  auto f = ChainFixture({true, false, true});
  auto matched = f.m().match_blocks(f.seq.sequence_hashes());
  ASSERT_EQ(matched.size(), 3u);
  EXPECT_EQ(test::ids_of(matched), f.ids);
  EXPECT_EQ(test::hashes_of(matched), f.seq.sequence_hashes());
}

TEST(SingleLockMatch, StopsAtFirstTotalMiss) {
  auto f = ChainFixture({true, true, true});
  const std::vector<SequenceHash> query{f.h(0), f.h(1), synth_hash(999, 2), f.h(2)};
  auto matched = f.m().match_blocks(query);
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_EQ(matched[0].block_id(), f.ids[0]);
  EXPECT_EQ(matched[1].block_id(), f.ids[1]);
  EXPECT_EQ(f.m().metrics().match_hashes_requested, 4u);
  EXPECT_EQ(f.m().metrics().match_blocks_returned, 2u);
  EXPECT_EQ(f.metered.tracker->total(), 2u);
}

TEST(SingleLockMatch, MissAfterInactiveLeavesLaterInactiveCached) {
  auto f = ChainFixture({false, false, false});
  const std::vector<SequenceHash> query{f.h(0), synth_hash(999, 1), f.h(2)};
  auto matched = f.m().match_blocks(query);
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(f.m().metrics().inactive_pool_size, 2);  // h(2) was not revived
}

TEST(SingleLockMatch, MixedPrefixTouchesOncePerReturnedBlock) {
  auto f = ChainFixture({true, false, true, false, true});
  auto matched = f.m().match_blocks(f.seq.sequence_hashes());
  ASSERT_EQ(matched.size(), 5u);
  EXPECT_EQ(f.metered.tracker->total(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(f.metered.tracker->touches(f.h(i)), 1u) << i;
}

TEST(SingleLockMatch, TotalMissTouchesNothing) {
  auto f = ChainFixture({true, false});
  auto matched = f.m().match_blocks(std::vector<SequenceHash>{synth_hash(12345), f.h(1)});
  EXPECT_TRUE(matched.empty());
  EXPECT_EQ(f.metered.tracker->total(), 0u);
}

TEST(AuditCounters, MatchActiveBlockTouchesExactlyOnce) {
  auto f = ChainFixture({true});
  auto matched = f.m().match_blocks(one(f.h(0)));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(f.metered.tracker->touches(f.h(0)), 1u);
  EXPECT_EQ(f.metered.tracker->total(), 1u);
}

TEST(AuditCounters, MatchInactiveBlockTouchesExactlyOnce) {
  auto f = ChainFixture({false});
  auto matched = f.m().match_blocks(one(f.h(0)));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(f.metered.tracker->touches(f.h(0)), 1u);
  EXPECT_EQ(f.metered.tracker->total(), 1u);
}

TEST(AuditCounters, ScanInactiveBlockTouchesExactlyOnce) {
  auto f = ChainFixture({false});
  auto found = f.m().scan_matches(one(f.h(0)), true);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(f.metered.tracker->touches(f.h(0)), 1u);
  EXPECT_EQ(f.metered.tracker->total(), 1u);
}

TEST(AuditCounters, ScanWithTouchFalseDoesNotTouch) {
  auto f = ChainFixture({false, true});
  auto found = f.m().scan_matches(f.seq.sequence_hashes(), false);
  EXPECT_EQ(found.size(), 2u);
  EXPECT_EQ(f.metered.tracker->total(), 0u);
}

TEST(AuditCounters, SingleThreadedRunsNeverTakeTheRacePaths) {
  auto f = ChainFixture({true, false, true});
  for (int i = 0; i < 3; ++i) {
    auto matched = f.m().match_blocks(f.seq.sequence_hashes());
    auto found = f.m().scan_matches(f.seq.sequence_hashes());
  }
  EXPECT_EQ(f.m().metrics().eager_primary_to_inactive, 0u);
  EXPECT_EQ(f.m().metrics().release_primary_noop, 0u);
}

TEST(Matching, ReturnsPrimaryWhenDuplicateExists) {
  auto m = create_test_manager(6, DuplicationPolicy::Allow);
  const auto h = synth_hash(40);
  auto p = test::register_hash(m, h);
  auto d = test::register_hash(m, h);
  auto matched = m.match_blocks(one(h));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].block_id(), p.block_id());
}

// ------------------------------------------------------------------ scan_matches

TEST(Scan, CountsInputOccurrencesAndDistinctResults) {
  auto m = create_test_manager(10);
  const auto h = synth_hash(50);
  auto held = test::register_hash(m, h);
  const auto before = m.metrics();
  auto found = m.scan_matches(std::vector<SequenceHash>{h, h, synth_hash(51)}, true);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found.at(h).block_id(), held.block_id());
  const auto s = m.metrics();
  EXPECT_EQ(s.scan_hashes_requested - before.scan_hashes_requested, 3u);
  EXPECT_EQ(s.scan_blocks_returned - before.scan_blocks_returned, 1u);
  EXPECT_EQ(s.match_hashes_requested, before.match_hashes_requested);
  EXPECT_EQ(s.match_blocks_returned, before.match_blocks_returned);
  EXPECT_EQ(s.inflight_immutable, 2);
}

TEST(Scan, DoesNotStopAtMisses) {
  auto f = ChainFixture({true, false, true, false});
  const std::vector<SequenceHash> query{synth_hash(7777), f.h(3), synth_hash(8888), f.h(1), f.h(0)};
  auto found = f.m().scan_matches(query, true);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found.at(f.h(3)).block_id(), f.ids[3]);
  EXPECT_EQ(found.at(f.h(1)).block_id(), f.ids[1]);
  EXPECT_EQ(found.at(f.h(0)).block_id(), f.ids[0]);
  EXPECT_EQ(found.count(f.h(2)), 0u);
  EXPECT_EQ(f.metered.tracker->total(), 3u);
  EXPECT_EQ(f.m().metrics().inactive_pool_size, 0);
}

TEST(Scan, PoolSizeGauges) {
  auto m = create_test_manager(10);
  const auto hashes = test::populate_inactive(m, 3);
  EXPECT_EQ(m.metrics().inactive_pool_size, 3);
  {
    auto found = m.scan_matches(std::vector<SequenceHash>{hashes[0], hashes[2]}, true);
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(m.metrics().inactive_pool_size, 1);
    EXPECT_EQ(m.metrics().inflight_immutable, 2);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 3);
  EXPECT_EQ(m.metrics().inflight_immutable, 0);
  m.check_invariants();
}

TEST(Scan, EmptyInput) {
  auto m = create_test_manager(4);
  auto found = m.scan_matches(std::span<const SequenceHash>{}, true);
  EXPECT_TRUE(found.empty());
  EXPECT_EQ(m.metrics().scan_hashes_requested, 0u);
  EXPECT_EQ(m.metrics().scan_blocks_returned, 0u);
}

TEST(Scan, ReturnsPrimaryWhenDuplicateExists) {
  auto m = create_test_manager(6, DuplicationPolicy::Allow);
  const auto h = synth_hash(41);
  auto p = test::register_hash(m, h);
  auto d = test::register_hash(m, h);
  auto found = m.scan_matches(one(h), false);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found.at(h).block_id(), p.block_id());
}

TEST(Integration, ChainOf32AllMatched) {
  auto m = create_test_manager(50);
  const auto seq = test::iota_sequence(0, 32);
  { auto held = test::register_sequence(m, seq); }
  EXPECT_EQ(m.available_blocks(), 50u);
  auto matched = m.match_blocks(seq.sequence_hashes());
  EXPECT_EQ(matched.size(), 32u);
  EXPECT_EQ(test::hashes_of(matched), seq.sequence_hashes());
}

TEST(Integration, InterleavedRegistrationPhases) {
  auto m = create_test_manager(30);
  const auto seq = test::iota_sequence(0, 15);
  std::vector<ImmutableBlock<G1>> held;
  for (std::size_t phase = 0; phase < 3; ++phase) {
    auto blocks = m.allocate_blocks(5);
    ASSERT_TRUE(blocks);
    std::vector<CompleteBlock<G1>> cs;
    for (std::size_t i = 0; i < 5; ++i) {
      cs.push_back(std::move((*blocks)[i]).complete(seq.blocks()[phase * 5 + i]));
    }
    for (auto& b : m.register_blocks(std::move(cs))) held.push_back(std::move(b));
  }
  auto matched = m.match_blocks(seq.sequence_hashes());
  EXPECT_EQ(matched.size(), 15u);
  EXPECT_EQ(test::ids_of(matched), test::ids_of(held));
}

}  // namespace
}  // namespace kvbm
