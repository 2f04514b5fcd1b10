// Registration with both duplication policies (spec core §4.4, §12 registration_tests).
#include <gtest/gtest.h>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::iota_block;
using test::synth_hash;

std::vector<SequenceHash> one(const SequenceHash& h) { return {h}; }

TEST(Registration, SingleBlockPreservesHash) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(0);
  auto imm = test::register_token_block(m, tb);
  EXPECT_EQ(imm.sequence_hash(), tb.sequence_hash());
  const auto s = m.metrics();
  EXPECT_EQ(s.registrations, 1u);
  EXPECT_EQ(s.stagings, 1u);
  EXPECT_EQ(s.duplicate_blocks, 0u);
  EXPECT_EQ(s.registration_dedup, 0u);
  EXPECT_EQ(s.inflight_immutable, 1);
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_TRUE(m.registry().is_registered(tb.sequence_hash()));
  EXPECT_EQ(m.registry().check_presence<G1>(one(tb.sequence_hash())), std::vector<bool>{true});
  m.check_invariants();
}

TEST(Registration, MultipleBlocksOrderPreserved) {
  auto m = create_test_manager(10);
  const auto seq = test::iota_sequence(0, 3);
  auto mutables = m.allocate_blocks(3);
  ASSERT_TRUE(mutables);
  std::vector<CompleteBlock<G1>> completes;
  std::vector<BlockId> ids;
  for (std::size_t i = 0; i < 3; ++i) {
    ids.push_back((*mutables)[i].block_id());
    completes.push_back(std::move((*mutables)[i]).complete(seq.blocks()[i]));
  }
  auto imms = m.register_blocks(std::move(completes));
  ASSERT_EQ(imms.size(), 3u);
  EXPECT_EQ(test::hashes_of(imms), seq.sequence_hashes());
  EXPECT_EQ(test::ids_of(imms), ids);
  const auto s = m.metrics();
  EXPECT_EQ(s.registrations, 3u);
  EXPECT_EQ(s.stagings, 3u);
  EXPECT_EQ(s.inflight_immutable, 3);
}

TEST(Registration, EmptyBatchGivesEmptyResult) {
  auto m = create_test_manager(4);
  auto out = m.register_blocks({});
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(m.metrics().registrations, 0u);
}

TEST(Registration, AllowGivesDuplicateWithOwnId) {
  auto m = create_test_manager(10, DuplicationPolicy::Allow);
  const auto tb = iota_block(0);
  auto first = test::register_token_block(m, tb);
  auto second = test::register_token_block(m, tb);
  EXPECT_NE(first.block_id(), second.block_id());
  EXPECT_EQ(first.sequence_hash(), second.sequence_hash());
  auto s = m.metrics();
  EXPECT_EQ(s.registrations, 2u);
  EXPECT_EQ(s.duplicate_blocks, 1u);
  EXPECT_EQ(s.registration_dedup, 0u);
  EXPECT_EQ(s.inflight_immutable, 2);
  EXPECT_EQ(m.available_blocks(), 8u);
  // Lookups return the primary.
  auto matched = m.match_blocks(one(tb.sequence_hash()));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].block_id(), first.block_id());
  auto scanned = m.scan_matches(one(tb.sequence_hash()), false);
  ASSERT_EQ(scanned.size(), 1u);
  EXPECT_EQ(scanned.at(tb.sequence_hash()).block_id(), first.block_id());
  m.check_invariants();
}

TEST(Registration, AllowDuplicateDropFreesSlotAndKeepsPrimary) {
  auto m = create_test_manager(10, DuplicationPolicy::Allow);
  const auto h = synth_hash(77);
  auto primary = test::register_hash(m, h);
  auto dup = test::register_hash(m, h);
  { auto gone = std::move(dup); }
  auto s = m.metrics();
  EXPECT_EQ(s.reset_pool_size, 9);  // the duplicate went straight back to the free list
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{true});
  { auto gone = std::move(primary); }
  s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 1);
  EXPECT_EQ(s.reset_pool_size, 9);
  m.check_invariants();
}

