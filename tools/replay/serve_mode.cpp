// Serve mode: an event-driven model of one serving engine over a G1 (and optional G2) manager.
//
// Events, in time order (ties: finishes first, so freed blocks are seen by the next admission):
//   Arrival     — the request joins the FCFS queue; admission is attempted.
//   PrefillDone — the request's computed prompt blocks are staged and registered (so a request
//                 arriving during another's prefill does not hit blocks that do not exist yet);
//                 decode starts and allocates its first block.
//   DecodeBlock — one more output block (every block_size generated tokens).
//   Finish      — decode blocks are freed, prompt blocks released tail first; admission retried.
// Admission reserves the request's whole decode footprint, so decode allocation never fails and
// the model never deadlocks; the head of the queue waits until free + cached - reserved blocks
// cover its misses plus its decode blocks (FCFS: nobody overtakes it).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "kvbm/block_manager.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/transfer_engine.hpp"
#include "kvbm/types.hpp"
#include "replay/checked.hpp"
#include "replay/hash_mapping.hpp"
#include "replay/simulate.hpp"
#include "replay/synthetic_tokens.hpp"

namespace kvbm::replay {

namespace {

enum class EventKind : std::uint8_t { Finish = 0, PrefillDone = 1, DecodeBlock = 2, Arrival = 3 };

struct Event {
  double time_ms;
  EventKind kind;
  std::uint64_t sequence;  // FIFO among equal (time, kind)
  std::size_t request;
  friend bool operator>(const Event& a, const Event& b) {
    if (a.time_ms != b.time_ms) return a.time_ms > b.time_ms;
    if (a.kind != b.kind) return a.kind > b.kind;
    return a.sequence > b.sequence;
  }
};

struct Running {
  std::vector<SequenceHash> hashes;
  std::vector<ImmutableBlock<G1>> prompt;   // matched, onboarded, then computed (in order)
  std::vector<MutableBlock<G1>> computing;  // misses being prefilled, registered at PrefillDone
  std::vector<MutableBlock<G1>> decode;
  std::size_t decode_left = 0;  // reserved decode blocks not allocated yet
  double decode_start_ms = 0;
};

// Host buffers behind the G1 and G2 pools and the engine that copies between them. Each copy is
// waited for before the simulation goes on, so slot fences never defer a reclaim and the cache
// behaves exactly as without transfers.
class HostTransfers {
 public:
  HostTransfers(ManagerId g1, std::size_t g1_blocks, ManagerId g2, std::size_t g2_blocks,
                std::size_t block_bytes)
      : g1_memory_(mul_or_throw(g1_blocks, block_bytes, "G1 payload bytes")),
        g2_memory_(mul_or_throw(g2_blocks, block_bytes, "G2 payload bytes")),
        g1_pool_{g1, g1_memory_.data(), static_cast<BlockId>(g1_blocks), block_bytes,
                 MemoryKind::Host},
        g2_pool_{g2, g2_memory_.data(), static_cast<BlockId>(g2_blocks), block_bytes,
                 MemoryKind::Host} {}

  template <class Src, class Dst>
  void offload(std::span<Src> g1_blocks, std::span<Dst> g2_blocks) {
    engine_.copy_blocks(g1_pool_, g1_blocks, g2_pool_, g2_blocks, stream_).wait();
  }
  template <class Src, class Dst>
  void onboard(std::span<Src> g2_blocks, std::span<Dst> g1_blocks) {
    engine_.copy_blocks(g2_pool_, g2_blocks, g1_pool_, g1_blocks, stream_).wait();
  }
  [[nodiscard]] TransferStats stats() const noexcept { return engine_.stats(); }

