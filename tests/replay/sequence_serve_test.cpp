// Serve mode on SchedulableSequence: chunked prefill, preemption, and cache mode's match cap.
#include <gtest/gtest.h>

#include "replay/simulate.hpp"
#include "replay/trace.hpp"

namespace kvbm::replay {
namespace {

const Trace& slice() {
  static const Trace trace = [] {
    TraceOptions options;
    options.max_requests = 300;
    return load_trace(KVBM_REPLAY_SAMPLE, options);
  }();
  return trace;
}

TEST(ServeModeSequences, ChunkedPrefillKeepsHitsAndSplitsPrompts) {
  ReplayConfig config;
  config.g1_blocks = 4096;  // no queueing: chunking cannot change admission order
  const auto whole = run_serve_mode(slice(), config);
  config.max_prefill_tokens = 1024;
  const auto chunked = run_serve_mode(slice(), config);
  EXPECT_EQ(whole.prefill_chunks, whole.requests - whole.rejected);  // one chunk each
  EXPECT_GT(chunked.prefill_chunks, 2 * whole.prefill_chunks);
  EXPECT_EQ(chunked.g1.blocks_hit, whole.g1.blocks_hit);
  EXPECT_EQ(chunked.prefill_tokens_saved, whole.prefill_tokens_saved);
  EXPECT_EQ(chunked.decode_blocks, whole.decode_blocks);
  EXPECT_DOUBLE_EQ(chunked.makespan_s, whole.makespan_s);  // same work, same rates
  EXPECT_EQ(whole.preemptions, 0u);
}

TEST(ServeModeSequences, WithoutDecodeReservationDecodePreemptsAndEveryRequestFinishes) {
  ReplayConfig config;
  config.g1_blocks = 256;
  config.reserve_decode = false;
  const auto optimistic = run_serve_mode(slice(), config);  // throws if a block is left held
  config.reserve_decode = true;
  const auto reserved = run_serve_mode(slice(), config);
  EXPECT_GT(optimistic.preemptions, 0u);
  EXPECT_EQ(reserved.preemptions, 0u);
  EXPECT_EQ(optimistic.requests, reserved.requests);
  // Preempted requests recompute their prompt: more prefill chunks than requests.
  EXPECT_GT(optimistic.prefill_chunks, optimistic.requests - optimistic.rejected);
  EXPECT_LE(optimistic.g1.peak_occupancy, 256u);
}

TEST(CacheModeMatchCap, LastTokenNeverServesTheLastPromptBlock) {
  ReplayConfig config;
  config.g1_blocks = 4096;
  const auto none = run_cache_mode(slice(), config);
  config.match_cap = MatchCap::LastToken;
  const auto capped = run_cache_mode(slice(), config);
  EXPECT_LE(capped.g1.blocks_hit, none.g1.blocks_hit);
  EXPECT_GT(capped.g1.blocks_hit, 0u);
  EXPECT_EQ(capped.blocks_requested, none.blocks_requested);
}

}  // namespace
}  // namespace kvbm::replay
