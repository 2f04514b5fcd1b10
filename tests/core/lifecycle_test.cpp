// Block lifecycle: Mutable / Complete / Immutable transitions and their metric trail
// (spec core §4, §12 lifecycle_tests and block-size validation).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::iota_block;

std::vector<SequenceHash> one(const SequenceHash& h) { return {h}; }

TEST(Lifecycle, MutableBlockReturnsToResetPool) {
  auto m = create_test_manager(10);
  {
    auto b = test::allocate_one(m);
    EXPECT_EQ(m.metrics().reset_pool_size, 9);
    EXPECT_EQ(m.metrics().inflight_mutable, 1);
  }
  EXPECT_EQ(m.metrics().reset_pool_size, 10);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  m.check_invariants();
}

TEST(Lifecycle, CompleteBlockReturnsToResetPoolNotInactive) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(0);
  {
    auto c = test::allocate_one(m).complete(tb);
    EXPECT_TRUE(c.valid());
    EXPECT_EQ(c.sequence_hash(), tb.sequence_hash());
    EXPECT_EQ(c.block_size(), 4u);
    EXPECT_EQ(m.metrics().stagings, 1u);
    EXPECT_EQ(m.metrics().inflight_mutable, 0);  // staging leaves the mutable gauge (spec T3)
    EXPECT_EQ(m.available_blocks(), 9u);
  }
  const auto s = m.metrics();
  EXPECT_EQ(s.reset_pool_size, 10);
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_FALSE(m.registry().is_registered(tb.sequence_hash()));
  EXPECT_TRUE(m.match_blocks(one(tb.sequence_hash())).empty());
  m.check_invariants();
}

TEST(Lifecycle, SizeMismatchOnCompleteLeavesBlockWithCaller) {
  auto m = create_test_manager(10);
  auto b = test::allocate_one(m);
  const BlockId id = b.block_id();
  const auto wrong = iota_block(0, 8);
  try {
    (void)std::move(b).complete(wrong);
    FAIL() << "expected BlockSizeMismatch";
  } catch (const BlockSizeMismatch& e) {
    EXPECT_EQ(e.expected(), 4u);
    EXPECT_EQ(e.actual(), 8u);
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("4"));
    EXPECT_THAT(std::string(e.what()), ::testing::HasSubstr("8"));
  }
  // The caller still owns the block, untouched.
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.block_id(), id);
  EXPECT_EQ(m.metrics().stagings, 0u);
  EXPECT_EQ(m.metrics().inflight_mutable, 1);
  EXPECT_EQ(m.available_blocks(), 9u);
  // It can still be completed with the right size.
  auto c = std::move(b).complete(iota_block(0));
  EXPECT_EQ(c.block_id(), id);
  EXPECT_EQ(m.metrics().stagings, 1u);
}

TEST(Lifecycle, SizeMismatchOnStage) {
  auto m = create_test_manager(2);
  auto b = test::allocate_one(m);
  EXPECT_THROW((void)std::move(b).stage(test::synth_hash(1), 2), BlockSizeMismatch);
  EXPECT_THROW((void)std::move(b).stage(test::synth_hash(1), 0), BlockSizeMismatch);
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(m.metrics().stagings, 0u);
  {
    MutableBlock<G1> gone = std::move(b);  // dropping the errored block returns it to reset
  }
  EXPECT_EQ(m.metrics().reset_pool_size, 2);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
}

TEST(Lifecycle, ErroredBlocksDroppedReturnToReset) {
  auto m = create_test_manager(10);
  {
    auto blocks = m.allocate_blocks(3);
    ASSERT_TRUE(blocks);
    for (auto& b : *blocks) {
      EXPECT_THROW((void)std::move(b).complete(iota_block(0, 2)), BlockSizeMismatch);
    }
    EXPECT_EQ(m.metrics().reset_pool_size, 7);
  }
  EXPECT_EQ(m.metrics().reset_pool_size, 10);
  EXPECT_EQ(m.metrics().stagings, 0u);
}

TEST(Lifecycle, CompleteResetRollsBackToMutable) {
  auto m = create_test_manager(4);
  auto c = test::allocate_one(m).complete(iota_block(0));
  const BlockId id = c.block_id();
  auto mb = std::move(c).reset();
  EXPECT_FALSE(c.valid());
  EXPECT_TRUE(mb.valid());
  EXPECT_EQ(mb.block_id(), id);
  EXPECT_EQ(m.metrics().inflight_mutable, 1);
  EXPECT_EQ(m.available_blocks(), 3u);
  // Re-stage with different content and register.
  auto c2 = std::move(mb).complete(iota_block(50));
  EXPECT_EQ(m.metrics().stagings, 2u);
  auto imm = m.register_block(std::move(c2));
  EXPECT_EQ(imm.block_id(), id);
  EXPECT_EQ(imm.sequence_hash(), iota_block(50).sequence_hash());
  EXPECT_FALSE(m.registry().is_registered(iota_block(0).sequence_hash()));
  m.check_invariants();
}