 private:
  std::vector<std::byte> g1_memory_;
  std::vector<std::byte> g2_memory_;
  PhysicalPool g1_pool_;
  PhysicalPool g2_pool_;
  HostStream stream_;
  TransferEngine engine_{make_host_copy_backend()};
};

class ServeSimulator {
 public:
  ServeSimulator(const Trace& trace, const ReplayConfig& config)
      : trace_{trace},
        config_{config},
        mapper_{config.block_size, config.salt},
        registry_{make_registry({config.policy, config.g2_policy.value_or(config.policy)})},
        g1_{make_manager<G1>(config.policy, config.g1_blocks, config.block_size, registry_,
                             config.event_sink)},
        tokens_{config.block_size, mapper_.blocks_per_trace_block()} {
    // Written so that NaN fails too: the rates divide every simulated time.
    const auto positive_finite = [](double v) { return v > 0 && std::isfinite(v); };
    if (!positive_finite(config.prefill_tokens_per_s) ||
        !positive_finite(config.decode_tokens_per_s)) {
      throw std::invalid_argument("serve mode: prefill and decode rates must be finite and > 0");
    }
    if (!(config.onboard_gb_per_s >= 0) || !std::isfinite(config.onboard_gb_per_s)) {
      throw std::invalid_argument("serve mode: the onboard bandwidth must be finite and >= 0");
    }
    if (config.g2_blocks != 0) {
      g2_.emplace(make_manager<G2>(config.g2_policy.value_or(config.policy), config.g2_blocks,
                                   config.block_size, registry_, config.event_sink));
      if (config.copy_bytes_per_block != 0) {
        transfers_ = std::make_unique<HostTransfers>(g1_.id(), config.g1_blocks, g2_->id(),
                                                     config.g2_blocks, config.copy_bytes_per_block);
      }
    }
    block_bytes_ = mul_or_throw<std::uint64_t>(config.kv_bytes_per_token, config.block_size,
                                               "--kv-bytes-per-token x --block-size");
    report_.mode = "serve";
    report_.policy = std::string(to_string(config.policy));
    if (g2_ && config.g2_policy && *config.g2_policy != config.policy) {
      report_.policy += "+g2:" + std::string(to_string(*config.g2_policy));
    }
    report_.block_size = config.block_size;
    report_.salt = config.salt;
    report_.bad_lines = trace.bad_lines;
    report_.g1.capacity = config.g1_blocks;
    report_.has_g2 = g2_.has_value();
    report_.g2.capacity = config.g2_blocks;
  }

  ReplayReport run(const ProgressFn& progress) {
    const auto started = std::chrono::steady_clock::now();
    const std::size_t total = trace_.requests.size();
    for (std::size_t i = 0; i < total; ++i) {
      push(trace_.requests[i].timestamp_ms, EventKind::Arrival, i);
    }
    std::size_t arrived = 0;
    double first_arrival = total == 0 ? 0 : trace_.requests.front().timestamp_ms;
    double last_event = first_arrival;
    while (!events_.empty()) {
      const Event event = events_.top();
      events_.pop();
      last_event = event.time_ms;
      switch (event.kind) {
        case EventKind::Arrival:
          first_arrival = std::min(first_arrival, event.time_ms);
          on_arrival(event);
          if (progress && ++arrived % 256 == 0) progress(arrived, total);
          break;
        case EventKind::PrefillDone:
          on_prefill_done(event);
          break;
        case EventKind::DecodeBlock:
          on_decode_block(event);
          break;
        case EventKind::Finish:
          on_finish(event);
          break;
      }
    }
    if (progress) progress(total, total);
    if (!waiting_.empty() || !running_.empty()) {
      throw std::logic_error("serve mode: requests left over after the last event");
    }
    report_.g1.evictions = g1_.metrics().evictions;
    if (g2_) report_.g2.evictions = g2_->metrics().evictions;
    if (transfers_) {
      report_.transfer_copies = transfers_->stats().copies;
      report_.transfer_bytes = transfers_->stats().bytes;
    }
    report_.queue_delay_ms = percentiles(queue_delays_ms_);
    report_.makespan_s = (last_event - first_arrival) / 1000.0;
    if (config_.cache_dump) report_.cache_dump = wire_hashes_sorted(g1_.matchable_hashes());
    report_.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report_;
  }

