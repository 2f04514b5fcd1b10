// Builder validation and defaults (spec core §8, §12 builder_tests / block_size_tests).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using ::testing::HasSubstr;
using test::make_registry;

template <class F>
std::string config_error_message(F&& build) {
  try {
    (void)build();
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception type: ") + e.what();
  }
  return "no exception";
}

TEST(Builder, DefaultWithRegistryAndCountOnly) {
  auto m = BlockManager<G1>::builder().block_count(100).registry(make_registry()).build();
  const auto s = m.metrics();
  EXPECT_EQ(s.reset_pool_size, 100);
  EXPECT_EQ(s.inactive_pool_size, 0);
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_EQ(s.inflight_immutable, 0);
  EXPECT_EQ(s.allocations, 0u);
  EXPECT_EQ(m.total_blocks(), 100u);
  EXPECT_EQ(m.available_blocks(), 100u);
  EXPECT_EQ(m.block_size(), 16u);  // default block size
  EXPECT_EQ(m.duplication_policy(), DuplicationPolicy::Allow);  // default policy
  EXPECT_FALSE(m.id().is_null());
  auto blocks = m.allocate_blocks(5);
  ASSERT_TRUE(blocks.has_value());
  EXPECT_EQ(blocks->size(), 5u);
  EXPECT_EQ(m.available_blocks(), 95u);
  m.check_invariants();
}

TEST(Builder, WithLruBackend) {
  auto m = BlockManager<G1>::builder()
               .block_count(10)
               .block_size(4)
               .registry(make_registry())
               .lru_backend()
               .build();
  auto blocks = m.allocate_blocks(10);
  ASSERT_TRUE(blocks.has_value());
  EXPECT_EQ(blocks->size(), 10u);
  EXPECT_EQ(m.available_blocks(), 0u);
}

TEST(Builder, WithDuplicationPolicyReject) {
  auto m = BlockManager<G1>::builder()
               .block_count(10)
               .registry(make_registry())
               .duplication_policy(DuplicationPolicy::Reject)
               .lru_backend()
               .build();
  EXPECT_EQ(m.duplication_policy(), DuplicationPolicy::Reject);
}

TEST(Builder, RegistryIsShared) {
  auto reg = make_registry();
  auto m = BlockManager<G1>::builder().block_count(4).registry(reg).build();
  EXPECT_TRUE(m.registry() == reg);
}

TEST(Builder, ZeroBlocksRejected) {
  const auto msg = config_error_message(
      [] { return BlockManager<G1>::builder().block_count(0).registry(make_registry()).build(); });
  EXPECT_THAT(msg, HasSubstr("block_count must be greater than 0"));
}

TEST(Builder, MissingBlockCountRejected) {
  const auto msg =
      config_error_message([] { return BlockManager<G1>::builder().registry(make_registry()).build(); });
  EXPECT_THAT(msg, HasSubstr("block_count is required"));
}

TEST(Builder, MissingRegistryRejected) {
  const auto msg = config_error_message([] { return BlockManager<G1>::builder().block_count(10).build(); });
  EXPECT_THAT(msg, HasSubstr("registry is required"));
}

TEST(Builder, ConfigErrorIsAKvbmError) {
  EXPECT_THROW((void)BlockManager<G1>::builder().block_count(10).build(), Error);
}

TEST(BlockSize, DefaultFromHelperIsFour) {
  auto m = test::create_test_manager(10);
  EXPECT_EQ(m.block_size(), 4u);
}

TEST(BlockSize, Custom32) {
  auto m = BlockManager<G1>::builder().block_count(10).block_size(32).registry(make_registry()).build();
  EXPECT_EQ(m.block_size(), 32u);
  auto b = test::allocate_one(m);
  EXPECT_EQ(b.block_size(), 32u);
}

TEST(BlockSize, EveryPowerOfTwoUpTo1024IsValid) {
  for (std::uint32_t size = 1; size <= 1024; size *= 2) {
    SCOPED_TRACE(size);
    auto m =
        BlockManager<G1>::builder().block_count(2).block_size(size).registry(make_registry()).build();
    EXPECT_EQ(m.block_size(), size);
  }
}

TEST(BlockSize, InvalidSizesRejected) {
  for (std::uint32_t size : {0u, 3u, 7u, 15u, 24u, 1000u, 1023u, 2048u, 4096u}) {
    SCOPED_TRACE(size);
    const auto msg = config_error_message([size] {
      return BlockManager<G1>::builder().block_count(2).block_size(size).registry(make_registry()).build();
    });
    EXPECT_THAT(msg, HasSubstr("must be a power of two in 1..1024"));
  }
}

