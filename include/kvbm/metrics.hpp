// kvbm/metrics.hpp — a point-in-time copy of one manager's counters and gauges.
//
// Counters only grow; gauges are current values. The live values are relaxed atomics updated
// where the event happens, so a snapshot taken while other threads work is per-field accurate
// but not a cross-field atomic cut (use available_blocks() for the one consistent pair).
#pragma once

#include <cstdint>
#include <ostream>

namespace kvbm {

struct MetricsSnapshot {
  // counters
  std::uint64_t allocations = 0;             ///< blocks handed out by allocate_blocks*
  std::uint64_t allocations_from_reset = 0;  ///< ... of which came from the free list
  std::uint64_t evictions = 0;               ///< inactive blocks evicted to satisfy allocation
  std::uint64_t registrations = 0;           ///< blocks submitted to register_block(s)
  std::uint64_t duplicate_blocks = 0;        ///< registrations that became duplicates (Allow)
  std::uint64_t registration_dedup = 0;      ///< registrations answered with the primary (Reject)
  std::uint64_t stagings = 0;                ///< successful complete()/stage() calls
  std::uint64_t match_hashes_requested = 0;
  std::uint64_t match_blocks_returned = 0;
  std::uint64_t scan_hashes_requested = 0;
  std::uint64_t scan_blocks_returned = 0;
  // audit counters
  std::uint64_t eager_primary_to_inactive = 0;  ///< lookups that finished a racing last drop
  std::uint64_t release_primary_noop = 0;       ///< late drops that found the slot moved on
  // deferred reclaim (slot fences)
  std::uint64_t fence_reclaims = 0;   ///< fenced slots returned to use after their fences completed
  std::uint64_t fence_waits = 0;      ///< fences waited on by allocate_blocks_blocking
  std::uint64_t fenced_handoffs = 0;  ///< fenced slots handed out by allocate_blocks_stream_ordered
  // gauges
  std::int64_t inflight_mutable = 0;    ///< MutableBlocks held by callers (staged blocks are not counted)
  std::int64_t inflight_immutable = 0;  ///< live ImmutableBlock handles (copies count, pins do not)
  std::int64_t reset_pool_size = 0;     ///< free slots (fenced ones included)
  std::int64_t inactive_pool_size = 0;  ///< cached blocks (fenced ones included)
  std::int64_t fenced_slots = 0;        ///< released slots waiting on fences before reuse
};

std::ostream& operator<<(std::ostream& os, const MetricsSnapshot& m);

}  // namespace kvbm
