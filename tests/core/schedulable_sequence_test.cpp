// SchedulableSequence: every transition and error of the two-phase protocol (the original's
// scheduled-sequence behaviours, with kvbm's rules: register when KV is computed, the last token
// never served from cache, recompute after release).
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "core/sequence_test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::decode;
using test::expect_refused;
using test::iota_tokens;
using test::make_seq;
using test::prefill_all;
using test::Seq;

TEST(SchedulableSequence, BuilderValidatesEverySetting) {
  EXPECT_THROW((void)Seq::builder().max_output_tokens(1).block_size(4).build(), ConfigError);
  EXPECT_THROW((void)Seq::builder().tokens({}).max_output_tokens(1).block_size(4).build(),
               ConfigError);
  EXPECT_THROW((void)Seq::builder().tokens({1}).block_size(4).build(), ConfigError);
  EXPECT_THROW((void)Seq::builder().tokens({1}).max_output_tokens(1).build(), ConfigError);
  EXPECT_THROW((void)Seq::builder().tokens({1}).max_output_tokens(1).block_size(0).build(),
               ConfigError);
  HashKeys outside;
  outside.add_multimodal_item({7, 2, 4});  // tokens 2..5 of a 4-token prompt
  EXPECT_THROW((void)Seq::builder().tokens({1, 2, 3, 4}).max_output_tokens(1).block_size(4)
                   .hash_keys(outside).build(),
               ConfigError);
  const auto seq = make_seq(iota_tokens(0, 6), 3);
  EXPECT_EQ(seq.state(), SequenceState{});
  EXPECT_EQ(seq.num_input_tokens(), 6u);
  EXPECT_EQ(seq.total_tokens(), 6u);
  EXPECT_EQ(seq.num_blocks(), 1u);
  EXPECT_EQ(seq.max_output_tokens(), 3u);
  EXPECT_EQ(seq.remaining_tokens(), 3u);
  EXPECT_EQ(seq.prefill_target(), 6u);
  EXPECT_EQ(seq.tail_tokens(), 6u);
  EXPECT_FALSE(seq.is_prefill_complete());
}

TEST(SchedulableSequence, PrefillThenDecodeRegistersBlocksOnlyWhenTheirKvIsComputed) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 8), 10);
  seq.schedule_prefill(8, m);
  EXPECT_EQ(seq.state(), (SequenceState{SequenceStateKind::PrefillScheduled, 8, 2}));
  EXPECT_EQ(seq.unassigned_blocks(), 2u);
  EXPECT_EQ(seq.assigned_blocks(), 0u);  // scheduled, not computed
  seq.apply_prefill(100, m);
  EXPECT_EQ(seq.state(), SequenceState{});
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  EXPECT_EQ(seq.unassigned_blocks(), 0u);
  EXPECT_EQ(seq.kv_position(), 8u);
  EXPECT_EQ(seq.tail_tokens(), 1u);
  EXPECT_EQ(seq.generated_tokens(), 1u);
  EXPECT_TRUE(seq.is_prefill_complete());

  // Token 8's KV needs a third block.
  seq.schedule_decode(m);
  EXPECT_EQ(seq.state(), (SequenceState{SequenceStateKind::DecodeScheduled, 0, 1}));
  EXPECT_EQ(seq.apply_decode(101, m), DecodeOutcome::Continue);
  EXPECT_EQ(seq.kv_position(), 9u);
  EXPECT_EQ(decode(seq, m, 102), DecodeOutcome::Continue);
  // Token 11 fills block 2 (total 12) but its KV is not computed: not registered yet.
  EXPECT_EQ(decode(seq, m, 103), DecodeOutcome::Continue);
  EXPECT_EQ(seq.total_tokens(), 12u);
  EXPECT_EQ(seq.num_blocks(), 3u);
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  // The next step computes it: block 2 is registered.
  EXPECT_EQ(decode(seq, m, 104), DecodeOutcome::BlockCompleted);
  EXPECT_EQ(seq.assigned_blocks(), 3u);
  EXPECT_EQ(seq.kv_position(), 12u);
  EXPECT_EQ(seq.tail_tokens(), 1u);
  m.check_invariants();
}