TEST(Registration, DuplicateKeepsPrimaryAliveAfterPrimaryHandlesDrop) {
  auto m = create_test_manager(10, DuplicationPolicy::Allow);
  const auto h = synth_hash(78);
  auto primary = test::register_hash(m, h);
  const BlockId primary_id = primary.block_id();
  auto dup = test::register_hash(m, h);
  { auto gone = std::move(primary); }
  // The duplicate's keep-alive holds the primary: nothing is cached yet.
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.available_blocks(), 8u);
  auto matched = m.match_blocks(one(h));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].block_id(), primary_id);
  matched.clear();
  { auto gone = std::move(dup); }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  EXPECT_EQ(m.metrics().reset_pool_size, 9);
  EXPECT_EQ(m.available_blocks(), 10u);
  m.check_invariants();
}

TEST(Registration, RejectReturnsExistingPrimary) {
  auto m = create_test_manager(10, DuplicationPolicy::Reject);
  const auto tb = iota_block(0);
  auto first = test::register_token_block(m, tb);
  auto second = test::register_token_block(m, tb);
  EXPECT_EQ(first.block_id(), second.block_id());
  EXPECT_EQ(second.sequence_hash(), tb.sequence_hash());
  const auto s = m.metrics();
  EXPECT_EQ(s.registrations, 2u);
  EXPECT_EQ(s.registration_dedup, 1u);
  EXPECT_EQ(s.duplicate_blocks, 0u);
  EXPECT_EQ(s.inflight_immutable, 2);
  EXPECT_EQ(first.use_count(), 2u);
  EXPECT_EQ(m.available_blocks(), 9u);
  m.check_invariants();
}

TEST(Registration, RejectViaStageReturnsSubmittedSlotToFreeList) {
  auto m = create_test_manager(2, DuplicationPolicy::Reject);
  auto blocks = m.allocate_blocks(2);
  ASSERT_TRUE(blocks);
  const auto h = synth_hash(5);
  const BlockId rejected_id = (*blocks)[1].block_id();
  auto primary = m.register_block(std::move((*blocks)[0]).stage(h, 4));
  auto again = m.register_block(std::move((*blocks)[1]).stage(h, 4));
  EXPECT_EQ(again.block_id(), primary.block_id());
  EXPECT_EQ(m.available_blocks(), 1u);
  EXPECT_EQ(m.metrics().reset_pool_size, 1);
  auto next = m.allocate_blocks(1);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->front().block_id(), rejected_id);
  const auto s = m.metrics();
  EXPECT_EQ(s.registrations, 2u);
  EXPECT_EQ(s.registration_dedup, 1u);
  EXPECT_EQ(s.inflight_mutable, 1);
}

TEST(Registration, RejectBatchMixedPreservesOrderPresenceAndGuards) {
  auto m = create_test_manager(10, DuplicationPolicy::Reject);
  const auto a = synth_hash(1), b = synth_hash(2), c = synth_hash(3);
  auto primary_a = test::register_hash(m, a);
  auto blocks = m.allocate_blocks(4);
  ASSERT_TRUE(blocks);
  const auto in_ids = test::ids_of(*blocks);
  std::vector<CompleteBlock<G1>> batch;
  batch.push_back(std::move((*blocks)[0]).stage(b, 4));
  batch.push_back(std::move((*blocks)[1]).stage(a, 4));
  batch.push_back(std::move((*blocks)[2]).stage(b, 4));
  batch.push_back(std::move((*blocks)[3]).stage(c, 4));
  auto out = m.register_blocks(std::move(batch));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(test::hashes_of(out), (std::vector<SequenceHash>{b, a, b, c}));
  EXPECT_EQ(out[0].block_id(), in_ids[0]);
  EXPECT_EQ(out[1].block_id(), primary_a.block_id());
  EXPECT_EQ(out[2].block_id(), in_ids[0]);
  EXPECT_EQ(out[3].block_id(), in_ids[3]);
  EXPECT_EQ(m.registry().check_presence<G1>(std::vector<SequenceHash>{a, b, c}),
            (std::vector<bool>{true, true, true}));
  const auto s = m.metrics();
  EXPECT_EQ(s.registration_dedup, 2u);
  EXPECT_EQ(s.registrations, 5u);
  // Both rejected slots are back in the free list: 10 - 1 (A) - 2 (B, C) = 7.
  EXPECT_EQ(s.reset_pool_size, 7);
  EXPECT_EQ(m.available_blocks(), 7u);
  EXPECT_EQ(s.inflight_immutable, 5);
  m.check_invariants();
}