 private:
  void push(double time_ms, EventKind kind, std::size_t request) {
    events_.push(Event{time_ms, kind, next_sequence_++, request});
  }

  // In 64 bits: an output_length near 2^32 must not wrap to zero blocks.
  std::size_t decode_blocks_for(const TraceRequest& request) const {
    return (std::uint64_t{request.output_length} + config_.block_size - 1) / config_.block_size;
  }

  void on_arrival(const Event& event) {
    const TraceRequest& request = trace_.requests[event.request];
    ++report_.requests;
    // Too long to name (position limit) or larger than the pool: rejected, not fatal.
    const auto blocks = mapper_.block_count(request.hash_ids.size());
    const std::size_t decode = decode_blocks_for(request);
    if (!blocks || *blocks > config_.g1_blocks || decode > config_.g1_blocks - *blocks) {
      ++report_.rejected;
      return;
    }
    Running state;
    mapper_.map_into(request.hash_ids, state.hashes);
    if (config_.event_sink) tokens_.note(request.hash_ids, state.hashes);
    state.decode_left = decode;
    running_.emplace(event.request, std::move(state));
    waiting_.push_back(event.request);
    try_admit(event.time_ms);
    report_.peak_queue_length = std::max<std::uint64_t>(report_.peak_queue_length, waiting_.size());
  }

  void try_admit(double now_ms) {
    while (!waiting_.empty()) {
      const std::size_t index = waiting_.front();
      Running& state = running_.at(index);
      const std::size_t n = state.hashes.size();
      auto matched = g1_.match_blocks(state.hashes);
      const std::size_t hits = matched.size();
      const std::size_t need = (n - hits) + state.decode_left;
      const std::size_t available = g1_.available_blocks();
      if (available < reserved_decode_ + need) {
        while (!matched.empty()) matched.pop_back();  // back to the cache, tail first
        return;                                       // FCFS: the head waits
      }
      waiting_.pop_front();
      admit(index, state, std::move(matched), now_ms);
    }
  }

  void admit(std::size_t index, Running& state, std::vector<ImmutableBlock<G1>> matched,
             double now_ms) {
    const TraceRequest& request = trace_.requests[index];
    const std::size_t n = state.hashes.size();
    const std::size_t g1_hits = matched.size();
    queue_delays_ms_.push_back(now_ms - request.timestamp_ms);
    accumulate<std::uint64_t>(report_.blocks_requested, n, "prompt blocks requested");
    accumulate<std::uint64_t>(report_.prompt_tokens, request.input_length, "prompt tokens");
    report_.g1.blocks_hit += g1_hits;
    state.prompt = std::move(matched);

    // G1 misses that continue the prefix in G2 are onboarded instead of recomputed.
    std::vector<ImmutableBlock<G2>> g2_matched;
    if (g2_ && g1_hits < n) {
      g2_matched = g2_->match_blocks(std::span(state.hashes).subspan(g1_hits));
    }
    const std::size_t onboarded = g2_matched.size();
    report_.g2.blocks_hit += onboarded;

    auto fresh = allocate_g1(n - g1_hits);
    if (onboarded != 0) {
      onboard(state, g2_matched, fresh, g1_hits);
      while (!g2_matched.empty()) g2_matched.pop_back();
    }
    for (std::size_t i = onboarded; i < fresh.size(); ++i) {
      state.computing.push_back(std::move(fresh[i]));
    }
    reserved_decode_ += state.decode_left;
    note_occupancy();

    const std::uint64_t cached_tokens = std::min<std::uint64_t>(
        std::uint64_t{g1_hits + onboarded} * config_.block_size, request.input_length);
    report_.prefill_tokens_saved += cached_tokens;
    const double uncached_tokens = static_cast<double>(request.input_length - cached_tokens);
    double prefill_ms = 1000.0 * uncached_tokens / config_.prefill_tokens_per_s;
    if (onboarded != 0 && config_.onboard_gb_per_s > 0) {
      prefill_ms += 1000.0 * static_cast<double>(onboarded) * static_cast<double>(block_bytes_) /
                    (config_.onboard_gb_per_s * 1e9);
    }
    push(now_ms + prefill_ms, EventKind::PrefillDone, index);
  }

