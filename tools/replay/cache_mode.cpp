// Cache mode: one request at a time through one G1 manager.
#include <algorithm>
#include <chrono>
#include <span>
#include <vector>

#include "kvbm/block_manager.hpp"
#include "kvbm/types.hpp"
#include "replay/checked.hpp"
#include "replay/hash_mapping.hpp"
#include "replay/simulate.hpp"
#include "replay/synthetic_tokens.hpp"

namespace kvbm::replay {

ReplayReport run_cache_mode(const Trace& trace, const ReplayConfig& config,
                            const ProgressFn& progress) {
  const auto started = std::chrono::steady_clock::now();
  const HashMapper mapper(config.block_size, config.salt);
  const BlockRegistry registry = make_registry({config.policy});
  auto g1 = make_manager<G1>(config.policy, config.g1_blocks, config.block_size, registry,
                             config.event_sink);
  SyntheticTokens tokens(config.block_size, mapper.blocks_per_trace_block());

  ReplayReport report;
  report.mode = "cache";
  report.policy = std::string(to_string(config.policy));
  report.block_size = config.block_size;
  report.salt = config.salt;
  report.bad_lines = trace.bad_lines;
  report.g1.capacity = config.g1_blocks;

  std::vector<SequenceHash> hashes;
  std::vector<ImmutableBlock<G1>> held;
  std::vector<CompleteBlock<G1>> staged;
  const std::size_t total = trace.requests.size();
  for (std::size_t index = 0; index < total; ++index) {
    const TraceRequest& request = trace.requests[index];
    ++report.requests;
    if (progress && index % 256 == 0) progress(index, total);
    // Too long to name (position limit) or larger than the pool: rejected, not fatal.
    const auto blocks = mapper.block_count(request.hash_ids.size());
    if (!blocks || *blocks > config.g1_blocks) {
      ++report.rejected;
      continue;
    }
    mapper.map_into(request.hash_ids, hashes);
    if (config.event_sink) tokens.note(request.hash_ids, hashes);
    accumulate<std::uint64_t>(report.blocks_requested, hashes.size(), "prompt blocks requested");
    accumulate<std::uint64_t>(report.prompt_tokens, request.input_length, "prompt tokens");

    std::size_t limit = hashes.size();
    if (config.match_cap == MatchCap::LastToken) {
      // The block holding the last prompt token is recomputed: its logits are needed.
      const std::size_t tokens = std::min<std::size_t>(
          request.input_length, std::size_t{hashes.size()} * config.block_size);
      limit = tokens == 0 ? 0 : (tokens - 1) / config.block_size;
    }
    held = g1.match_blocks(std::span<const SequenceHash>(hashes).first(limit));
    const std::size_t hits = held.size();
    report.g1.blocks_hit += hits;
    report.prefill_tokens_saved +=
        std::min<std::uint64_t>(std::uint64_t{hits} * config.block_size, request.input_length);

    const std::size_t misses = hashes.size() - hits;
    if (misses != 0) {
      // Cannot fail: only this request's matched blocks are held, so free + inactive is at
      // least total - hits >= misses.
      auto fresh = g1.allocate_blocks(misses);
      if (!fresh) throw std::logic_error("cache mode: allocation failed for a request that fits");
      staged.clear();
      for (std::size_t i = 0; i < misses; ++i) {
        staged.push_back(config.event_sink
                             ? std::move((*fresh)[i]).complete(tokens.block(hashes[hits + i]))
                             : std::move((*fresh)[i]).stage(hashes[hits + i], config.block_size));
      }
      const auto before = g1.metrics().registration_dedup;
      for (auto& block : g1.register_blocks(std::move(staged))) held.push_back(std::move(block));
      report.dedup_registrations += g1.metrics().registration_dedup - before;
    }
    // Tail first (the last block is released first), under one pool lock.
    std::reverse(held.begin(), held.end());
    g1.release_blocks(std::move(held));
    held.clear();
  }
  if (progress) progress(total, total);
  report.g1.evictions = g1.metrics().evictions;
  if (config.cache_dump) report.cache_dump = wire_hashes_sorted(g1.matchable_hashes());
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace kvbm::replay