TEST(Registration, AllowBatchSameHashTwiceMarksEachSlotPresent) {
  auto m = create_test_manager(10, DuplicationPolicy::Allow);
  const auto h = synth_hash(9);
  auto blocks = m.allocate_blocks(2);
  ASSERT_TRUE(blocks);
  std::vector<CompleteBlock<G1>> batch;
  batch.push_back(std::move((*blocks)[0]).stage(h, 4));
  batch.push_back(std::move((*blocks)[1]).stage(h, 4));
  auto out = m.register_blocks(std::move(batch));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].block_id(), out[1].block_id());
  EXPECT_EQ(m.metrics().duplicate_blocks, 1u);
  test::drop_at(out, 1);  // the duplicate
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{true});
  test::drop_at(out, 0);
  EXPECT_EQ(m.registry().check_presence<G1>(one(h)), std::vector<bool>{true});  // inactive
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
}

TEST(Registration, RejectAgainstInactiveRevivesIt) {
  auto m = create_test_manager(4, DuplicationPolicy::Reject);
  const auto h = synth_hash(11);
  BlockId cached_id;
  {
    auto b = test::register_hash(m, h);
    cached_id = b.block_id();
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  auto again = test::register_hash(m, h);
  EXPECT_EQ(again.block_id(), cached_id);
  const auto s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(s.registration_dedup, 1u);
  EXPECT_EQ(s.reset_pool_size, 3);
  m.check_invariants();
}

TEST(Registration, AllowAgainstInactiveRevivesPrimaryAndAddsDuplicate) {
  auto m = create_test_manager(4, DuplicationPolicy::Allow);
  const auto h = synth_hash(12);
  BlockId cached_id;
  {
    auto b = test::register_hash(m, h);
    cached_id = b.block_id();
  }
  auto dup = test::register_hash(m, h);
  EXPECT_NE(dup.block_id(), cached_id);
  auto s = m.metrics();
  EXPECT_EQ(s.duplicate_blocks, 1u);
  EXPECT_EQ(s.inactive_pool_size, 0);  // the cached primary was revived
  EXPECT_EQ(m.available_blocks(), 2u);
  auto matched = m.match_blocks(one(h));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].block_id(), cached_id);
  matched.clear();
  { auto gone = std::move(dup); }
  s = m.metrics();
  EXPECT_EQ(s.inactive_pool_size, 1);
  EXPECT_EQ(s.reset_pool_size, 3);
  m.check_invariants();
}

TEST(Registration, ForeignBlockIsRejectedAndNotConsumed) {
  auto m1 = create_test_manager(4);
  auto m2 = create_test_manager(4);
  auto c = test::allocate_one(m1).complete(iota_block(0));
  EXPECT_THROW((void)m2.register_block(std::move(c)), ForeignBlock);
  EXPECT_TRUE(c.valid());
  EXPECT_EQ(c.manager_id(), m1.id());
  EXPECT_EQ(m2.metrics().registrations, 0u);
  EXPECT_EQ(m2.available_blocks(), 4u);

  std::vector<CompleteBlock<G1>> batch;
  batch.push_back(test::allocate_one(m2).complete(iota_block(10)));
  batch.push_back(std::move(c));
  EXPECT_THROW((void)m2.register_blocks(std::move(batch)), ForeignBlock);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_TRUE(batch[0].valid());
  EXPECT_TRUE(batch[1].valid());
  EXPECT_EQ(m2.metrics().registrations, 0u);
  EXPECT_FALSE(m2.registry().is_registered(iota_block(10).sequence_hash()));
  // The blocks are still usable with their own managers.
  auto ok = m1.register_block(std::move(batch[1]));
  EXPECT_EQ(ok.sequence_hash(), iota_block(0).sequence_hash());
  batch.clear();
  EXPECT_EQ(m2.available_blocks(), 4u);
  m1.check_invariants();
  m2.check_invariants();
}

