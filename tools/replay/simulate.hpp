// tools/replay/simulate.hpp — the two replay modes over real BlockManagers.
//
// cache: requests one after another, no overlap. Per request: match the prefix in G1 (all of it,
//        or with MatchCap::LastToken never the block holding the last prompt token), allocate
//        and register the misses (DuplicationPolicy::Reject), then drop the request's blocks
//        tail first (last block first). A request with more blocks than the pool is rejected.
//        Exact and deterministic.
// serve: a small serving-engine model (see docs/replay.md) driving every request through
//        kvbm::SchedulableSequence: arrivals at their timestamps, first-come-first-served
//        admission, chunked prefill (max_prefill_tokens per chunk), one decode token per step,
//        blocks held until the request finishes, preemption (release / reacquire) when decode
//        cannot get a block, optional G2 tier fed by G1 evictions and read back on G1 prefix
//        misses.
// Both build their own managers; nothing is shared between calls. With a G2 tier, serve mode
// moves the blocks it offloads and onboards through kvbm::TransferEngine on a host stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "kvbm/kv_events.hpp"
#include "replay/policy.hpp"
#include "replay/report.hpp"
#include "replay/trace.hpp"

namespace kvbm::replay {

/// How much of a prompt cache mode may serve from the cache.
enum class MatchCap : std::uint8_t {
  None,       ///< every cached block (the figures of earlier runs)
  LastToken,  ///< never the block holding the last prompt token (vLLM's rule; serve mode's)
};

struct ReplayConfig {
  Policy policy = Policy::Lineage;  // the sweep winner, see docs/replay.md
  std::size_t g1_blocks = 1024;     ///< ~64 GiB of KV at 128 KiB/token: one H100, 8B model
  std::size_t g2_blocks = 0;        ///< 0: no second tier
  std::optional<Policy> g2_policy;  ///< G2's eviction policy; default: the same as G1's
  std::uint32_t block_size = kTraceBlockSize;
  std::uint64_t salt = 0;
  MatchCap match_cap = MatchCap::None;  ///< cache mode only

  // serve-mode model
  double prefill_tokens_per_s = 10000.0;      ///< per request, uncached prompt tokens
  double decode_tokens_per_s = 50.0;          ///< per request
  std::uint64_t kv_bytes_per_token = 131072;  ///< 128 KiB: Llama-3-8B, fp16 K+V, 32 layers
  double onboard_gb_per_s = 25.0;             ///< G2 -> G1 copy bandwidth (adds to prefill)
  /// With a G2 tier: real bytes per block that offloads and onboards move through
  /// kvbm::TransferEngine (host backend) between two host buffers; 0 only counts. The modelled
  /// bytes (kv_bytes_per_token) are far too large to allocate, so this is a scaled-down payload
  /// that exercises the engine and slot fences without changing any hit or timing result.
  std::size_t copy_bytes_per_block = 4096;
  /// Prefill tokens per chunk (one step of a request's prefill); 0: the whole prompt at once.
  std::size_t max_prefill_tokens = 0;
  /// Admission reserves each request's whole decode footprint, so decode never preempts. false:
  /// only the prompt is reserved and a decode step that cannot get a block preempts.
  bool reserve_decode = true;

  /// KV events: attached to G1 (medium "GPU") and G2 ("CPU"). With a sink, blocks are completed
  /// from synthetic TokenBlocks (replay/synthetic_tokens.hpp); results do not change.
  std::shared_ptr<KvEventSink> event_sink;
  /// Fill ReplayReport::cache_dump with the wire hash of every block matchable in G1 at the end.
  bool cache_dump = false;
};

/// Called every few hundred requests with (done, total).
using ProgressFn = std::function<void(std::size_t, std::size_t)>;

/// Throws kvbm::ConfigError if the policy's backend cannot be built.
[[nodiscard]] ReplayReport run_cache_mode(const Trace& trace, const ReplayConfig& config,
                                          const ProgressFn& progress = {});
[[nodiscard]] ReplayReport run_serve_mode(const Trace& trace, const ReplayConfig& config,
                                          const ProgressFn& progress = {});

}  // namespace kvbm::replay
