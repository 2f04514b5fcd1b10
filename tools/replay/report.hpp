// tools/replay/report.hpp — what one replay measured, and its three renderings:
// a human table, one JSON object, and a CSV row (for sweeps).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace kvbm::replay {

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
/// Nearest-rank percentiles of `values` (sorted in place); all zero when empty.
[[nodiscard]] Percentiles percentiles(std::vector<double>& values);

struct TierReport {
  std::size_t capacity = 0;          ///< blocks in the pool
  std::uint64_t blocks_hit = 0;      ///< prompt blocks found in this tier
  std::uint64_t evictions = 0;       ///< cached blocks evicted to make room
  std::uint64_t peak_occupancy = 0;  ///< most blocks held by requests at once (serve mode)
};

struct ReplayReport {
  // settings
  std::string mode;    ///< "cache" or "serve"
  std::string policy;  ///< lru, fifo, multi-lru, lineage
  std::uint32_t block_size = 0;
  std::uint64_t salt = 0;

  // trace
  std::uint64_t requests = 0;   ///< requests replayed (rejected ones included)
  std::uint64_t rejected = 0;   ///< requests larger than the pool, skipped
  std::uint64_t bad_lines = 0;  ///< malformed trace lines skipped (--skip-bad-lines)

  // G1 (and G2 in serve mode with --g2-blocks)
  std::uint64_t blocks_requested = 0;  ///< prompt blocks of the admitted requests
  TierReport g1;
  bool has_g2 = false;
  TierReport g2;
  std::uint64_t dedup_registrations = 0;   ///< registrations answered with an existing primary
  std::uint64_t prompt_tokens = 0;         ///< input tokens of the admitted requests
  std::uint64_t prefill_tokens_saved = 0;  ///< input tokens served from a cache tier

  // serve mode
  std::uint64_t decode_blocks = 0;
  std::uint64_t prefill_chunks = 0;  ///< prefill steps scheduled (recomputes and onboards included)
  std::uint64_t preemptions = 0;     ///< requests released because decode could not get a block
  std::uint64_t offload_blocks = 0, offload_bytes = 0;
  std::uint64_t onboard_blocks = 0, onboard_bytes = 0;
  std::uint64_t transfer_copies = 0;  ///< coalesced copies the TransferEngine issued
  std::uint64_t transfer_bytes = 0;   ///< bytes it actually moved (scaled-down payload)
  Percentiles queue_delay_ms;
  std::uint64_t peak_queue_length = 0;  ///< most requests waiting for admission at once
  double makespan_s = 0;  ///< simulated time from the first arrival to the last finish

  double wall_seconds = 0;  ///< how long the replay itself took

  // KV events (--kv-events): filled by the caller from the publisher's stats
  bool kv_events = false;
  std::uint64_t events_published = 0;
  std::uint64_t event_batches_dropped = 0;
  /// --cache-dump: wire hashes of every block matchable in G1 at the end, ascending.
  std::vector<std::uint64_t> cache_dump;

  [[nodiscard]] double hit_rate() const noexcept;     ///< G1 hits / blocks_requested
  [[nodiscard]] double g2_hit_rate() const noexcept;  ///< G2 hits / blocks_requested
  [[nodiscard]] double total_hit_rate() const noexcept;
};

[[nodiscard]] nlohmann::json to_json(const ReplayReport& report);
void print_summary(std::ostream& os, const ReplayReport& report);
[[nodiscard]] std::string csv_header();
[[nodiscard]] std::string csv_row(const ReplayReport& report);

}  // namespace kvbm::replay