TEST(SchedulableSequence, DecodeReportsMaxLength) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 5), 4);
  prefill_all(seq, m);  // generated 1
  EXPECT_EQ(decode(seq, m, 1), DecodeOutcome::Continue);
  EXPECT_EQ(decode(seq, m, 2), DecodeOutcome::Continue);  // kv 7
  EXPECT_EQ(decode(seq, m, 3), DecodeOutcome::BlockCompletedAndMaxLength);  // kv 8
  EXPECT_TRUE(seq.is_complete());
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::GenerationComplete,
                                [&] { seq.schedule_decode(m); });
  auto seq2 = make_seq(iota_tokens(0, 4), 3);
  prefill_all(seq2, m);
  EXPECT_EQ(decode(seq2, m, 1), DecodeOutcome::Continue);
  EXPECT_EQ(decode(seq2, m, 2), DecodeOutcome::MaxLength);
}

TEST(SchedulableSequence, ChunkedPrefillTokenRules) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 10), 5);
  seq.schedule_prefill(4, m);
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::TokenOnNonFinalChunk,
                             [&] { seq.apply_prefill(9, m); });
  seq.apply_prefill(std::nullopt, m);
  EXPECT_EQ(seq.prefill_position(), 4u);
  EXPECT_EQ(seq.assigned_blocks(), 1u);
  EXPECT_EQ(seq.tail_tokens(), 6u);
  // A chunk that ends inside a block: the partial block is allocated, never registered.
  seq.schedule_prefill(3, m);
  EXPECT_EQ(seq.state().blocks_allocated, 1u);
  seq.apply_prefill(std::nullopt, m);
  EXPECT_EQ(seq.assigned_blocks(), 1u);
  EXPECT_EQ(seq.unassigned_blocks(), 1u);
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::PrefillOverrun,
                                [&] { seq.schedule_prefill(4, m); });
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::PrefillNotComplete,
                                [&] { seq.schedule_decode(m); });
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::PrefillNotComplete,
                                [&] { seq.schedule_speculative(2, m); });
  seq.schedule_prefill(3, m);
  EXPECT_EQ(seq.state().blocks_allocated, 1u);  // tokens 8, 9
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::MissingTokenOnFinalChunk,
                             [&] { seq.apply_prefill(std::nullopt, m); });
  seq.apply_prefill(77, m);
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  EXPECT_EQ(seq.unassigned_blocks(), 1u);
  EXPECT_EQ(seq.tokens().back(), 77u);
  EXPECT_EQ(seq.kv_position(), 10u);
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::PrefillComplete,
                                [&] { seq.schedule_prefill(1, m); });
  m.check_invariants();
}

TEST(SchedulableSequence, ZeroOutputFinalChunkTakesNoToken) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 8), 0);
  seq.schedule_prefill(8, m);
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::AppendExceedsRemaining,
                             [&] { seq.apply_prefill(5, m); });
  seq.apply_prefill(std::nullopt, m);
  EXPECT_EQ(seq.tail_tokens(), 0u);
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::GenerationComplete,
                                [&] { seq.schedule_decode(m); });
}