TEST(BlockSize, DifferentManagersDifferentSizes) {
  auto m4 = test::create_test_manager(4);
  test::ManagerOptions o;
  o.block_count = 4;
  o.block_size = 8;
  auto m8 = test::make_manager(o, make_registry());
  EXPECT_EQ(m4.block_size(), 4u);
  EXPECT_EQ(m8.block_size(), 8u);
  auto b4 = test::register_token_block(m4, test::iota_block(0, 4));
  auto b8 = test::register_token_block(m8, test::iota_block(0, 8));
  EXPECT_NE(b4.sequence_hash(), b8.sequence_hash());
}

TEST(Manager, CopiesShareOnePool) {
  auto a = test::create_test_manager(10);
  auto b = a;  // cheap handle copy
  EXPECT_EQ(a.id(), b.id());
  auto blocks = a.allocate_blocks(3);
  ASSERT_TRUE(blocks.has_value());
  EXPECT_EQ(b.available_blocks(), 7u);
  EXPECT_EQ(b.metrics().allocations, 3u);
}

TEST(Manager, DistinctManagersHaveDistinctIds) {
  auto a = test::create_test_manager(2);
  auto b = test::create_test_manager(2);
  EXPECT_NE(a.id(), b.id());
  EXPECT_FALSE(a.id().is_null());
  EXPECT_TRUE(ManagerId{}.is_null());
}

TEST(Manager, BlocksKeepPoolAliveAfterManagerIsGone) {
  std::optional<MutableBlock<G1>> mut;
  std::optional<CompleteBlock<G1>> staged;
  std::optional<ImmutableBlock<G1>> imm;
  std::optional<WeakBlock<G1>> weak;
  auto reg = make_registry();
  {
    test::ManagerOptions o;
    o.block_count = 4;
    auto m = test::make_manager(o, reg);
    auto blocks = m.allocate_blocks(3);
    ASSERT_TRUE(blocks);
    mut.emplace(std::move((*blocks)[0]));
    staged.emplace(std::move((*blocks)[1]).complete(test::iota_block(0)));
    imm.emplace(m.register_block(std::move((*blocks)[2]).complete(test::iota_block(100))));
    weak.emplace(imm->downgrade());
  }
  // Every manager handle is gone; the handles still work.
  EXPECT_EQ(mut->block_size(), 4u);
  EXPECT_EQ(staged->sequence_hash(), test::iota_block(0).sequence_hash());
  EXPECT_EQ(imm->use_count(), 1u);
  auto up = weak->upgrade();
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->block_id(), imm->block_id());
  up.reset();
  mut.reset();
  staged.reset();
  imm.reset();  // goes inactive in an orphaned pool
  EXPECT_TRUE(reg.is_registered(test::iota_block(100).sequence_hash()));
  auto again = weak->upgrade();  // revived from the orphaned pool's inactive set
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->sequence_hash(), test::iota_block(100).sequence_hash());
  again.reset();
  weak.reset();  // last reference: the pool is destroyed here (ASan checks)
}

TEST(Registry, SharedAcrossManagersOfDifferentTiers) {
  auto reg = make_registry();
  test::ManagerOptions o1;
  o1.block_count = 4;
  test::ManagerOptions o2;
  o2.block_count = 4;
  o2.policy = DuplicationPolicy::Reject;
  auto g1 = test::make_manager<G1>(o1, reg);
  auto g2 = test::make_manager<G2>(o2, reg);
  const auto tb = test::iota_block(7);
  const SequenceHash h = tb.sequence_hash();
  const std::vector<SequenceHash> hs{h};
  EXPECT_FALSE(reg.is_registered(h));
  auto b1 = test::register_token_block(g1, tb);
  EXPECT_TRUE(reg.is_registered(h));
  EXPECT_TRUE(g2.registry().is_registered(h));
  EXPECT_EQ(reg.check_presence<G1>(hs), std::vector<bool>{true});
  EXPECT_EQ(reg.check_presence<G2>(hs), std::vector<bool>{false});
  auto b2 = test::register_token_block(g2, tb);
  EXPECT_EQ(reg.check_presence<G2>(hs), std::vector<bool>{true});
  EXPECT_EQ(reg.registered_count(), 1u);
  EXPECT_NE(b1.manager_id(), b2.manager_id());
  // G2 is a different pool: it does not see G1's block as a duplicate.
  EXPECT_EQ(g2.metrics().registration_dedup, 0u);
  EXPECT_EQ(g1.metrics().duplicate_blocks, 0u);
}

}  // namespace
}  // namespace kvbm
