// examples/offload_connector.hpp — OffloadConnector: a G1 cache backed by a G2 cache.
//
// The example connector of issue 4 §4, written against kvbm's public API only:
//  - offload (G1 -> G2) starts when a G1 block is registered, i.e. before G1 allocation can
//    evict it. While the copy runs the connector pins the G1 source (it stays registered and
//    cannot be evicted) and holds the staged G2 destination (not yet matchable); poll()
//    registers the G2 copy once its fence is ready and only then drops the pin. So a hash
//    leaves G1 only after it is registered in G2, and `allocate` reports every eviction.
//  - onboarding (G2 -> G1) happens on a prefix lookup that misses in G1 and hits in G2: G1
//    blocks are allocated (evicting offloaded blocks), filled by a copy, staged, and registered
//    once the copy has landed (finish_onboarding), so no reader can match them early.
//  - every copy goes through TransferEngine's handle overload, which attaches the copy's fence
//    to the source and destination slots: if the connector (or an abandoned Onboarding) lets go
//    of its handles while a copy is in flight, the block managers still never hand those slots
//    out again before the copy has finished.
// Ownership: holds manager handles, pool descriptions and references to the engine and stream
// (which, like the KV buffers, the caller owns and must keep alive while copies run).
// Thread safety: none; use one connector from one thread at a time.
// Cost: one copy_blocks call (coalesced runs) per store/onboarding; poll() is O(in-flight).
#pragma once

