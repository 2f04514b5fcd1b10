// Identity cannot wrap: a slot's generation is 32 bits, so after 2^32 reuses a stale WeakBlock's
// generation matches again. The upgrade fast path also compares the hash, so the stale handle
// never revives the slot's new, different block. The testing hook sets a slot's generation near
// (or back to) a value instead of running 2^32 reuses.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

#include "kvbm/detail/testing.hpp"
#include "test_helpers.hpp"

namespace kvbm::test {
namespace {

constexpr BlockId kSlot = 0;

TEST(GenerationWrap, StaleWeakNeverUpgradesIntoTheBlockThatReusedItsGeneration) {
  for (const auto backend : all_eviction_backends()) {
    SCOPED_TRACE(to_string(backend));
    ManagerOptions o;
    o.block_count = 1;
    o.backend = backend;
    auto m = make_manager(o, make_registry());
    const auto a = synth_hash(11);
    const auto b = synth_hash(22);

    std::optional<WeakBlock<G1>> stale;
    std::uint32_t stale_generation = 0;
    {
      auto block_a = register_hash(m, a);
      ASSERT_EQ(block_a.block_id(), kSlot);
      stale_generation = testing::slot_generation(m, kSlot);
      stale = block_a.downgrade();
    }
    // A is cached; registering B evicts it, so the stale weak handle's block is gone.
    auto block_b = register_hash(m, b);
    ASSERT_EQ(block_b.block_id(), kSlot);
    EXPECT_FALSE(stale->upgrade().has_value());
    { auto drop = std::move(block_b); }  // B cached, count 0: a quiescent slot

    // 2^32 reuses later the slot's generation is the stale handle's again, and B is live in it.
    testing::set_slot_generation(m, kSlot, stale_generation);
    auto hit = m.match_blocks(std::vector{b});
    ASSERT_EQ(hit.size(), 1u);
    ASSERT_EQ(testing::slot_generation(m, kSlot), stale_generation);

    const auto upgraded = stale->upgrade();
    EXPECT_FALSE(upgraded.has_value()) << "a stale handle revived a different block";
    EXPECT_EQ(hit[0].use_count(), 1u) << "the failed fast path gave its reference back";
    auto weak_b = hit[0].downgrade();
    ASSERT_TRUE(weak_b.upgrade().has_value());
    EXPECT_EQ(weak_b.upgrade()->sequence_hash(), b);
    hit.clear();
    m.check_invariants();
    EXPECT_EQ(m.available_blocks(), 1u);
  }
}

TEST(GenerationWrap, ReusesAcrossTheWrapKeepEveryHandleExact) {
  ManagerOptions o;
  o.block_count = 1;
  auto m = make_manager(o, make_registry());
  testing::set_slot_generation(m, kSlot, 0xFFFF'FFFDu);
  std::vector<WeakBlock<G1>> old_weaks;
  bool wrapped = false;
  std::uint32_t previous = testing::slot_generation(m, kSlot);
  for (std::uint64_t i = 0; i < 6; ++i) {
    const auto hash = synth_hash(100 + i);
    auto block = register_hash(m, hash);  // evicts the previous block
    auto weak = block.downgrade();
    for (const auto& old : old_weaks) EXPECT_FALSE(old.upgrade().has_value());
    ASSERT_TRUE(weak.upgrade().has_value());  // live: fast path
    EXPECT_EQ(block.use_count(), 1u);
    { auto drop = std::move(block); }
    auto revived = weak.upgrade();  // cached: revived by hash
    ASSERT_TRUE(revived.has_value());
    EXPECT_EQ(revived->sequence_hash(), hash);
    revived.reset();
    const auto now = testing::slot_generation(m, kSlot);
    wrapped = wrapped || now < previous;
    previous = now;
    old_weaks.push_back(std::move(weak));
    m.check_invariants();
  }
  EXPECT_TRUE(wrapped) << "the loop did not cross the 32-bit wrap";
  EXPECT_EQ(m.available_blocks(), 1u);
}

}  // namespace
}  // namespace kvbm::test
