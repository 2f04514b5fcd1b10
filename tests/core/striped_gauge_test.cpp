// The striped inflight_immutable gauge: exact at quiescent points whatever threads changed it,
// a handle may be counted in on one thread and out on another, and more threads than cells
// still sum exactly; cells are leased to one live thread at a time and given back at its exit.
// Run under TSan in CI (the cells are the only shared state).
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
// every cell may end non-zero, the sum must be exact. Three waves on one gauge: the second and
// third lease the cells the first gave back, holding what it left there.
TEST(StripedGauge, ManyThreadsSumExactlyAcrossCells) {
  constexpr int kThreads = 2 * static_cast<int>(StripedGauge::kCells) + 3;
  constexpr std::int64_t kOps = 20000;
  StripedGauge gauge;
  for (int wave = 0; wave < 3; ++wave) {
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
  EXPECT_EQ(gauge.load(), 0) << "wave " << wave;
  }
}

// A cell is leased to one live thread and given back when it exits: a thread started after
// another ended gets the cell that one had (the lowest free), never the cell of a live thread.
TEST(StripedGauge, ExitedThreadsGiveTheirCellsBack) {
  const std::size_t mine = detail::this_thread_cell_index();
  std::size_t first = mine;
  std::size_t second = mine;
  std::thread([&] { first = detail::this_thread_cell_index(); }).join();
  std::thread([&] { second = detail::this_thread_cell_index(); }).join();
  ASSERT_LT(first, detail::kSharedGaugeCell);
  EXPECT_NE(first, mine);
  EXPECT_EQ(second, first);
  // While one holds it, the next thread gets another.
  std::atomic<bool> leased{false};
  std::atomic<bool> done{false};
  std::size_t held = mine;
  std::size_t other = mine;
  std::thread holder([&] {
    held = detail::this_thread_cell_index();
    leased.store(true);
    while (!done.load()) std::this_thread::yield();
  });
  while (!leased.load()) std::this_thread::yield();
  std::thread([&] { other = detail::this_thread_cell_index(); }).join();
  done.store(true);
  holder.join();
  EXPECT_EQ(held, first);
  EXPECT_NE(other, held);
  EXPECT_NE(other, mine);
}

// More live threads than leasable cells: the rest share the last cell and still sum exactly
// (covered by ManyThreadsSumExactlyAcrossCells); here, that they do get the shared cell.
TEST(StripedGauge, ThreadsBeyondTheLeasesShareTheLastCell) {
  constexpr std::size_t kThreads = StripedGauge::kCells + 4;
  std::vector<std::size_t> cells(kThreads);
  std::atomic<std::size_t> leased{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      cells[t] = detail::this_thread_cell_index();
      leased.fetch_add(1);
      while (!done.load()) std::this_thread::yield();
    });
  }
  while (leased.load() < kThreads) std::this_thread::yield();
  done.store(true);
  for (auto& thread : threads) thread.join();
  std::vector<int> holders(StripedGauge::kCells, 0);
  for (const std::size_t cell : cells) ++holders.at(cell);
  for (std::size_t cell = 0; cell < detail::kSharedGaugeCell; ++cell) EXPECT_LE(holders[cell], 1);
  // The main thread holds one lease; kThreads exceeds the rest by at least 5.
  EXPECT_GE(holders[detail::kSharedGaugeCell], 5);
}

// Handles held by a thread_local that outlives the thread's lease (built before the thread's
// first gauge update, so destroyed after the lease is given back) are counted out on the shared
// cell, not on the cell the next thread may already have leased; the gauge ends exact.
TEST(StripedGauge, HandlesDroppedAfterTheLeaseUseTheSharedCell) {
  auto manager = test::create_test_manager(64);
  auto chain = test::register_sequence(manager, test::iota_sequence(0, 8));
  const auto hashes = test::hashes_of(chain);
  struct HeldAtExit {
    std::vector<ImmutableBlock<G1>> held;
    std::size_t* cell_at_drop = nullptr;
    ~HeldAtExit() {
      *cell_at_drop = detail::this_thread_cell_index();
      held.clear();
    }
  };
  std::size_t leased = 0;
  std::size_t at_drop = 0;
  std::thread([&] {
    thread_local HeldAtExit at_exit;
    at_exit.cell_at_drop = &at_drop;
    manager.match_blocks(hashes, at_exit.held);  // the thread's first update: leases a cell
    leased = detail::this_thread_cell_index();
  }).join();
  EXPECT_LT(leased, detail::kSharedGaugeCell);
  EXPECT_EQ(at_drop, detail::kSharedGaugeCell);
  EXPECT_EQ(manager.metrics().inflight_immutable, 8);
  chain.clear();
  EXPECT_EQ(manager.metrics().inflight_immutable, 0);
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
