// The striped inflight_immutable gauge: exact at quiescent points whatever threads changed it,
// a handle may be counted in on one thread and out on another, and more threads than cells
// still sum exactly. Run under TSan in CI (the cells are the only shared state).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "kvbm/kvbm.hpp"
#include "kvbm/detail/striped_gauge.hpp"
#include "test_helpers.hpp"

namespace kvbm {
namespace {

using detail::StripedGauge;

TEST(StripedGauge, OneThreadAddsAndSubtracts) {
  StripedGauge gauge;
  EXPECT_EQ(gauge.load(), 0);
  gauge.fetch_add(5);
  gauge.fetch_sub(2);
  EXPECT_EQ(gauge.load(), 3);
  gauge.fetch_sub(10);
  EXPECT_EQ(gauge.load(), -7);
}

TEST(StripedGauge, ThreadsGetDistinctCellsInFirstUseOrder) {
  const std::size_t mine = detail::this_thread_cell_index();
  EXPECT_EQ(detail::this_thread_cell_index(), mine);  // stable for a thread
  std::size_t other = mine;
  std::thread([&] { other = detail::this_thread_cell_index(); }).join();
  EXPECT_NE(other, mine);
}

// More threads than cells, each adding on its own and subtracting what its neighbour added:
// every cell may end non-zero, the sum must be exact.
TEST(StripedGauge, ManyThreadsSumExactlyAcrossCells) {
  constexpr int kThreads = 2 * static_cast<int>(StripedGauge::kCells) + 3;
  constexpr std::int64_t kOps = 20000;
  StripedGauge gauge;
  std::atomic<int> added{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::int64_t i = 0; i < kOps; ++i) gauge.fetch_add(t + 1);
      added.fetch_add(1);
      while (added.load() < kThreads) std::this_thread::yield();
      // Take back the neighbour's: another cell than the one this thread added to.
      for (std::int64_t i = 0; i < kOps; ++i) gauge.fetch_sub((t + 1) % kThreads + 1);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(gauge.load(), 0);
}

// Handles matched on one thread and dropped on another: the manager's gauge ends exact.
TEST(StripedGauge, ManagerGaugeExactWhenHandlesCrossThreads) {
  auto manager = test::create_test_manager(64);
  auto chain = test::register_sequence(manager, test::iota_sequence(0, 16));
  const auto hashes = test::hashes_of(chain);
  std::vector<ImmutableBlock<G1>> held;
  std::thread([&] {
    for (int i = 0; i < 4; ++i) manager.match_blocks(hashes, held);
  }).join();
  EXPECT_EQ(held.size(), 4u * 16);
  EXPECT_EQ(manager.metrics().inflight_immutable, 4 * 16 + 16);
  std::thread([&] { held.clear(); }).join();
  EXPECT_EQ(manager.metrics().inflight_immutable, 16);
  chain.clear();
  EXPECT_EQ(manager.metrics().inflight_immutable, 0);
}

}  // namespace
}  // namespace kvbm
