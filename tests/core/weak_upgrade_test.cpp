// WeakBlock and the two-phase upgrade (spec core §6, §12 immutable_block / upgrade_function tests).
#include <gtest/gtest.h>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using test::create_test_manager;
using test::iota_block;
using test::synth_hash;

TEST(WeakUpgrade, DowngradeUpgradeLiveBlock) {
  auto m = create_test_manager(10);
  auto imm = test::register_token_block(m, iota_block(0));
  auto weak = imm.downgrade();
  EXPECT_EQ(weak.sequence_hash(), imm.sequence_hash());
  auto up = weak.upgrade();
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->block_id(), imm.block_id());
  EXPECT_EQ(up->sequence_hash(), imm.sequence_hash());
  EXPECT_EQ(imm.use_count(), 2u);
  EXPECT_EQ(m.metrics().inflight_immutable, 2);
}

TEST(WeakUpgrade, UpgradeAfterDropRevivesFromInactive) {
  auto m = create_test_manager(10);
  const auto tb = iota_block(0);
  std::optional<WeakBlock<G1>> weak;
  BlockId id;
  {
    auto imm = test::register_token_block(m, tb);
    id = imm.block_id();
    weak.emplace(imm.downgrade());
  }
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  auto up = weak->upgrade();
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->sequence_hash(), tb.sequence_hash());
  EXPECT_EQ(up->block_id(), id);
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_EQ(m.metrics().inflight_immutable, 1);
  up.reset();
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  m.check_invariants();
}

TEST(WeakUpgrade, UpgradeAfterEvictionIsEmpty) {
  auto m = create_test_manager(10);
  std::optional<WeakBlock<G1>> weak;
  {
    auto imm = test::register_token_block(m, iota_block(0));
    weak.emplace(imm.downgrade());
  }
  // Ten more register/drop cycles: the free list runs out and LRU evicts the oldest.
  for (Token i = 1; i <= 10; ++i) {
    auto other = test::register_token_block(m, iota_block(i * 100));
  }
  EXPECT_EQ(m.metrics().evictions, 1u);
  EXPECT_FALSE(weak->upgrade().has_value());
  // The weak block still names the hash in the registry.
  EXPECT_TRUE(m.registry().is_registered(weak->sequence_hash()));
  EXPECT_EQ(m.registry().check_presence<G1>(std::vector<SequenceHash>{weak->sequence_hash()}),
            std::vector<bool>{false});
  const auto h = weak->sequence_hash();
  weak.reset();
  EXPECT_FALSE(m.registry().is_registered(h));
}

TEST(WeakUpgrade, MultipleWeakBlocksSameSequence) {
  auto m = create_test_manager(10);
  auto imm = test::register_token_block(m, iota_block(0));
  auto w1 = imm.downgrade();
  auto w2 = imm.downgrade();
  auto w3 = w1;  // copies are fine
  for (const auto* w : {&w1, &w2, &w3}) {
    auto up = w->upgrade();
    ASSERT_TRUE(up.has_value());
    EXPECT_EQ(up->block_id(), imm.block_id());
  }
  // And after the strong handle is gone they all revive the cached block.
  { auto gone = std::move(imm); }
  auto a = w1.upgrade();
  auto b = w2.upgrade();
  auto c = w3.upgrade();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->block_id(), b->block_id());
  EXPECT_EQ(b->block_id(), c->block_id());
  EXPECT_EQ(a->use_count(), 3u);
}

TEST(WeakUpgrade, FindsActiveBlockRegisteredAgain) {
  auto m = create_test_manager(10, DuplicationPolicy::Reject);
  const auto h = synth_hash(3);
  auto imm = test::register_hash(m, h);
  auto weak = imm.downgrade();
  auto second = test::register_hash(m, h);  // Reject: the same primary
  auto up = weak.upgrade();
  ASSERT_TRUE(up);
  EXPECT_EQ(up->block_id(), imm.block_id());
  EXPECT_EQ(imm.use_count(), 3u);
}

TEST(WeakUpgrade, FromDuplicateUpgradesToPrimaryOnceDuplicateIsGone) {
  auto m = create_test_manager(10, DuplicationPolicy::Allow);
  const auto h = synth_hash(4);
  auto primary = test::register_hash(m, h);
  auto dup = test::register_hash(m, h);
  auto weak = dup.downgrade();
  {
    auto up = weak.upgrade();  // the duplicate is alive: phase 1 gives it back
    ASSERT_TRUE(up);
    EXPECT_EQ(up->block_id(), dup.block_id());
  }
  { auto gone = std::move(dup); }
  auto up = weak.upgrade();
  ASSERT_TRUE(up);
  EXPECT_EQ(up->block_id(), primary.block_id());
  EXPECT_EQ(up->sequence_hash(), h);
}

TEST(WeakUpgrade, NeverTouchesFrequency) {
  auto metered = test::create_metered_manager();
  auto& m = metered.manager;
  const auto h = synth_hash(5);
  std::optional<WeakBlock<G1>> weak;
  {
    auto imm = test::register_hash(m, h);
    weak.emplace(imm.downgrade());
    metered.tracker->reset();
    auto live = weak->upgrade();  // live
    ASSERT_TRUE(live);
  }
  auto revived = weak->upgrade();  // from inactive
  ASSERT_TRUE(revived);
  EXPECT_EQ(metered.tracker->total(), 0u);
  EXPECT_EQ(m.metrics().match_hashes_requested, 0u);
  EXPECT_EQ(m.metrics().scan_hashes_requested, 0u);
}

TEST(WeakUpgrade, WeakDoesNotProtectFromEviction) {
  auto m = create_test_manager(1);
  auto w = test::register_hash(m, synth_hash(6)).downgrade();
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  auto b = m.allocate_blocks(1);
  ASSERT_TRUE(b);
  EXPECT_EQ(m.metrics().evictions, 1u);
  EXPECT_FALSE(w.upgrade().has_value());
}

TEST(WeakUpgrade, WeakFromRevivedSlotAfterReuseFindsNewTenant) {
  // A weak block taken from slot X for hash h must never return X re-registered under another
  // hash: it names the hash, not the slot.
  auto m = create_test_manager(1);
  const auto h = synth_hash(7), other = synth_hash(8);
  auto w = test::register_hash(m, h).downgrade();
  auto reused = test::register_hash(m, other);  // evicts h, same slot
  EXPECT_FALSE(w.upgrade().has_value());
  EXPECT_EQ(reused.sequence_hash(), other);
}

}  // namespace
}  // namespace kvbm
