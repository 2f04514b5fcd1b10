// The race the slot generations exist for, made deterministic: the last holder of a primary has
// brought its count to zero but not yet taken the pool lock (parked by the test hook) when a
// lookup arrives. The lookup must finish that release itself (eager Primary -> Inactive), revive
// the block for its caller, and the parked release must then do nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "kvbm/detail/testing.hpp"
#include "test_helpers.hpp"

namespace kvbm::test {
namespace {

/// Parks the first release that reaches the hook until open() is called.
class ReleaseGate {
 public:
  explicit ReleaseGate(BlockManager<G1>& m) {
    kvbm::testing::set_release_hook(m, [this] {
      if (!armed_.exchange(false)) return;
      std::unique_lock lock{mutex_};
      parked_ = true;
      cv_.notify_all();
      cv_.wait(lock, [this] { return open_; });
    });
  }
  void wait_until_parked() {
    std::unique_lock lock{mutex_};
    cv_.wait(lock, [this] { return parked_; });
  }
  void open() {
    {
      std::lock_guard lock{mutex_};
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::atomic<bool> armed_{true};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool parked_ = false;
  bool open_ = false;
};

TEST(EagerRelease, MatchFinishesAParkedLastDropAndTheLateReleaseDoesNothing) {
  auto m = create_test_manager(4);
  ReleaseGate gate{m};
  const SequenceHash hash = synth_hash(42);
  std::optional<ImmutableBlock<G1>> block{register_hash(m, hash)};
  const BlockId id = block->block_id();
  const auto before = m.metrics();

  std::thread dropper([&] { block.reset(); });
  gate.wait_until_parked();  // count is 0, the slot is still Primary, the lock is free

  auto hit = m.match_blocks(std::vector{hash});
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].block_id(), id);
  EXPECT_EQ(hit[0].use_count(), 1u);
  EXPECT_EQ(m.metrics().eager_primary_to_inactive, before.eager_primary_to_inactive + 1);
  EXPECT_EQ(m.metrics().release_primary_noop, before.release_primary_noop);

  gate.open();
  dropper.join();
  EXPECT_EQ(m.metrics().release_primary_noop, before.release_primary_noop + 1)
      << "the parked release found the slot moved on";
  EXPECT_EQ(m.metrics().inactive_pool_size, 0) << "the revived block is held";
  EXPECT_EQ(hit[0].use_count(), 1u) << "the late release did not touch the new tenancy";
  m.check_invariants();

  hit.clear();  // an ordinary last drop now
  EXPECT_EQ(m.metrics().release_primary_noop, before.release_primary_noop + 1);
  EXPECT_EQ(m.metrics().inactive_pool_size, 1);
  EXPECT_EQ(m.available_blocks(), 4u);
  m.check_invariants();
}

TEST(EagerRelease, WeakUpgradeFinishesAParkedLastDrop) {
  auto m = create_test_manager(4);
  ReleaseGate gate{m};
  std::optional<ImmutableBlock<G1>> block{register_hash(m, synth_hash(7))};
  const auto weak = block->downgrade();
  const auto before = m.metrics();
  std::thread dropper([&] { block.reset(); });
  gate.wait_until_parked();
  auto upgraded = weak.upgrade();  // fast path fails (count 0), the slow path revives
  ASSERT_TRUE(upgraded.has_value());
  EXPECT_EQ(m.metrics().eager_primary_to_inactive, before.eager_primary_to_inactive + 1);
  gate.open();
  dropper.join();
  EXPECT_EQ(m.metrics().release_primary_noop, before.release_primary_noop + 1);
  EXPECT_EQ(upgraded->use_count(), 1u);
  m.check_invariants();
}

TEST(EagerRelease, EvictOnResetFlagSurvivesTheEagerPath) {
  auto m = create_test_manager(4);
  ReleaseGate gate{m};
  const SequenceHash hash = synth_hash(9);
  std::optional<ImmutableBlock<G1>> block{register_hash(m, hash)};
  block->set_evict_on_reset(true);
  std::thread dropper([&] { block.reset(); });
  gate.wait_until_parked();
  auto hit = m.match_blocks(std::vector{hash});
  ASSERT_EQ(hit.size(), 1u);
  gate.open();
  dropper.join();
  hit.clear();  // the flag set before the race still applies: freed, not cached
  EXPECT_EQ(m.metrics().inactive_pool_size, 0);
  EXPECT_FALSE(m.registry().is_registered(hash));
  EXPECT_EQ(m.available_blocks(), 4u);
  m.check_invariants();
}

}  // namespace
}  // namespace kvbm::test