TEST(Lifecycle, RegisteredBlockMetricTrail) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(0);
  {
    auto imm = test::register_token_block(m, tb);
    auto s = m.metrics();
    EXPECT_EQ(s.inflight_immutable, 1);
    EXPECT_EQ(s.inflight_mutable, 0);
    EXPECT_EQ(s.registrations, 1u);
    EXPECT_EQ(m.available_blocks(), 9u);
    {
      auto matched = m.match_blocks(one(tb.sequence_hash()));
      ASSERT_EQ(matched.size(), 1u);
      EXPECT_EQ(matched[0].block_id(), imm.block_id());
      EXPECT_EQ(m.metrics().inflight_immutable, 2);
    }
    EXPECT_EQ(m.metrics().inflight_immutable, 1);
  }
  auto s = m.metrics();
  EXPECT_EQ(s.inflight_immutable, 0);
  EXPECT_EQ(s.inactive_pool_size, 1);
  EXPECT_EQ(s.reset_pool_size, 9);
  EXPECT_EQ(m.available_blocks(), 10u);
  {
    auto matched = m.match_blocks(one(tb.sequence_hash()));
    ASSERT_EQ(matched.size(), 1u);
    EXPECT_EQ(m.metrics().inactive_pool_size, 0);
    EXPECT_EQ(m.metrics().inflight_immutable, 1);
    EXPECT_EQ(m.available_blocks(), 9u);
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  EXPECT_EQ(m.available_blocks(), 10u);
  m.check_invariants();
}

TEST(Lifecycle, BlockIdStableAcrossTransitions) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(3);
  auto mb = test::allocate_one(m);
  const BlockId id = mb.block_id();
  auto cb = std::move(mb).complete(tb);
  EXPECT_EQ(cb.block_id(), id);
  auto imm = m.register_block(std::move(cb));
  EXPECT_EQ(imm.block_id(), id);
  EXPECT_EQ(imm.sequence_hash(), tb.sequence_hash());
  EXPECT_EQ(imm.manager_id(), m.id());
  auto matched = m.match_blocks(one(tb.sequence_hash()));
  ASSERT_EQ(matched.size(), 1u);
  EXPECT_EQ(matched[0].block_id(), id);
  auto up = imm.downgrade().upgrade();
  ASSERT_TRUE(up);
  EXPECT_EQ(up->block_id(), id);
}

TEST(Lifecycle, ImmutableCopiesCountInflightAndUseCount) {
  auto m = create_test_manager(4);
  auto a = test::register_token_block(m, iota_block(0));
  EXPECT_EQ(a.use_count(), 1u);
  {
    auto b = a;
    auto c = b;
    EXPECT_EQ(a.use_count(), 3u);
    EXPECT_EQ(m.metrics().inflight_immutable, 3);
    EXPECT_EQ(c.block_id(), a.block_id());
    auto moved = std::move(c);
    EXPECT_FALSE(c.valid());
    EXPECT_EQ(a.use_count(), 3u);
    EXPECT_EQ(m.metrics().inflight_immutable, 3);
  }
  EXPECT_EQ(a.use_count(), 1u);
  EXPECT_EQ(m.metrics().inflight_immutable, 1);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
}

TEST(Lifecycle, FullLifecycleMixedDrops) {
  auto m = create_test_manager(10);
  auto blocks = m.allocate_blocks(6);
  ASSERT_TRUE(blocks);
  std::vector<ImmutableBlock<G1>> registered;
  std::vector<CompleteBlock<G1>> staged;
  for (std::size_t i = 0; i < 6; ++i) {
    auto c = std::move((*blocks)[i]).complete(iota_block(static_cast<Token>(i * 10)));
    if (i < 4) {
      registered.push_back(m.register_block(std::move(c)));
    } else {
      staged.push_back(std::move(c));
    }
  }
  blocks.reset();
  EXPECT_EQ(m.available_blocks(), 4u);
  test::drop_at(registered, 1);
  test::drop_in_order(staged);
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  EXPECT_EQ(m.metrics().reset_pool_size, 6);
  test::drop_in_order(registered);
  EXPECT_EQ(m.available_blocks(), 10u);
  EXPECT_EQ(m.metrics().inactive_pool_size, 4);
  EXPECT_EQ(m.metrics().inflight_immutable, 0);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
  m.check_invariants();
}