  void on_prefill_done(const Event& event) {
    Running& state = running_.at(event.request);
    const std::size_t first = state.prompt.size();
    std::vector<CompleteBlock<G1>> staged;
    staged.reserve(state.computing.size());
    for (std::size_t i = 0; i < state.computing.size(); ++i) {
      staged.push_back(
          stage_one(std::move(state.computing[i]), state.hashes[first + i]));
    }
    state.computing.clear();
    register_into(state.prompt, std::move(staged));

    const TraceRequest& request = trace_.requests[event.request];
    state.decode_start_ms = event.time_ms;
    if (state.decode_left != 0) grow_decode(state, event.request);
    push(event.time_ms + 1000.0 * request.output_length / config_.decode_tokens_per_s,
         EventKind::Finish, event.request);
  }

  void on_decode_block(const Event& event) {
    auto it = running_.find(event.request);
    if (it == running_.end() || it->second.decode_left == 0) return;
    grow_decode(it->second, event.request);
  }

  // Allocates the next decode block and schedules the one after (every block_size tokens).
  void grow_decode(Running& state, std::size_t index) {
    auto block = allocate_g1(1);
    state.decode.push_back(std::move(block.front()));
    --state.decode_left;
    --reserved_decode_;
    ++report_.decode_blocks;
    note_occupancy();
    if (state.decode_left != 0) {
      const double tokens = static_cast<double>(state.decode.size()) * config_.block_size;
      push(state.decode_start_ms + 1000.0 * tokens / config_.decode_tokens_per_s,
           EventKind::DecodeBlock, index);
    }
  }

  void on_finish(const Event& event) {
    auto it = running_.find(event.request);
    Running& state = it->second;
    reserved_decode_ -= state.decode_left;  // float ties: a reservation never used
    state.decode.clear();
    std::reverse(state.prompt.begin(), state.prompt.end());  // tail first, under one pool lock
    g1_.release_blocks(std::move(state.prompt));
    running_.erase(it);
    try_admit(event.time_ms);
  }

  // Allocation that cannot fail by construction of the admission check.
  std::vector<MutableBlock<G1>> allocate_g1(std::size_t n) {
    if (n == 0) return {};
    auto result = g1_.allocate_blocks_with_evictions(n);
    if (!result) throw std::logic_error("serve mode: G1 allocation failed despite admission check");
    if (g2_ && !result->second.empty()) offload(result->second, result->first);
    return std::move(result->first);
  }

  void register_into(std::vector<ImmutableBlock<G1>>& out, std::vector<CompleteBlock<G1>> staged) {
    if (staged.empty()) return;
    const auto before = g1_.metrics().registration_dedup;
    for (auto& block : g1_.register_blocks(std::move(staged))) out.push_back(std::move(block));
    report_.dedup_registrations += g1_.metrics().registration_dedup - before;
  }

