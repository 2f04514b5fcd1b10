// Cache mode checked against an independent LRU simulation; serve-mode sanity checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "kvbm/errors.hpp"
#include "replay/simulate.hpp"
#include "replay/trace.hpp"

namespace kvbm::replay {
namespace {

const Trace& sample() {
  static const Trace trace = [] {
    TraceOptions options;
    options.max_requests = 600;  // a slice keeps the suite fast
    return load_trace(KVBM_REPLAY_SAMPLE, options);
  }();
  return trace;
}

// The reference: cache mode's rules with a plain list + map over the trace's hash ids, no kvbm.
// A pool of `capacity` slots: free slots first, then the least recently released cached block.
struct ReferenceResult {
  std::uint64_t requests = 0, rejected = 0, requested = 0, hits = 0, evictions = 0, dedup = 0;
};

ReferenceResult reference_lru(const Trace& trace, std::size_t capacity) {
  ReferenceResult r;
  std::list<std::uint64_t> lru;  // front: least recently released
  std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> cached;
  std::size_t free_slots = capacity;
  for (const TraceRequest& request : trace.requests) {
    ++r.requests;
    const auto& ids = request.hash_ids;
    if (ids.size() > capacity) {
      ++r.rejected;
      continue;
    }
    r.requested += ids.size();
    std::size_t hits = 0;
    while (hits < ids.size() && cached.contains(ids[hits])) {
      lru.erase(cached.at(ids[hits]));
      cached.erase(ids[hits]);
      ++hits;
    }
    r.hits += hits;
    const std::size_t misses = ids.size() - hits;
    const std::size_t from_free = std::min(free_slots, misses);
    free_slots -= from_free;
    for (std::size_t i = from_free; i < misses; ++i) {
      cached.erase(lru.front());
      lru.pop_front();
      ++r.evictions;
    }
    // Registering a miss that is still cached further down the chain returns the cached block;
    // the fresh slot goes back to the free list.
    for (std::size_t i = hits; i < ids.size(); ++i) {
      if (auto it = cached.find(ids[i]); it != cached.end()) {
        lru.erase(it->second);
        cached.erase(it);
        ++free_slots;
        ++r.dedup;
      }
    }
    for (std::size_t i = ids.size(); i-- > 0;) {  // release tail first
      lru.push_back(ids[i]);
      cached[ids[i]] = std::prev(lru.end());
    }
  }
  return r;
}

class CacheModeVsReference : public ::testing::TestWithParam<std::size_t> {};

TEST_P(CacheModeVsReference, LruHitsMatchExactly) {
  const std::size_t capacity = GetParam();
  ReplayConfig config;
  config.policy = Policy::Lru;
  config.g1_blocks = capacity;
  const ReplayReport report = run_cache_mode(sample(), config);
  const ReferenceResult expected = reference_lru(sample(), capacity);
  EXPECT_EQ(report.requests, expected.requests);
  EXPECT_EQ(report.rejected, expected.rejected);
  EXPECT_EQ(report.blocks_requested, expected.requested);
  EXPECT_EQ(report.g1.blocks_hit, expected.hits);
  EXPECT_EQ(report.g1.evictions, expected.evictions);
  EXPECT_EQ(report.dedup_registrations, expected.dedup);
  EXPECT_GT(report.g1.blocks_hit, 0u);
}

// 64 rejects the longest requests; 16384 never evicts on this slice.
INSTANTIATE_TEST_SUITE_P(Replay, CacheModeVsReference,
                         ::testing::Values(std::size_t{64}, std::size_t{300}, std::size_t{1024},
                                           std::size_t{4096}, std::size_t{16384}));

TEST(CacheMode, IsDeterministic) {
  ReplayConfig config;
  config.g1_blocks = 1024;
  const auto a = run_cache_mode(sample(), config);
  const auto b = run_cache_mode(sample(), config);
  EXPECT_EQ(a.g1.blocks_hit, b.g1.blocks_hit);
  EXPECT_EQ(a.g1.evictions, b.g1.evictions);
}

TEST(CacheMode, SmallerBlocksGiveTheSameHitFraction) {
  // Splitting each trace block into 4 keeps LRU order, so hits scale exactly by 4.
  ReplayConfig coarse;
  coarse.g1_blocks = 1024;
  ReplayConfig fine = coarse;
  fine.block_size = 128;
  fine.g1_blocks = 4 * 1024;
  const auto a = run_cache_mode(sample(), coarse);
  const auto b = run_cache_mode(sample(), fine);
  EXPECT_EQ(4 * a.blocks_requested, b.blocks_requested);
  EXPECT_EQ(4 * a.g1.blocks_hit, b.g1.blocks_hit);
}

TEST(CacheMode, EveryAvailablePolicyReplays) {
  for (const Policy policy : kvbm::all_eviction_backends()) {
    ReplayConfig config;
    config.policy = policy;
    config.g1_blocks = 2048;
    try {
      const auto report = run_cache_mode(sample(), config);
      EXPECT_LE(report.g1.blocks_hit, report.blocks_requested) << kvbm::to_string(policy);
      EXPECT_GT(report.g1.blocks_hit, 0u) << kvbm::to_string(policy);
    } catch (const ConfigError& e) {
      GTEST_LOG_(INFO) << "policy " << kvbm::to_string(policy) << " not available: " << e.what();
    }
  }
}

TEST(ServeMode, AccountsForEveryRequest) {
  ReplayConfig config;
  config.g1_blocks = 2048;
  const auto report = run_serve_mode(sample(), config);
  EXPECT_EQ(report.requests, sample().requests.size());
  EXPECT_LE(report.g1.blocks_hit, report.blocks_requested);
  EXPECT_GT(report.g1.blocks_hit, 0u);
  EXPECT_LE(report.g1.peak_occupancy, config.g1_blocks);
  EXPECT_LE(report.prefill_tokens_saved, report.prompt_tokens);
  EXPECT_GE(report.queue_delay_ms.p99, report.queue_delay_ms.p50);
  EXPECT_FALSE(report.has_g2);
  const auto json = to_json(report);
  for (const char* key : {"requests", "rejected", "blocks_requested", "blocks_hit", "evictions",
                          "tiers", "queue_delay_ms", "prefill_tokens_saved"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
}

TEST(ServeMode, SecondTierCatchesG1Evictions) {
  ReplayConfig config;
  config.g1_blocks = 1024;
  const auto g1_only = run_serve_mode(sample(), config);
  config.g2_blocks = 8192;
  const auto tiered = run_serve_mode(sample(), config);
  ASSERT_TRUE(tiered.has_g2);
  EXPECT_GT(tiered.offload_blocks, 0u);
  EXPECT_GT(tiered.g2.blocks_hit, 0u);
  EXPECT_EQ(tiered.onboard_blocks, tiered.g2.blocks_hit);
  EXPECT_EQ(tiered.onboard_bytes, tiered.onboard_blocks * config.kv_bytes_per_token * 512);
  EXPECT_GT(tiered.g1.blocks_hit + tiered.g2.blocks_hit, g1_only.g1.blocks_hit);
  EXPECT_TRUE(to_json(tiered)["tiers"].contains("g2"));
}

TEST(ServeMode, TransferEngineCopiesChangeNothingButAreCounted) {
  ReplayConfig config;
  config.g1_blocks = 1024;
  config.g2_blocks = 8192;
  config.copy_bytes_per_block = 0;
  const auto counted = run_serve_mode(sample(), config);
  config.copy_bytes_per_block = 256;
  const auto copied = run_serve_mode(sample(), config);
  EXPECT_EQ(counted.transfer_copies, 0u);
  EXPECT_EQ(copied.g1.blocks_hit, counted.g1.blocks_hit);
  EXPECT_EQ(copied.g2.blocks_hit, counted.g2.blocks_hit);
  EXPECT_EQ(copied.g1.evictions, counted.g1.evictions);
  EXPECT_EQ(copied.offload_blocks, counted.offload_blocks);
  EXPECT_EQ(copied.queue_delay_ms.p99, counted.queue_delay_ms.p99);
  EXPECT_EQ(copied.transfer_bytes, (copied.offload_blocks + copied.onboard_blocks) * 256);
  EXPECT_GT(copied.transfer_copies, 0u);
  EXPECT_LE(copied.transfer_copies, copied.offload_blocks + copied.onboard_blocks);
}

TEST(ServeMode, ASmallPoolQueuesRequests) {
  ReplayConfig config;
  config.g1_blocks = 256;
  const auto small = run_serve_mode(sample(), config);
  config.g1_blocks = 8192;
  const auto large = run_serve_mode(sample(), config);
  EXPECT_GT(small.peak_queue_length, 0u);
  EXPECT_GT(small.queue_delay_ms.p99, 0.0);
  EXPECT_LE(small.g1.peak_occupancy, 256u);
  EXPECT_EQ(large.peak_queue_length, 0u);
  EXPECT_EQ(large.queue_delay_ms.max, 0.0);
  EXPECT_GE(small.makespan_s, large.makespan_s);
}

TEST(ServeMode, RejectsRequestsLargerThanThePool) {
  ReplayConfig config;
  config.g1_blocks = 16;
  const auto report = run_serve_mode(sample(), config);
  EXPECT_GT(report.rejected, 0u);
  EXPECT_LT(report.rejected, report.requests);
}

}  // namespace
}  // namespace kvbm::replay