TEST(Lifecycle, ConcurrentAllocationAndReturn) {
  auto m = create_test_manager(50);
  std::vector<std::thread> threads;
  for (int t = 0; t < 5; ++t) {
    threads.emplace_back([m, t]() mutable {
      for (int i = 0; i < 20; ++i) {
        auto blocks = m.allocate_blocks(2);
        if (!blocks) continue;
        auto c0 = std::move((*blocks)[0]).complete(iota_block(static_cast<Token>(t * 1000 + i * 4)));
        auto imm = m.register_block(std::move(c0));
        EXPECT_EQ(imm.sequence_hash(), iota_block(static_cast<Token>(t * 1000 + i * 4)).sequence_hash());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(m.available_blocks(), 50u);
  EXPECT_EQ(m.metrics().inflight_mutable, 0);
  EXPECT_EQ(m.metrics().inflight_immutable, 0);
  m.check_invariants();
}

}  // namespace
}  // namespace kvbm

namespace kvbm {
namespace {

TEST(Handles, MutableMoveAssignmentReleasesTheOverwrittenBlock) {
  auto m = test::create_test_manager(4);
  auto blocks = m.allocate_blocks(2);
  ASSERT_TRUE(blocks);
  auto a = std::move((*blocks)[0]);
  auto b = std::move((*blocks)[1]);
  const BlockId b_id = b.block_id();
  EXPECT_EQ(m.available_blocks(), 2u);
  a = std::move(b);  // a's old block goes back to the free list
  EXPECT_EQ(a.block_id(), b_id);
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(m.available_blocks(), 3u);
  EXPECT_EQ(m.metrics().inflight_mutable, 1);
  m.check_invariants();
}

TEST(Handles, CompleteMoveAssignmentReleasesTheOverwrittenBlock) {
  auto m = test::create_test_manager(4);
  auto c1 = test::allocate_one(m).complete(test::iota_block(0));
  auto c2 = test::allocate_one(m).complete(test::iota_block(4));
  c1 = std::move(c2);
  EXPECT_EQ(c1.sequence_hash(), test::iota_block(4).sequence_hash());
  EXPECT_FALSE(c2.valid());
  EXPECT_EQ(m.available_blocks(), 3u);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
}

TEST(Handles, ImmutableAssignmentAndSelfAssignment) {
  auto m = test::create_test_manager(4);
  auto a = test::register_hash(m, test::synth_hash(1));
  auto b = test::register_hash(m, test::synth_hash(2));
  a = b;  // a's old block loses its only holder: cached
  EXPECT_EQ(a.block_id(), b.block_id());
  EXPECT_EQ(b.use_count(), 2u);
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  EXPECT_EQ(m.metrics().inflight_immutable, 2);
  auto& alias = a;
  a = alias;  // self-assignment keeps the reference
  EXPECT_EQ(b.use_count(), 2u);
  a = std::move(b);
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(a.use_count(), 1u);
  EXPECT_EQ(m.metrics().inflight_immutable, 1);
  m.check_invariants();
}

TEST(Handles, PinAndWeakCopiesAndMoves) {
  auto m = test::create_test_manager(4);
  const auto h = test::synth_hash(3);
  std::optional<WeakBlock<G1>> copy;
  {
    auto imm = test::register_hash(m, h);
    auto p1 = imm.pin();
    auto p2 = std::move(p1);
    EXPECT_EQ(p2.use_count(), 2u);
    auto w = imm.downgrade();
    copy.emplace(w);
    auto moved = std::move(w);
    EXPECT_EQ(moved.sequence_hash(), h);
  }
  // Only the copied weak is left: it still names the hash and revives the cached block.
  EXPECT_TRUE(m.registry().is_registered(h));
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  auto up = copy->upgrade();
  ASSERT_TRUE(up);
  EXPECT_EQ(up->sequence_hash(), h);
  up.reset();
  EXPECT_EQ(m.reset_inactive_pool(), 1u);
  EXPECT_TRUE(m.registry().is_registered(h));  // the weak still names it
  EXPECT_FALSE(copy->upgrade().has_value());
  copy.reset();
  EXPECT_FALSE(m.registry().is_registered(h));
}

TEST(Handles, MovedFromCompleteBlockIsRejectedAsInvalidHandle) {
  auto m = test::create_test_manager(4);
  auto c = test::allocate_one(m).complete(test::iota_block(0));
  auto taken = std::move(c);
  std::vector<CompleteBlock<G1>> batch;
  batch.push_back(std::move(taken));
  batch.push_back(std::move(c));  // moved-from
  EXPECT_THROW((void)m.register_blocks(std::move(batch)), InvalidHandle);
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_TRUE(batch[0].valid());
  EXPECT_EQ(m.metrics().registrations, 0u);
}

}  // namespace
}  // namespace kvbm