TEST(SchedulableSequence, EveryCallOutOfStateIsRefusedWithNothingChanged) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 8), 4);
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState, [&] { seq.apply_prefill(1, m); });
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState, [&] { seq.apply_decode(1, m); });
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState,
                             [&] { seq.apply_speculative({}, m); });
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState, [&] { seq.revert_schedule(); });
  seq.schedule_prefill(8, m);
  for (auto* call : {+[](Seq& s, BlockManager<G1>& mm) { s.schedule_prefill(1, mm); },
                     +[](Seq& s, BlockManager<G1>& mm) { s.schedule_decode(mm); },
                     +[](Seq& s, BlockManager<G1>& mm) { s.schedule_speculative(1, mm); },
                     +[](Seq& s, BlockManager<G1>& mm) { (void)s.match_and_add_prefix(mm); }}) {
    expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::NotIdle, [&] { call(seq, m); });
  }
  for (auto* call : {+[](Seq& s, BlockManager<G1>& mm) { s.apply_decode(1, mm); },
                     +[](Seq& s, BlockManager<G1>& mm) { s.apply_speculative({}, mm); },
                     +[](Seq& s, BlockManager<G1>&) { s.release(); },
                     +[](Seq& s, BlockManager<G1>& mm) { (void)s.reacquire(mm); },
                     +[](Seq& s, BlockManager<G1>&) { (void)s.drop_unassigned(1); },
                     +[](Seq& s, BlockManager<G1>&) {
                       const std::vector<Token> t{1};
                       s.append_tokens(t);
                     }}) {
    expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState, [&] { call(seq, m); });
  }
  seq.apply_prefill(9, m);
  // Two tokens without KV: decode and speculative need exactly one.
  const std::vector<Token> forced{10};
  seq.append_tokens(forced);
  EXPECT_EQ(seq.tail_tokens(), 2u);
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::WrongDanglingCount,
                                [&] { seq.schedule_decode(m); });
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::WrongDanglingCount,
                                [&] { seq.schedule_speculative(1, m); });
  const std::vector<Token> too_many{1, 2, 3};
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::AppendExceedsRemaining,
                             [&] { seq.append_tokens(too_many); });
  // match after prefill started, reacquire while holding blocks.
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState,
                             [&] { (void)seq.match_and_add_prefix(m); });
  expect_refused<ApplyError>(seq, m, ApplyErrorKind::WrongState, [&] { (void)seq.reacquire(m); });
}

TEST(SchedulableSequence, AllocationFailureLeavesNoTraceAndReportsNeeded) {
  auto m = create_test_manager(4);
  auto holder = make_seq(iota_tokens(100, 8), 1);
  prefill_all(holder, m);  // holds 2
  auto seq = make_seq(iota_tokens(0, 12), 4);
  const auto touches = m.metrics();
  try {
    seq.schedule_prefill(12, m);
    FAIL();
  } catch (const ScheduleError& e) {
    EXPECT_EQ(e.kind(), ScheduleErrorKind::AllocationFailed);
    EXPECT_EQ(e.needed(), 3u);
  }
  EXPECT_EQ(seq.state(), SequenceState{});
  EXPECT_EQ(seq.page_indices().size(), 0u);
  EXPECT_EQ(m.available_blocks(), 2u);
  EXPECT_EQ(m.metrics().allocations, touches.allocations);
  m.check_invariants();
  // The same sequence fits once the holder is gone.
  holder.release();
  seq.schedule_prefill(12, m);
  EXPECT_EQ(seq.unassigned_blocks(), 3u);
  // Decode that cannot get its block.
  seq.apply_prefill(5, m);
  auto other = make_seq(iota_tokens(300, 4), 1);
  other.schedule_prefill(4, m);  // the last free block
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::AllocationFailed,
                                [&] { seq.schedule_decode(m); });
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::AllocationFailed,
                                [&] { seq.schedule_speculative(3, m); });
}

TEST(SchedulableSequence, MatchedInactiveBlocksCountAsConsumed) {
  auto m = create_test_manager(4);
  {
    auto first = make_seq(iota_tokens(0, 9), 1);
    prefill_all(first, m);  // blocks 0 and 1 registered
  }
  EXPECT_EQ(m.available_blocks(), 4u);  // the cached pair counts as available...
  auto seq = make_seq(iota_tokens(0, 20), 1);
  EXPECT_EQ(seq.match_and_add_prefix(m), 2u);
  EXPECT_EQ(m.available_blocks(), 2u);  // ...until matched: then the request holds it
  // 3 more blocks for 20 tokens: 4 looked available before the match, 2 are.
  expect_refused<ScheduleError>(seq, m, ScheduleErrorKind::AllocationFailed,
                                [&] { seq.schedule_prefill(12, m); });
  seq.schedule_prefill(8, m);  // a chunk that fits
  EXPECT_EQ(m.available_blocks(), 0u);
}

