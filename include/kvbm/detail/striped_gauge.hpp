// kvbm/detail/striped_gauge.hpp — gauges and counters that many threads change and few read
// (internal).
//
// Why: every ImmutableBlock dropped changes the inflight_immutable gauge, on whatever thread
// drops it. With one atomic, two threads dropping blocks of disjoint chains move that one cache
// line between their cores once per block, which on the 16-core benchmark host cost a bare
// probe-and-refcount loop more than half its two-thread throughput. Here each thread adds into
// its own cell and a read sums the cells. A cell has one writing thread at a time, so an update
// is a plain load and store (no locked read-modify-write: on a held 8-block match those were a
// fifth of the call). Threads lease cells from a process-wide set of kCells - 1 and give them back
// when they exit; threads beyond that share the last cell, which they update with a locked add.
//
// Semantics: the sum is exact whenever no update is in flight. A read racing updates may miss
// or see any of them, so a handle moved between threads (added on one cell, subtracted on
// another) can make a racing read off by the handles in flight, even below zero; metrics
// snapshots say no more than that (per-field values, no cross-field cut).
// Cost: an update is a thread-local read plus a relaxed load and store; a read is kCells loads.
// Memory: kCells * 128 bytes per gauge. Thread safety: every member may be called concurrently.
// The lease set is one per copy of kvbm in a process: two shared objects that each link kvbm
// privately (hidden symbols) must not drop each other's handles.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace kvbm::detail {

inline constexpr std::size_t kGaugeCells = 16;
/// The cell of threads that hold no lease (more live threads than leases): written by several.
inline constexpr std::size_t kSharedGaugeCell = kGaugeCells - 1;
inline constexpr std::size_t kUnassignedGaugeCell = ~std::size_t{0};

/// The calling thread's cell; constant-initialised, so reading it needs no guard.
inline std::size_t& this_thread_gauge_cell() noexcept {
  thread_local std::size_t index = kUnassignedGaugeCell;
  return index;
}

/// Bit i set: cell i is leased to a live thread. Constant-initialised and trivially destructible,
/// so a thread exiting after static destruction can still give its lease back.
inline std::atomic<std::uint32_t>& gauge_cell_leases() noexcept {
  static std::atomic<std::uint32_t> leases{0};
  return leases;
}

/// Gives the thread's cell back when the thread exits. Updates made after that (by thread_local
/// objects destroyed later) go to the shared cell, never to a cell another thread may lease.
struct GaugeCellLease {
  std::size_t index;
  explicit GaugeCellLease(std::size_t leased) noexcept : index{leased} {}
  GaugeCellLease(const GaugeCellLease&) = delete;
  GaugeCellLease& operator=(const GaugeCellLease&) = delete;
  ~GaugeCellLease() {
    this_thread_gauge_cell() = kSharedGaugeCell;
    // release: the cell's last values written here happen before the next lessee's reads.
    gauge_cell_leases().fetch_and(~(std::uint32_t{1} << index), std::memory_order_release);
  }
};

/// The lowest free cell, leased to the calling thread until it exits; kSharedGaugeCell if none.
[[gnu::noinline]] inline std::size_t lease_gauge_cell() noexcept {
  constexpr std::uint32_t kLeasable = (std::uint32_t{1} << kSharedGaugeCell) - 1;
  auto& leases = gauge_cell_leases();
  std::uint32_t seen = leases.load(std::memory_order_acquire);
  while (const std::uint32_t free = kLeasable & ~seen) {
    const auto index = static_cast<std::size_t>(std::countr_zero(free));
    if (leases.compare_exchange_weak(seen, seen | (std::uint32_t{1} << index),
                                     std::memory_order_acq_rel, std::memory_order_acquire)) {
      thread_local GaugeCellLease lease{index};  // the first and only lease of this thread
      return index;
    }
  }
  return kSharedGaugeCell;
}

/// The cell index of the calling thread: a leased cell in [0, kSharedGaugeCell) that no other
/// live thread has, or kSharedGaugeCell. Stable while the thread runs.
inline std::size_t this_thread_cell_index() noexcept {
  std::size_t& index = this_thread_gauge_cell();
  if (index == kUnassignedGaugeCell) [[unlikely]] index = lease_gauge_cell();
  return index;
}

/// A gauge (std::int64_t) or counter (std::uint64_t, wrapping like the atomic it replaces).
template <class T>
class Striped {
 public:
  static constexpr std::size_t kCells = kGaugeCells;

  Striped() noexcept = default;
  Striped(const Striped&) = delete;
  Striped& operator=(const Striped&) = delete;

  // The std::atomic spellings, so a metric can change representation without its call sites.
  void fetch_add(T delta, std::memory_order = std::memory_order_relaxed) noexcept { add(delta); }
  void fetch_sub(T delta, std::memory_order = std::memory_order_relaxed) noexcept {
    add(static_cast<T>(T{0} - delta));
  }
  [[nodiscard]] T load(std::memory_order = std::memory_order_relaxed) const noexcept {
    T sum = 0;
    for (const Cell& cell : cells_) sum += cell.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  void add(T delta) noexcept {
    const std::size_t index = this_thread_cell_index();
    std::atomic<T>& value = cells_[index].value;
    if (index != kSharedGaugeCell) [[likely]] {
      value.store(value.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
    } else {
      value.fetch_add(delta, std::memory_order_relaxed);
    }
  }
  // 128, not 64: adjacent-line prefetchers pull lines in pairs, which would make neighbouring
  // cells share traffic after all.
  struct alignas(128) Cell {
    std::atomic<T> value{0};
  };
  std::array<Cell, kCells> cells_{};
};

using StripedGauge = Striped<std::int64_t>;
using StripedCounter = Striped<std::uint64_t>;

}  // namespace kvbm::detail