TEST(Registration, TouchesOncePerNewlyRegisteredHash) {
  test::ManagerOptions o;
  o.block_count = 8;
  auto metered = test::create_metered_manager(o);
  auto& m = metered.manager;
  const auto h1 = synth_hash(21), h2 = synth_hash(22);
  auto b1 = test::register_hash(m, h1);
  EXPECT_EQ(metered.tracker->touches(h1), 1u);
  auto b2 = test::register_hash(m, h2);
  auto dup = test::register_hash(m, h1);  // already registered: no new touch
  EXPECT_EQ(metered.tracker->touches(h1), 1u);
  EXPECT_EQ(metered.tracker->touches(h2), 1u);
  EXPECT_EQ(metered.tracker->total(), 2u);
}

TEST(Registration, PresenceFollowsLifecycle) {
  auto m = create_test_manager(2);
  const auto h = synth_hash(31);
  const auto hs = one(h);
  EXPECT_EQ(m.registry().check_presence<G1>(hs), std::vector<bool>{false});
  {
    auto b = test::register_hash(m, h);
    EXPECT_EQ(m.registry().check_presence<G1>(hs), std::vector<bool>{true});
    EXPECT_EQ(m.registry().check_presence<G2>(hs), std::vector<bool>{false});
    EXPECT_EQ(m.registry().registered_count(), 1u);
  }
  EXPECT_EQ(m.registry().check_presence<G1>(hs), std::vector<bool>{true});  // inactive counts
  EXPECT_TRUE(m.registry().is_registered(h));
  auto all = m.allocate_blocks(2);  // evicts it
  ASSERT_TRUE(all);
  EXPECT_EQ(m.metrics().evictions, 1u);
  EXPECT_EQ(m.registry().check_presence<G1>(hs), std::vector<bool>{false});
  EXPECT_FALSE(m.registry().is_registered(h));
  EXPECT_EQ(m.registry().registered_count(), 0u);
}

}  // namespace
}  // namespace kvbm

namespace kvbm {
namespace {

TEST(RegistryApi, FrequencyTrackingAccessors) {
  auto tracker = std::make_shared<test::CountingTracker>();
  auto with = BlockRegistry::builder().frequency_tracker(tracker).build();
  auto without = BlockRegistry::builder().build();
  EXPECT_TRUE(with.has_frequency_tracking());
  EXPECT_FALSE(without.has_frequency_tracking());
  EXPECT_EQ(with.frequency_tracker().get(), tracker.get());
  const auto h = test::synth_hash(5);
  with.touch(h);
  with.touch(h);
  EXPECT_EQ(tracker->touches(h), 2u);
  EXPECT_EQ(with.count(h), 2u);
  without.touch(h);  // no-op
  EXPECT_EQ(without.count(h), 0u);
  EXPECT_FALSE(with == without);
  auto copy = with;
  EXPECT_TRUE(copy == with);
}

TEST(RegistryApi, ManagerWithoutTrackerWorks) {
  auto m = BlockManager<G1>::builder()
               .block_count(4)
               .block_size(4)
               .registry(BlockRegistry::builder().build())
               .lru_backend()
               .build();
  const auto h = test::synth_hash(6);
  { auto b = test::register_hash(m, h); }
  auto hit = m.match_blocks(std::vector<SequenceHash>{h});
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(m.registry().count(h), 0u);
  auto found = m.scan_matches(std::vector<SequenceHash>{h}, true);
  EXPECT_EQ(found.size(), 1u);
}

TEST(RegistryApi, TinyLfuTrackerCountsRegistrationsAndHits) {
  auto m = test::create_test_manager(4);
  ASSERT_TRUE(m.registry().has_frequency_tracking());
  const auto h = test::synth_hash(7);
  { auto b = test::register_hash(m, h); }
  EXPECT_GE(m.registry().count(h), 1u);
  for (int i = 0; i < 3; ++i) auto hit = m.match_blocks(std::vector<SequenceHash>{h});
  EXPECT_GE(m.registry().count(h), 4u);  // never below the true count before aging
}

}  // namespace
}  // namespace kvbm