TEST(SchedulableSequence, FullyCachedWholeBlockPromptStillComputesItsLastToken) {
  auto m = create_test_manager(20);
  auto first = make_seq(iota_tokens(0, 8), 2);
  prefill_all(first, m);
  first.release();  // both prompt blocks are cached
  auto seq = make_seq(iota_tokens(0, 8), 2);
  EXPECT_EQ(seq.match_and_add_prefix(m), 1u);  // (8 - 1) / 4: never the last token's block
  EXPECT_EQ(seq.prefill_position(), 4u);
  EXPECT_EQ(seq.new_tokens_for_prefill(), 4u);
  seq.schedule_prefill(4, m);
  seq.apply_prefill(42, m);  // the first token's logits exist
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  EXPECT_EQ(decode(seq, m, 43), DecodeOutcome::MaxLength);
  m.check_invariants();
}

TEST(SchedulableSequence, SpeculativeAcceptNoneSomeAll) {
  for (const std::size_t accepted : {0u, 2u, 5u}) {
    SCOPED_TRACE(accepted);
    auto m = create_test_manager(20);
    auto seq = make_seq(iota_tokens(0, 6), 20);
    prefill_all(seq, m);  // kv 6, total 7, 2 blocks
    const std::size_t available = m.available_blocks();
    seq.schedule_speculative(5, m);  // KV for tokens 6..11: 3 blocks
    EXPECT_EQ(seq.state(), (SequenceState{SequenceStateKind::SpeculativeScheduled, 5, 1}));
    EXPECT_EQ(m.available_blocks(), available - 1);
    std::vector<Token> drafts{200, 201, 202, 203, 204};
    drafts.resize(accepted);
    expect_refused<ApplyError>(seq, m, ApplyErrorKind::AcceptedExceedsScheduled, [&] {
      const std::vector<Token> six(6, 1);
      (void)seq.apply_speculative(six, m);
    });
    const DecodeOutcome outcome = seq.apply_speculative(drafts, m);
    EXPECT_EQ(seq.kv_position(), 6 + accepted);
    EXPECT_EQ(seq.tail_tokens(), 1u);
    EXPECT_EQ(seq.total_tokens(), 7 + accepted);
    // Registered exactly the blocks whose KV is complete; held exactly the blocks the tokens use.
    EXPECT_EQ(seq.assigned_blocks(), seq.kv_position() / 4);
    EXPECT_EQ(seq.page_indices().size(), (seq.total_tokens() + 3) / 4);
    EXPECT_EQ(outcome, accepted >= 2 ? DecodeOutcome::BlockCompleted : DecodeOutcome::Continue);
    m.check_invariants();
  }
}

TEST(SchedulableSequence, SpeculativeDraftsAreClampedToTheRemainingOutput) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 4), 3);
  prefill_all(seq, m);
  seq.schedule_speculative(10, m);
  EXPECT_EQ(seq.state().num_tokens, 2u);
  const std::vector<Token> two{1, 2};
  EXPECT_EQ(seq.apply_speculative(two, m), DecodeOutcome::MaxLength);
}

TEST(SchedulableSequence, RevertGivesBackExactlyWhatTheScheduleTook) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 6), 20);
  seq.schedule_prefill(6, m);
  seq.revert_schedule();
  EXPECT_EQ(seq.page_indices().size(), 0u);
  EXPECT_EQ(m.available_blocks(), 20u);
  prefill_all(seq, m);
  const auto pages = seq.page_indices();
  seq.schedule_speculative(9, m);
  EXPECT_EQ(seq.state().blocks_allocated, 2u);
  seq.revert_schedule();
  EXPECT_EQ(seq.page_indices(), pages);
  EXPECT_EQ(seq.state(), SequenceState{});
  seq.schedule_decode(m);  // block 1 has room: nothing to allocate
  EXPECT_EQ(seq.state().blocks_allocated, 0u);
  seq.revert_schedule();
  EXPECT_EQ(seq.page_indices(), pages);
  EXPECT_EQ(m.available_blocks(), 18u);
  m.check_invariants();
}

