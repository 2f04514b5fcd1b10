// kvbm/detail/striped_gauge.hpp — a gauge that many threads change and few read (internal).
//
// Why: every ImmutableBlock dropped changes the inflight_immutable gauge, on whatever thread
// drops it. With one atomic, two threads dropping blocks of disjoint chains move that one cache
// line between their cores once per block, which on the 16-core benchmark host cost a bare
// probe-and-refcount loop more than half its two-thread throughput. Here each thread adds into
// its own cell (one relaxed read-modify-write on a line no other thread writes, unless more
// threads than cells share one) and a read sums the cells.
//
// Semantics: the sum is exact whenever no update is in flight. A read racing updates may miss
// or see any of them, so a handle moved between threads (added on one cell, subtracted on
// another) can make a racing read off by the handles in flight, even below zero; metrics
// snapshots say no more than that (per-field values, no cross-field cut).
// Cost: an update is a thread-local read plus one relaxed atomic add; a read is kCells loads.
// Memory: kCells * 128 bytes per gauge. Thread safety: every member may be called concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace kvbm::detail {

/// The cell index of the calling thread: threads get 0, 1, 2, ... in the order they first ask,
/// so up to kCells threads never share a cell, whatever gauge they update.
inline std::size_t this_thread_cell_index() noexcept {
  constexpr std::size_t kUnassigned = ~std::size_t{0};
  thread_local std::size_t index = kUnassigned;  // constant-initialised: no guard on each read
  if (index == kUnassigned) [[unlikely]] {
    static std::atomic<std::size_t> next{0};
    index = next.fetch_add(1, std::memory_order_relaxed);
  }
  return index;
}

class StripedGauge {
 public:
  static constexpr std::size_t kCells = 16;

  StripedGauge() noexcept = default;
  StripedGauge(const StripedGauge&) = delete;
  StripedGauge& operator=(const StripedGauge&) = delete;

  // The std::atomic spellings, so a gauge can change representation without its call sites.
  void fetch_add(std::int64_t delta, std::memory_order = std::memory_order_relaxed) noexcept {
    mine().fetch_add(delta, std::memory_order_relaxed);
  }
  void fetch_sub(std::int64_t delta, std::memory_order = std::memory_order_relaxed) noexcept {
    mine().fetch_sub(delta, std::memory_order_relaxed);
  }
  [[nodiscard]] std::int64_t load(std::memory_order = std::memory_order_relaxed) const noexcept {
    std::int64_t sum = 0;
    for (const Cell& cell : cells_) sum += cell.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  std::atomic<std::int64_t>& mine() noexcept {
    return cells_[this_thread_cell_index() % kCells].value;
  }
  // 128, not 64: adjacent-line prefetchers pull lines in pairs, which would make neighbouring
  // cells share traffic after all.
  struct alignas(128) Cell {
    std::atomic<std::int64_t> value{0};
  };
  std::array<Cell, kCells> cells_{};
};

}  // namespace kvbm::detail
