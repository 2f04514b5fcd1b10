// RequestSequence (the low-level layer) and vLLM's prefix-caching scheduling scenarios
// (shared/spec/request-sequences.md) driven through SchedulableSequence.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "core/sequence_test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::decode;
using test::iota_tokens;
using test::make_manager;
using test::make_registry;
using test::make_seq;
using test::prefill_all;
using test::Seq;

using Req = RequestSequence<G1>;

TEST(RequestSequence, ConstructionTouchesNoManager) {
  const Req seq(iota_tokens(0, 8), 10, 4);
  EXPECT_EQ(seq.num_input_tokens(), 8u);
  EXPECT_EQ(seq.total_tokens(), 8u);
  EXPECT_EQ(seq.num_blocks(), 2u);
  EXPECT_EQ(seq.generated_tokens(), 0u);
  EXPECT_EQ(seq.max_output_tokens(), 10u);
  EXPECT_EQ(seq.block_size(), 4u);
  EXPECT_EQ(seq.assigned_blocks() + seq.staged_blocks() + seq.unassigned_blocks(), 0u);
  EXPECT_FALSE(seq.is_complete());
  EXPECT_TRUE(Req(iota_tokens(0, 4), 0, 4).is_complete());
  EXPECT_THROW(Req(iota_tokens(0, 4), 1, 0), ConfigError);
  EXPECT_THROW(Req(iota_tokens(0, 4), 1, 12), ConfigError);  // not a power of two
  EXPECT_THROW(Req(iota_tokens(0, 4), std::size_t{1} << 26, 4), ConfigError);  // past 2^24 blocks
}

TEST(RequestSequence, ModularPrefillAndDecodeLoop) {
  auto m = create_test_manager(20);
  {  // cache the first block
    Req warm(iota_tokens(0, 4), 0, 4);
    ASSERT_TRUE(warm.allocate_blocks(1, m));
    EXPECT_EQ(warm.complete_and_register_pending(m), 1u);
  }
  Req seq(iota_tokens(0, 8), 8, 4);
  EXPECT_EQ(seq.match_and_add_prefix(m), 1u);
  EXPECT_EQ(seq.prefix_matched_blocks(), 1u);
  EXPECT_EQ(seq.new_tokens_for_prefill(), 4u);
  EXPECT_THROW((void)seq.match_and_add_prefix(m), ApplyError);
  ASSERT_TRUE(seq.allocate_blocks(2, m));  // block 1 and the generation block
  EXPECT_EQ(seq.stage_pending(), 1u);
  EXPECT_EQ(seq.staged_blocks(), 1u);
  EXPECT_EQ(seq.register_staged(m), 1u);
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  EXPECT_EQ(seq.unassigned_blocks(), 1u);
  for (Token t = 100; t < 103; ++t) EXPECT_FALSE(seq.append_token(t));
  EXPECT_EQ(seq.append_token(103), std::optional<std::size_t>(2));
  EXPECT_EQ(seq.complete_and_register_pending(m), 1u);
  EXPECT_EQ(seq.unassigned_blocks(), 0u);
  const auto pages = seq.page_indices();
  EXPECT_EQ(pages.size(), 3u);
  EXPECT_EQ(std::set<BlockId>(pages.begin(), pages.end()).size(), 3u);
  for (Token t = 200; t < 204; ++t) (void)seq.append_token(t);
  EXPECT_TRUE(seq.is_complete());
  EXPECT_THROW((void)seq.append_token(1), ApplyError);
  EXPECT_EQ(seq.total_tokens(), 16u);
  EXPECT_EQ(seq.complete_and_register_pending(m), 0u);  // no block to put block 3 in
  seq.release();
  seq.release();
  EXPECT_EQ(m.available_blocks(), 20u);
  m.check_invariants();
}

TEST(RequestSequence, AllocateIsAllOrNothing) {
  auto m = create_test_manager(2);
  Req seq(iota_tokens(0, 4), 10, 4);
  EXPECT_FALSE(seq.allocate_blocks(3, m));
  EXPECT_EQ(seq.unassigned_blocks(), 0u);
  EXPECT_EQ(m.available_blocks(), 2u);
  EXPECT_TRUE(seq.allocate_blocks(0, m));
  EXPECT_TRUE(seq.allocate_blocks(2, m));
  EXPECT_EQ(seq.unassigned_blocks(), 2u);
  auto other = create_test_manager(2);
  EXPECT_THROW((void)seq.allocate_blocks(1, other), ForeignBlock);
  EXPECT_EQ(other.available_blocks(), 2u);
}

TEST(RequestSequence, ReacquireRematchesAndAllocatesTheRest) {
  auto m = create_test_manager(20);
  Req seq(iota_tokens(0, 8), 10, 4);
  ASSERT_TRUE(seq.allocate_blocks(3, m));
  seq.complete_and_register_pending(m);
  (void)seq.append_token(100);
  (void)seq.append_token(101);
  seq.release();
  EXPECT_EQ(m.available_blocks(), 20u);
  ASSERT_TRUE(seq.reacquire(m));
  EXPECT_EQ(seq.prefix_matched_blocks(), 2u);
  EXPECT_EQ(seq.assigned_blocks(), 2u);
  EXPECT_EQ(seq.unassigned_blocks(), 1u);  // tokens 8, 9: to recompute
  EXPECT_EQ(seq.generated_tokens(), 2u);
  EXPECT_THROW((void)seq.reacquire(m), ApplyError);
  auto tiny = create_test_manager(1);
  Req big(iota_tokens(0, 8), 1, 4);
  EXPECT_FALSE(big.reacquire(tiny));
  EXPECT_EQ(big.page_indices().size(), 0u);
  EXPECT_EQ(tiny.available_blocks(), 1u);
}

