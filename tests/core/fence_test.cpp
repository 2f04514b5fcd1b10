// Deferred reclaim: a slot with transfers in flight (unready fences) is never handed out again,
// whatever the backend, the drop order, or the thread doing it.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "test_helpers.hpp"

namespace kvbm::test {
namespace {

/// A fence completed by the test: stands for a copy held in flight.
class ManualFenceState final : public detail::FenceState {
 public:
  [[nodiscard]] bool ready() const override { return done_.load(std::memory_order_acquire); }
  void wait() const override {
    std::unique_lock lock{mutex_};
    cv_.wait(lock, [&] { return done_.load(std::memory_order_acquire); });
  }
  void complete() {
    {
      std::lock_guard lock{mutex_};
      done_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
  }

 private:
  std::atomic<bool> done_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
};

struct ManualFence {
  std::shared_ptr<ManualFenceState> state = std::make_shared<ManualFenceState>();
  [[nodiscard]] Fence fence() const { return Fence(state); }
  void complete() const { state->complete(); }
};

using BackendFn = std::function<void(BlockManager<G1>::Builder&)>;
struct Backend {
  const char* name;
  BackendFn apply;
};

BlockManager<G1> make_fenced_manager(const Backend& backend, std::size_t blocks) {
  auto builder = BlockManager<G1>::builder()
                     .block_count(blocks)
                     .block_size(kTestBlockSize)
                     .registry(BlockRegistry::builder()
                                   .frequency_tracker(FrequencyTrackingCapacity::Small)
                                   .build());
  backend.apply(builder);
  return builder.build();
}

class FenceTest : public ::testing::TestWithParam<Backend> {
 protected:
  BlockManager<G1> manager_ = make_fenced_manager(GetParam(), 4);
};

TEST_P(FenceTest, FencedMutableSlotIsNotReusedUntilItsCopyCompletes) {
  ManualFence copy;
  BlockId fenced_id;
  {
    auto blocks = manager_.allocate_blocks(1).value();
    fenced_id = blocks[0].block_id();
    blocks[0].add_fence(copy.fence());
  }
  EXPECT_EQ(manager_.available_blocks(), 3u);
  EXPECT_EQ(manager_.metrics().fenced_slots, 1);
  EXPECT_FALSE(manager_.allocate_blocks(4).has_value()) << "all-or-nothing must not count it";
  {
    auto three = manager_.allocate_blocks(3).value();
    for (const auto& b : three) EXPECT_NE(b.block_id(), fenced_id);
  }
  manager_.check_invariants();
  copy.complete();
  EXPECT_EQ(manager_.available_blocks(), 4u);
  auto all = manager_.allocate_blocks(4).value();
  EXPECT_EQ(manager_.metrics().fence_reclaims, 1u);
  EXPECT_EQ(manager_.metrics().fenced_slots, 0);
  manager_.check_invariants();
}

// Both drop orders: block before pin, and pin before block.
TEST_P(FenceTest, FencedCachedBlockIsMatchableButNotEvictedUntilReady) {
  for (const bool pin_outlives_block : {true, false}) {
    SCOPED_TRACE(pin_outlives_block ? "block dropped first" : "pin dropped first");
    manager_.reset_inactive_pool();
    ManualFence offload;
    const SequenceHash hash = synth_hash(pin_outlives_block ? 7 : 8);
    BlockId id;
    {
      auto block = register_hash(manager_, hash);
      id = block.block_id();
      std::optional<LifecyclePinRef> pin{block.pin()};
      pin->add_fence(offload.fence());  // an offload copy reads the slot
      if (pin_outlives_block) {
        { auto dropped = std::move(block); }
        EXPECT_EQ(manager_.available_blocks(), 3u) << "pinned slot is held";
        pin.reset();
      } else {
        pin.reset();
        { auto dropped = std::move(block); }
      }
    }
    EXPECT_EQ(manager_.metrics().inactive_pool_size, 1) << "logically cached";
    EXPECT_EQ(manager_.available_blocks(), 3u) << "but not available while the copy runs";
    {
      // A cache hit on a fenced block is fine: readers may share it.
      auto hit = manager_.match_blocks(std::vector{hash});
      ASSERT_EQ(hit.size(), 1u);
      EXPECT_EQ(hit[0].block_id(), id);
    }
    {
      auto others = manager_.allocate_blocks(3).value();
      for (const auto& b : others) EXPECT_NE(b.block_id(), id);
      EXPECT_FALSE(manager_.allocate_blocks(1).has_value()) << "eviction must skip the fenced slot";
    }
    EXPECT_EQ(manager_.registry().check_presence<G1>(std::vector{hash})[0], true);
    offload.complete();
    auto [blocks, evicted] = manager_.allocate_blocks_with_evictions(4).value();
    ASSERT_EQ(evicted.size(), 1u);
    EXPECT_EQ(evicted[0], hash);
    manager_.check_invariants();
  }
}

TEST_P(FenceTest, StreamOrderedAllocationHandsOutFencedFreeSlotsWithTheirFences) {
  ManualFence copy;
  {
    auto blocks = manager_.allocate_blocks(1).value();
    blocks[0].add_fence(copy.fence());
  }
  // A cached block that a ready-only allocation of 4 would have to evict.
  { auto cached = register_hash(manager_, synth_hash(99)); }
  auto result = manager_.allocate_blocks_stream_ordered(3).value();
  EXPECT_EQ(result.blocks.size(), 3u);
  ASSERT_EQ(result.wait_for.size(), 1u) << "the fenced free slot comes with its fence";
  EXPECT_FALSE(result.wait_for[0].ready());
  EXPECT_TRUE(result.evicted.empty()) << "fenced free slots go before evicting cached blocks";
  EXPECT_EQ(manager_.metrics().fenced_handoffs, 1u);
  copy.complete();
  EXPECT_TRUE(result.wait_for[0].ready());
  result.blocks.clear();
  manager_.check_invariants();
  EXPECT_EQ(manager_.available_blocks(), 4u);
}

TEST_P(FenceTest, BlockingAllocationWaitsForTheFence) {
  ManualFence copy;
  {
    auto blocks = manager_.allocate_blocks(4).value();
    blocks[2].add_fence(copy.fence());
  }
  EXPECT_FALSE(manager_.allocate_blocks(4).has_value());
  std::thread completer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    copy.complete();
  });
  auto blocks = manager_.allocate_blocks_blocking(4);
  completer.join();
  ASSERT_TRUE(blocks.has_value());
  EXPECT_EQ(blocks->size(), 4u);
  EXPECT_GE(manager_.metrics().fence_waits, 1u);
  blocks.reset();
  EXPECT_FALSE(manager_.allocate_blocks_blocking(5).has_value()) << "more than the pool holds";
}

TEST_P(FenceTest, ReadyFencesAreNotRecorded) {
  {
    auto blocks = manager_.allocate_blocks(1).value();
    blocks[0].add_fence(Fence{});  // a default fence is already complete
  }
  EXPECT_EQ(manager_.metrics().fenced_slots, 0);
  EXPECT_EQ(manager_.available_blocks(), 4u);
}

TEST_P(FenceTest, ResetInactivePoolKeepsFencedSlotsParked) {
  ManualFence copy;
  {
    auto block = register_hash(manager_, synth_hash(5));
    block.add_fence(copy.fence());
  }
  EXPECT_EQ(manager_.reset_inactive_pool(), 1u);
  EXPECT_FALSE(manager_.registry().is_registered(synth_hash(5)));
  EXPECT_EQ(manager_.available_blocks(), 3u);
  manager_.check_invariants();
  copy.complete();
  EXPECT_EQ(manager_.available_blocks(), 4u);
  manager_.check_invariants();
}

// Thousands of randomized interleavings from several threads: a slot is never handed out while
// a copy on it is in flight, and never to two holders at once.
TEST_P(FenceTest, RandomizedThreadsNeverReuseASlotWithACopyInFlight) {
  constexpr std::size_t kBlocks = 16;
  constexpr int kThreads = 4;
  constexpr int kIterations = 1500;
  auto manager = make_fenced_manager(GetParam(), kBlocks);
  std::array<std::atomic<int>, kBlocks> holders{};
  std::array<std::atomic<int>, kBlocks> copies_in_flight{};
  std::atomic<int> violations{0};

  std::mutex pending_mutex;
  std::vector<std::pair<ManualFence, BlockId>> pending;
  std::atomic<bool> stop{false};
  std::thread completer([&] {
    std::mt19937 rng{7};
    while (!stop.load() || [&] { std::lock_guard l{pending_mutex}; return !pending.empty(); }()) {
      std::pair<ManualFence, BlockId> item;
      bool have = false;
      {
        std::lock_guard lock{pending_mutex};
        if (!pending.empty()) {
          const std::size_t i = rng() % pending.size();
          item = pending[i];
          pending[i] = pending.back();
          pending.pop_back();
          have = true;
        }
      }
      if (have) {
        copies_in_flight[item.second].fetch_sub(1);  // the copy finished writing
        item.first.complete();
      } else {
        std::this_thread::yield();
      }
    }
  });

  auto worker = [&](int seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    for (int i = 0; i < kIterations; ++i) {
      const std::size_t n = 1 + rng() % 3;
      auto blocks = manager.allocate_blocks(n);
      if (!blocks) continue;
      for (const auto& b : *blocks) {
        if (holders[b.block_id()].fetch_add(1) != 0) violations.fetch_add(1);
        if (copies_in_flight[b.block_id()].load() != 0) violations.fetch_add(1);
      }
      std::vector<CompleteBlock<G1>> complete;
      for (auto& b : *blocks) {
        if (rng() % 2 == 0) {
          ManualFence copy;
          copies_in_flight[b.block_id()].fetch_add(1);
          b.add_fence(copy.fence());
          std::lock_guard lock{pending_mutex};
          pending.emplace_back(copy, b.block_id());
        }
        const auto hash = synth_hash(rng() % 24);
        complete.push_back(std::move(b).stage(hash, kTestBlockSize));
      }
      // Un-hold before the handles go: once registered they may be shared by other threads.
      for (const auto& c : complete) holders[c.block_id()].fetch_sub(1);
      if (rng() % 2 == 0) {
        auto registered = manager.register_blocks(std::move(complete));
        for (const auto& r : registered) {
          if (rng() % 3 == 0) {
            ManualFence copy;
            copies_in_flight[r.block_id()].fetch_add(1);
            r.pin().add_fence(copy.fence());
            std::lock_guard lock{pending_mutex};
            pending.emplace_back(copy, r.block_id());
          }
        }
        auto hits = manager.match_blocks(std::vector{synth_hash(rng() % 24)});
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, 100 + t);
  for (auto& t : threads) t.join();
  stop.store(true);
  completer.join();

  EXPECT_EQ(violations.load(), 0);
  manager.check_invariants();
  EXPECT_EQ(manager.available_blocks(), kBlocks);
  EXPECT_EQ(manager.metrics().fenced_slots, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, FenceTest,
    ::testing::Values(Backend{"lru", [](auto& b) { b.lru_backend(); }},
                      Backend{"fifo", [](auto& b) { b.fifo_backend(); }},
                      Backend{"multi_lru", [](auto& b) { b.multi_lru_backend(); }},
                      Backend{"lineage_tick", [](auto& b) { b.lineage_backend(LineageEviction::Tick); }},
                      Backend{"lineage_fifo", [](auto& b) { b.lineage_backend(LineageEviction::Fifo); }}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kvbm::test