#include <kvbm/kvbm.hpp>

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include <span>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kvbm::examples {

struct OffloadStats {
  std::size_t offloads_started = 0;    ///< G1 -> G2 block copies enqueued
  std::size_t offloads_completed = 0;  ///< ... of which registered in G2 (poll saw the fence)
  std::size_t offloads_skipped = 0;    ///< blocks not offloaded: G2 had no free or cached slot
  std::size_t onboarded = 0;           ///< G2 -> G1 block copies registered in G1
  std::size_t evicted_in_g2 = 0;       ///< G1 evictions whose hash was safe in G2
  std::size_t evicted_lost = 0;        ///< G1 evictions of hashes G2 did not hold
};

/// A prefix lookup whose G2 -> G1 copies may still be in flight.
struct Onboarding {
  std::vector<ImmutableBlock<G1>> cached;    ///< the G1 prefix hit: usable now
  std::vector<CompleteBlock<G1>> arriving;   ///< G1 slots being filled from G2, staged
  std::vector<ImmutableBlock<G2>> sources;   ///< the G2 blocks being read
  Fence ready;                               ///< the copy into `arriving` has landed
};

/// G1 blocks from `OffloadConnector::allocate`, plus the hashes G1 evicted for them.
struct G1Allocation {
  std::vector<MutableBlock<G1>> blocks;
  std::vector<SequenceHash> evicted;
};

class OffloadConnector {
 public:
  /// Throws ConfigError when the tiers' block sizes or bytes per block differ, or a pool does
  /// not describe its manager.
  OffloadConnector(BlockManager<G1> g1, const PhysicalPool& g1_pool, BlockManager<G2> g2,
                   const PhysicalPool& g2_pool, TransferEngine& engine, StreamRef stream)
      : g1_{std::move(g1)}, g2_{std::move(g2)}, g1_pool_{g1_pool}, g2_pool_{g2_pool},
        engine_{engine}, stream_{stream} {
    if (g1_.block_size() != g2_.block_size() || g1_pool_.block_bytes() != g2_pool_.block_bytes()) {
      throw ConfigError("OffloadConnector: G1 and G2 blocks must have the same size");
    }
    if (g1_pool_.manager_id() != g1_.id() || g2_pool_.manager_id() != g2_.id() ||
        g1_pool_.num_blocks() != g1_.total_blocks() || g2_pool_.num_blocks() != g2_.total_blocks()) {
      throw ConfigError("OffloadConnector: a physical pool does not describe its manager");
    }
  }

  /// `n` G1 blocks (all or nothing), evicting cached blocks in policy order. If G1 is full of
  /// blocks pinned by offloads still in flight, waits for the oldest offload and retries.
  /// nullopt when G1 cannot supply `n` blocks even then (live blocks hold it).
  [[nodiscard]] std::optional<G1Allocation> allocate(std::size_t n) {
    poll();
    for (;;) {
      if (auto got = g1_.allocate_blocks_with_evictions(n)) {
        const auto in_g2 = g1_.registry().check_presence<G2>(got->second);
        for (const bool present : in_g2) ++(present ? stats_.evicted_in_g2 : stats_.evicted_lost);
        return G1Allocation{std::move(got->first), std::move(got->second)};
      }
      if (in_flight_.empty()) return std::nullopt;
      in_flight_.front().done.wait();
      poll();
    }
  }

  /// Registers filled G1 blocks and starts offloading those whose hash G2 does not hold yet.
  [[nodiscard]] std::vector<ImmutableBlock<G1>> store(std::vector<CompleteBlock<G1>>&& blocks) {
    auto registered = g1_.register_blocks(std::move(blocks));
    offload(registered);
    return registered;
  }

  /// Starts G1 -> G2 copies for the blocks whose hash is neither in G2 nor on its way there.
  /// Returns how many copies were enqueued.
  std::size_t offload(std::span<const ImmutableBlock<G1>> blocks) {
    std::vector<SequenceHash> hashes;
    for (const auto& block : blocks) hashes.push_back(block.sequence_hash());
    const auto in_g2 = g1_.registry().check_presence<G2>(hashes);

    Offload job;
    std::vector<SequenceHash> job_hashes;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (in_g2[i] || !offloading_.insert(hashes[i]).second) continue;  // done or in flight
      job.sources.push_back(blocks[i].pin());
      job_hashes.push_back(hashes[i]);
    }
    // G2 may evict its own cached blocks to make room; what it cannot supply is skipped.
    const std::size_t room = std::min(job.sources.size(), g2_.available_blocks());
    while (job.sources.size() > room) {
      offloading_.erase(job_hashes.back());
      job_hashes.pop_back();
      job.sources.pop_back();
      ++stats_.offloads_skipped;
    }
    if (job.sources.empty()) return 0;
    auto targets = g2_.allocate_blocks_with_evictions(job.sources.size());
    if (!targets) {  // raced below available_blocks(): give this batch up
      for (const auto& hash : job_hashes) offloading_.erase(hash);
      stats_.offloads_skipped += job.sources.size();
      return 0;
    }
    auto& g2_blocks = targets->first;
    try {
      job.done = engine_.copy_blocks(g1_pool_, std::span<LifecyclePinRef>{job.sources}, g2_pool_,
                                     std::span<MutableBlock<G2>>{g2_blocks}, stream_);
    } catch (...) {  // nothing was enqueued: the pins and G2 blocks go back as they are
      for (const auto& hash : job_hashes) offloading_.erase(hash);
      throw;
    }
    for (std::size_t i = 0; i < g2_blocks.size(); ++i) {
      job.copies.push_back(std::move(g2_blocks[i]).stage(job_hashes[i], g2_.block_size()));
    }
    const std::size_t started = job.sources.size();
    stats_.offloads_started += started;
    in_flight_.push_back(std::move(job));
    return started;
  }

  /// Completes every offload whose copy has landed: registers the G2 copies (now matchable)
  /// and drops the G1 pins (the G1 blocks become evictable). Never blocks. Returns how many
  /// blocks completed.
  std::size_t poll() {
    std::size_t completed = 0;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (!it->done.ready()) {
        ++it;
        continue;
      }
      for (const auto& copy : it->copies) offloading_.erase(copy.sequence_hash());
      completed += it->copies.size();
      static_cast<void>(g2_.register_blocks(std::move(it->copies)));  // dropped: cached in G2
      it = in_flight_.erase(it);                                       // drops the G1 pins
    }
    stats_.offloads_completed += completed;
    return completed;
  }

  /// Waits for every offload in flight, then polls.
  void drain() {
    for (const auto& job : in_flight_) job.done.wait();
    poll();
  }

  /// Longest prefix of `hashes` in G1, extended by the run that follows it in G2: those G2
  /// blocks are copied into freshly allocated G1 blocks (the copy may still be in flight).
  [[nodiscard]] Onboarding start_onboarding(std::span<const SequenceHash> hashes) {
    Onboarding job;
    job.cached = g1_.match_blocks(hashes);
    const auto rest = hashes.subspan(job.cached.size());
    if (rest.empty()) return job;
    poll();  // offloads that landed are matchable in G2 now (the rest are still in G1)
    auto sources = g2_.match_blocks(rest);
    if (sources.empty()) return job;
    auto targets = allocate(sources.size());
    if (!targets) return job;  // G1 is held by live blocks: serve the G1 prefix only
    job.ready = engine_.copy_blocks(g2_pool_, std::span<ImmutableBlock<G2>>{sources}, g1_pool_,
                                    std::span<MutableBlock<G1>>{targets->blocks}, stream_);
    for (std::size_t i = 0; i < sources.size(); ++i) {
      job.arriving.push_back(
          std::move(targets->blocks[i]).stage(sources[i].sequence_hash(), g1_.block_size()));
    }
    job.sources = std::move(sources);
    return job;
  }

  /// Waits for the onboarding copy, registers the arrived blocks in G1 and returns the whole
  /// prefix (cached blocks first, then the onboarded ones), in hash order.
  [[nodiscard]] std::vector<ImmutableBlock<G1>> finish_onboarding(Onboarding&& job) {
    job.ready.wait();
    stats_.onboarded += job.arriving.size();
    auto arrived = g1_.register_blocks(std::move(job.arriving));
    job.sources.clear();
    std::vector<ImmutableBlock<G1>> prefix = std::move(job.cached);
    for (auto& block : arrived) prefix.push_back(std::move(block));
    return prefix;
  }

  /// start_onboarding + finish_onboarding: the longest prefix G1 and G2 hold together, in G1.
  [[nodiscard]] std::vector<ImmutableBlock<G1>> match(std::span<const SequenceHash> hashes) {
    return finish_onboarding(start_onboarding(hashes));
  }

  [[nodiscard]] const OffloadStats& stats() const noexcept { return stats_; }
  /// Offloaded blocks whose copy poll() has not completed yet.
  [[nodiscard]] std::size_t offloads_in_flight() const noexcept { return offloading_.size(); }
  [[nodiscard]] const BlockManager<G1>& g1() const noexcept { return g1_; }
  [[nodiscard]] const BlockManager<G2>& g2() const noexcept { return g2_; }

 private:
  /// One G1 -> G2 copy batch in flight.
  struct Offload {
    std::vector<LifecyclePinRef> sources;   // G1 blocks being read: registered, not evictable
    std::vector<CompleteBlock<G2>> copies;  // G2 blocks being written: registered by poll()
    Fence done;
  };

  BlockManager<G1> g1_;
  BlockManager<G2> g2_;
  PhysicalPool g1_pool_;
  PhysicalPool g2_pool_;
  TransferEngine& engine_;
  StreamRef stream_;
  std::deque<Offload> in_flight_;                // oldest first (one stream: completes in order)
  std::unordered_set<SequenceHash> offloading_;  // hashes of in_flight_
  OffloadStats stats_;
};

}  // namespace kvbm::examples