// ------------------------------------------------------------------ vLLM scenarios (BS 16, P 10)

std::vector<Token> repeat(std::initializer_list<std::pair<Token, std::size_t>> runs) {
  std::vector<Token> out;
  for (const auto& [token, count] : runs) out.insert(out.end(), count, token);
  return out;
}

struct Pool16 {
  BlockRegistry registry = make_registry();
  BlockManager<G1> m = [this] {
    test::ManagerOptions o;
    o.block_count = 10;
    o.block_size = 16;
    return make_manager<G1>(o, registry);
  }();
};

TEST(VllmScenarios, SharedPrefixHit) {
  Pool16 p;
  auto r0 = make_seq(repeat({{0, 16}, {1, 16}, {2, 16}, {3, 7}}), 4, 16);
  EXPECT_EQ(r0.match_and_add_prefix(p.m), 0u);
  prefill_all(r0, p.m);
  EXPECT_EQ(r0.page_indices().size(), 4u);
  EXPECT_EQ(r0.assigned_blocks(), 3u);  // the 4th is partial: never registered
  auto r1 = make_seq(repeat({{0, 16}, {1, 16}, {2, 16}, {3, 5}}), 4, 16);
  EXPECT_EQ(r1.match_and_add_prefix(p.m), 3u);
  EXPECT_EQ(r1.prefill_position(), 48u);
  prefill_all(r1, p.m);
  EXPECT_EQ(r1.page_indices().size(), 4u);
  const auto a = r0.page_indices();
  const auto b = r1.page_indices();
  EXPECT_TRUE(std::equal(a.begin(), a.begin() + 3, b.begin()));  // 3 shared blocks
  EXPECT_NE(a[3], b[3]);
  EXPECT_EQ(p.m.available_blocks(), 5u);
  r0.release();
  r1.release();
  EXPECT_EQ(p.m.available_blocks(), 10u);
  p.m.check_invariants();
}

TEST(VllmScenarios, ChainTailEvictedFirst) {
  Pool16 p;
  auto r0 = make_seq(iota_tokens(0, 87), 1, 16);
  auto r1 = make_seq(iota_tokens(87, 48), 1, 16);
  prefill_all(r0, p.m);
  prefill_all(r1, p.m);
  const std::vector<SequenceHash> h0(r0.sequence_hashes().begin(), r0.sequence_hashes().end());
  const std::vector<SequenceHash> h1(r1.sequence_hashes().begin(), r1.sequence_hashes().end());
  ASSERT_EQ(h0.size(), 5u);
  ASSERT_EQ(h1.size(), 3u);
  r0.release();
  r1.release();
  auto r2 = make_seq(iota_tokens(0, 35), 1, 16);
  EXPECT_EQ(r2.match_and_add_prefix(p.m), 2u);
  prefill_all(r2, p.m);
  // Evict everything evictable, in policy order.
  auto taken = p.m.allocate_blocks_with_evictions(p.m.available_blocks());
  ASSERT_TRUE(taken);
  const auto& evicted = taken->second;
  const auto at = [&](const SequenceHash& h) {
    return std::find(evicted.begin(), evicted.end(), h) - evicted.begin();
  };
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(std::find(evicted.begin(), evicted.end(), h0[i]), evicted.end()) << "matched block";
  }
  EXPECT_LT(at(h0[4]), at(h0[2]));
  EXPECT_LT(at(h1[2]), at(h1[0]));
  EXPECT_EQ(evicted.size(), 6u);
  p.m.check_invariants();
}

TEST(VllmScenarios, DecodeFillAndRegistration) {
  Pool16 p;
  auto r0 = make_seq(repeat({{0, 16}, {1, 16}, {2, 16}, {3, 7}}), 100, 16);
  prefill_all(r0, p.m, 9);  // 56 tokens
  for (Token t = 0; t < 3; ++t) (void)decode(r0, p.m, 9);  // 59 tokens
  EXPECT_EQ(r0.total_tokens(), 59u);
  EXPECT_EQ(r0.page_indices().size(), 4u);
  EXPECT_EQ(r0.assigned_blocks(), 3u);
  for (Token t = 0; t < 19; ++t) (void)decode(r0, p.m, 9);  // 78 tokens
  EXPECT_EQ(r0.total_tokens(), 78u);
  EXPECT_EQ(r0.page_indices().size(), 5u);
  EXPECT_EQ(r0.assigned_blocks(), 4u);
  const auto hashes = r0.sequence_hashes();
  EXPECT_EQ(hashes[3].parent_fragment(), hashes[2].fragment_for_child_position(3));
  // Block 3 is matchable by another request with the same first 65 tokens.
  std::vector<Token> first65(r0.tokens().begin(), r0.tokens().begin() + 65);
  auto r1 = make_seq(first65, 1, 16);
  EXPECT_EQ(r1.match_and_add_prefix(p.m), 4u);
}

}  // namespace
}  // namespace kvbm