TEST(SchedulableSequence, DropUnassignedNeverDropsComputedKv) {
  auto m = create_test_manager(20);
  auto seq = make_seq(iota_tokens(0, 6), 20);
  prefill_all(seq, m);  // block 1 holds KV of tokens 4, 5
  EXPECT_EQ(seq.drop_unassigned(5), 0u);
  seq.schedule_speculative(9, m);  // tokens 6..15: 2 more blocks
  const std::vector<Token> none;
  // Rejecting every draft keeps only the blocks the tokens use.
  (void)seq.apply_speculative(none, m);
  EXPECT_EQ(seq.page_indices().size(), 2u);
  // A block scheduled for the dangling token but not computed can be dropped.
  const std::vector<Token> three{7, 7, 7};
  seq.append_tokens(std::span<const Token>(three).first(1));  // total 8, tail 2
  EXPECT_EQ(seq.drop_unassigned(1), 0u);
  auto fresh = make_seq(iota_tokens(0, 6), 3);
  fresh.schedule_prefill(6, m);
  fresh.revert_schedule();
  EXPECT_EQ(fresh.drop_unassigned(1), 0u);
}

TEST(SchedulableSequence, ReleaseAndReacquireRecomputeWhatWasEvicted) {
  auto m = create_test_manager(10);
  auto seq = make_seq(iota_tokens(0, 14), 10);
  prefill_all(seq, m, 500);                     // kv 14, 4 blocks (3 registered)
  for (Token t = 501; t < 504; ++t) decode(seq, m, t);  // kv 17, total 18, 5 blocks, 4 registered
  const auto hashes = std::vector<SequenceHash>(seq.sequence_hashes().begin(),
                                                seq.sequence_hashes().end());
  EXPECT_EQ(seq.assigned_blocks(), 4u);
  seq.release();
  EXPECT_EQ(seq.page_indices().size(), 0u);
  EXPECT_EQ(seq.kv_position(), 0u);
  EXPECT_EQ(seq.prefill_target(), 18u);
  EXPECT_FALSE(seq.is_prefill_complete());
  EXPECT_EQ(m.available_blocks(), 10u);
  m.check_invariants();
  // Another request takes 8 blocks: 6 free ones, then under LRU the released tail goes first
  // (blocks 3 and 2), so blocks 0 and 1 survive.
  auto other = make_seq(iota_tokens(1000, 32), 1);
  other.schedule_prefill(32, m);
  EXPECT_FALSE(seq.reacquire(m));  // 2 matched + 3 more needed, none left
  EXPECT_EQ(seq.page_indices().size(), 0u);
  EXPECT_EQ(m.available_blocks(), 2u);  // the matched blocks went back
  m.check_invariants();
  other.revert_schedule();
  ASSERT_TRUE(seq.reacquire(m));
  EXPECT_EQ(seq.prefix_matched_blocks(), 2u);
  EXPECT_EQ(seq.kv_position(), 8u);
  EXPECT_EQ(seq.page_indices().size(), 5u);  // all of the 18 tokens' blocks, KV to recompute
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  // Recompute every token (the dangling one too) and sample the next token.
  seq.schedule_prefill(10, m);
  EXPECT_EQ(seq.state().blocks_allocated, 0u);
  seq.apply_prefill(504, m);
  EXPECT_EQ(seq.assigned_blocks(), 4u);
  EXPECT_EQ(seq.tail_tokens(), 1u);
  EXPECT_EQ(seq.generated_tokens(), 5u);
  for (std::size_t i = 0; i < hashes.size(); ++i) EXPECT_EQ(seq.sequence_hashes()[i], hashes[i]);
  EXPECT_EQ(decode(seq, m, 505), DecodeOutcome::Continue);
  m.check_invariants();
}

TEST(SchedulableSequence, ReleasedSequenceCanRecomputeWithoutTheCache) {
  auto m = create_test_manager(10);
  auto seq = make_seq(iota_tokens(0, 5), 4);
  prefill_all(seq, m);
  seq.release();
  prefill_all(seq, m, 7);  // from scratch: 6 tokens
  EXPECT_EQ(seq.kv_position(), 6u);
  EXPECT_EQ(seq.generated_tokens(), 2u);
}

