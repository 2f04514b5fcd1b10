// kvbm/metrics.hpp — a point-in-time copy of one manager's counters and gauges.
//
// Counters only grow; gauges are current values. The live values are relaxed atomics updated
// where the event happens, so a snapshot taken while other threads work is per-field accurate
// but not a cross-field atomic cut (use available_blocks() for the one consistent pair).
// inflight_immutable and the match/scan counters are sums of per-thread cells (they change on
// any thread, without the pool lock): exact whenever no handle is being made or dropped and no
// match is finishing, and off by at most those in flight while a snapshot races them.
#pragma once

#include <cstdint>
#include <ostream>

namespace kvbm {

/// The one list of a manager's metrics: COUNTER(name, meaning) for counters (std::uint64_t, only
/// grow), GAUGE(name, meaning) for gauges (std::int64_t, current values). MetricsSnapshot and the
/// store's live atomics are both generated from it, so a metric is added here and nowhere else.
#define KVBM_METRICS(COUNTER, GAUGE)                                                               \
  COUNTER(allocations, "blocks handed out by allocate_blocks*")                                    \
  COUNTER(allocations_from_reset, "... of which came from the free list")                          \
  COUNTER(evictions, "inactive blocks evicted to satisfy allocation")                              \
  COUNTER(registrations, "blocks submitted to register_block(s)")                                  \
  COUNTER(duplicate_blocks, "registrations that became duplicates (Allow)")                        \
  COUNTER(registration_dedup, "registrations answered with the primary (Reject)")                  \
  COUNTER(stagings, "successful complete()/stage() calls")                                         \
  COUNTER(match_hashes_requested, "hashes passed to match_blocks")                                 \
  COUNTER(match_blocks_returned, "blocks match_blocks returned")                                   \
  COUNTER(scan_hashes_requested, "hashes passed to scan_matches")                                  \
  COUNTER(scan_blocks_returned, "blocks scan_matches returned")                                    \
  /* audit counters */                                                                             \
  COUNTER(eager_primary_to_inactive, "lookups that finished a racing last drop")                   \
  COUNTER(release_primary_noop, "late drops that found the slot moved on")                         \
  /* deferred reclaim (slot fences) */                                                             \
  COUNTER(fence_reclaims, "fenced slots returned to use after their fences completed")             \
  COUNTER(fence_waits, "fences waited on by allocate_blocks_blocking")                             \
  COUNTER(fenced_handoffs, "fenced slots handed out by allocate_blocks_stream_ordered")            \
  GAUGE(inflight_mutable, "MutableBlocks held by callers (staged blocks are not counted)")         \
  GAUGE(inflight_immutable, "live ImmutableBlock handles (copies count, pins do not)")             \
  GAUGE(reset_pool_size, "free slots (fenced ones included)")                                      \
  GAUGE(inactive_pool_size, "cached blocks (fenced ones included)")                                \
  GAUGE(fenced_slots, "released slots waiting on fences before reuse")

/// One manager's metrics at one moment; the fields and their meanings are KVBM_METRICS above.
struct MetricsSnapshot {
#define KVBM_METRICS_COUNTER_FIELD(name, meaning) std::uint64_t name = 0;
#define KVBM_METRICS_GAUGE_FIELD(name, meaning) std::int64_t name = 0;
  KVBM_METRICS(KVBM_METRICS_COUNTER_FIELD, KVBM_METRICS_GAUGE_FIELD)
#undef KVBM_METRICS_COUNTER_FIELD
#undef KVBM_METRICS_GAUGE_FIELD
};

std::ostream& operator<<(std::ostream& os, const MetricsSnapshot& m);

}  // namespace kvbm