  // G1 blocks evicted to make room are written to G2 (unless G2 already holds them). `fresh` is
  // what the allocation handed out: free-list slots first, then the evicted slots in eviction
  // order, whose bytes (still the evicted blocks' until the caller writes them) are the source.
  void offload(const std::vector<SequenceHash>& evicted, std::vector<MutableBlock<G1>>& fresh) {
    const auto present = registry_.check_presence<G2>(evicted);
    std::vector<SequenceHash> to_copy;
    for (std::size_t i = 0; i < evicted.size(); ++i) {
      if (!present[i]) to_copy.push_back(evicted[i]);
    }
    // G2 may be momentarily short (blocks held for an onboard): keep the most recent evictions.
    const std::size_t room = std::min(to_copy.size(), g2_->available_blocks());
    if (room == 0) return;
    const std::span<const SequenceHash> copied = std::span(to_copy).last(room);
    auto slots = g2_->allocate_blocks(room);
    if (!slots) return;
    if (transfers_) {
      const std::size_t first_evicted = fresh.size() - evicted.size();
      const auto sources =
          std::span(fresh).subspan(first_evicted).last(std::min(room, evicted.size()));
      transfers_->offload(sources, std::span(*slots).first(sources.size()));
    }
    std::vector<CompleteBlock<G2>> staged;
    staged.reserve(room);
    for (std::size_t i = 0; i < room; ++i) {
      staged.push_back(stage_one(std::move((*slots)[i]), copied[i]));
    }
    auto registered = g2_->register_blocks(std::move(staged));
    report_.offload_blocks += room;
    accumulate<std::uint64_t>(report_.offload_bytes,
                              mul_or_throw<std::uint64_t>(room, block_bytes_, "offload bytes"),
                              "offload bytes (lower --kv-bytes-per-token)");
    while (!registered.empty()) registered.pop_back();
  }

  // Copies the G2 blocks into the first fresh G1 slots and registers them in G1.
  // Simulated time charges bytes / onboard bandwidth to the prefill; the copy itself (scaled-down
  // payload) goes through the TransferEngine.
  void onboard(Running& state, std::vector<ImmutableBlock<G2>>& source,
               std::vector<MutableBlock<G1>>& fresh, std::size_t first_position) {
    if (transfers_) {
      transfers_->onboard(std::span(source), std::span(fresh).first(source.size()));
    }
    std::vector<CompleteBlock<G1>> staged;
    staged.reserve(source.size());
    for (std::size_t i = 0; i < source.size(); ++i) {
      staged.push_back(
          stage_one(std::move(fresh[i]), state.hashes[first_position + i]));
    }
    register_into(state.prompt, std::move(staged));
    report_.onboard_blocks += source.size();
    accumulate<std::uint64_t>(
        report_.onboard_bytes,
        mul_or_throw<std::uint64_t>(source.size(), block_bytes_, "onboard bytes"),
        "onboard bytes (lower --kv-bytes-per-token)");
  }

  // With an event sink, blocks carry their synthetic token ids (replay/synthetic_tokens.hpp).
  template <class Tier>
  CompleteBlock<Tier> stage_one(MutableBlock<Tier>&& block, const SequenceHash& hash) {
    if (config_.event_sink) return std::move(block).complete(tokens_.block(hash));
    return std::move(block).stage(hash, config_.block_size);
  }

  void note_occupancy() {
    const std::uint64_t held = g1_.total_blocks() - g1_.available_blocks();
    report_.g1.peak_occupancy = std::max(report_.g1.peak_occupancy, held);
  }

  const Trace& trace_;
  ReplayConfig config_;
  HashMapper mapper_;
  BlockRegistry registry_;
  BlockManager<G1> g1_;
  std::optional<BlockManager<G2>> g2_;
  std::unique_ptr<HostTransfers> transfers_;
  SyntheticTokens tokens_;
  std::uint64_t block_bytes_ = 0;

  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t next_sequence_ = 0;
  std::deque<std::size_t> waiting_;
  std::unordered_map<std::size_t, Running> running_;  // waiting and admitted requests
  std::size_t reserved_decode_ = 0;
  std::vector<double> queue_delays_ms_;
  ReplayReport report_;
};

}  // namespace

ReplayReport run_serve_mode(const Trace& trace, const ReplayConfig& config,
                            const ProgressFn& progress) {
  ServeSimulator simulator(trace, config);
  return simulator.run(progress);
}

}  // namespace kvbm::replay