TEST(SchedulableSequence, ForeignManagerIsRefusedWithNothingChanged) {
  auto m = create_test_manager(10);
  auto other = create_test_manager(10);
  auto seq = make_seq(iota_tokens(0, 6), 4);
  seq.schedule_prefill(6, m);
  const auto before = test::snapshot(seq);
  EXPECT_THROW(seq.apply_prefill(1, other), ForeignBlock);
  EXPECT_EQ(test::snapshot(seq), before);
  seq.apply_prefill(1, m);
  EXPECT_THROW(seq.schedule_decode(other), ForeignBlock);
  EXPECT_EQ(seq.state(), SequenceState{});
  auto wrong_size = make_seq(iota_tokens(0, 6), 4, 8);
  EXPECT_THROW(wrong_size.schedule_prefill(6, m), BlockSizeMismatch);
  EXPECT_EQ(m.available_blocks(), 8u);
  m.check_invariants();
  other.check_invariants();
}

TEST(SchedulableSequence, DelegateSeesEveryTransition) {
  auto m = create_test_manager(3);
  std::vector<SequenceEvent> events;
  auto seq = make_seq(iota_tokens(0, 6), 4, 4, {},
                      [&](const SequenceEvent& e) { events.push_back(e); });
  (void)seq.match_and_add_prefix(m);
  seq.schedule_prefill(6, m);
  seq.apply_prefill(9, m);
  seq.schedule_decode(m);
  (void)seq.apply_decode(10, m);
  seq.schedule_speculative(2, m);
  const std::vector<Token> one{11};
  (void)seq.apply_speculative(one, m);
  seq.schedule_decode(m);
  seq.revert_schedule();
  (void)seq.drop_unassigned(1);
  seq.release();
  // A pool of 3 with a cached chain of 2 (the released blocks): reacquire evicts nothing it
  // matches and allocates the rest.
  ASSERT_TRUE(seq.reacquire(m));
  using K = SequenceEventKind;
  std::vector<K> kinds;
  for (const auto& e : events) kinds.push_back(e.kind);
  EXPECT_EQ(kinds, (std::vector<K>{K::Created, K::PrefixMatched, K::PrefillScheduled,
                                   K::PrefillApplied, K::DecodeScheduled, K::DecodeApplied,
                                   K::SpeculativeScheduled, K::SpeculativeApplied,
                                   K::DecodeScheduled, K::ScheduleReverted,
                                   K::UnassignedDropped, K::Released, K::Reacquired}));
  EXPECT_EQ(events[0].num_tokens, 6u);
  EXPECT_EQ(events[2].blocks_allocated, 2u);
  EXPECT_EQ(events[3].blocks_registered, 1u);
  EXPECT_EQ(events[3].token, std::optional<std::uint32_t>(9));
  EXPECT_EQ(events[5].token, std::optional<std::uint32_t>(10));
  EXPECT_EQ(events[7].num_tokens, 1u);
  EXPECT_EQ(events[10].blocks_released, 1u);  // the dangling token's block: no KV in it yet
  EXPECT_EQ(events[11].blocks_released, 2u);
  EXPECT_TRUE(events[12].success);
  EXPECT_EQ(events[12].blocks_matched, 2u);
  EXPECT_EQ(events[12].blocks_allocated, 1u);
}

TEST(SchedulableSequence, ScheduleEventsNameTheBlocksTheyEvicted) {
  auto m = create_test_manager(3);
  auto first = make_seq(iota_tokens(0, 9), 1);
  prefill_all(first, m);  // 3 blocks, 2 registered
  const std::vector<SequenceHash> chain(first.sequence_hashes().begin(),
                                        first.sequence_hashes().end());
  first.release();  // 2 cached, tail first
  std::vector<SequenceHash> evicted;
  auto seq = make_seq(iota_tokens(100, 12), 1, 4, {}, [&](const SequenceEvent& e) {
    evicted.insert(evicted.end(), e.evicted.begin(), e.evicted.end());
  });
  seq.schedule_prefill(12, m);
  EXPECT_EQ(evicted, (std::vector<SequenceHash>{chain[1], chain[0]}));
}

TEST(SchedulableSequence, DroppingTheSequenceReleasesEverything) {
  auto m = create_test_manager(10);
  {
    auto seq = make_seq(iota_tokens(0, 10), 4);
    seq.schedule_prefill(10, m);
  }
  EXPECT_EQ(m.available_blocks(), 10u);
  m.check_invariants();
}

}  // namespace
}  // namespace kvbm
