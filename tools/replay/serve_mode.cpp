// Serve mode: an event-driven model of one serving engine over a G1 (and optional G2) manager,
// with every request driven through kvbm::SchedulableSequence.
//
// A request's prompt is synthesised from its trace hash ids (token j of trace block k is a mix of
// (id_k, j)), so equal id prefixes are equal token prefixes and the sequence's own hashes give the
// same sharing as the trace. Events, in time order (ties: finishes first, so freed blocks are
// seen by the next admission):
//   Arrival      — the request joins the FCFS queue; admission is attempted.
//   PrefillChunk — the scheduled prefill chunk is applied (its complete blocks are registered);
//                  the next chunk (at most --max-prefill-tokens) is scheduled, or, after the last
//                  one, which samples the first token, decode starts.
//   DecodeStep   — one token: schedule_decode + apply_decode (a block is allocated when the token
//                  starts one, registered when its KV is complete).
//   Finish       — the sequence is released (last block first); admission retried.
// Admission (FCFS, nobody overtakes the head): the head matches its cached prefix (or reacquires
// it after a preemption) and is admitted when free + cached - reserved blocks cover the rest of
// its prompt, plus its whole decode footprint when decode is reserved (the default: decode never
// fails). Without the reservation a decode step that cannot get a block preempts its request:
// release, back to the head of the queue, and on readmission reacquire + recompute.
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
#include "kvbm/schedulable_sequence.hpp"
#include "kvbm/transfer_engine.hpp"
#include "kvbm/types.hpp"
#include "replay/checked.hpp"
#include "replay/hash_mapping.hpp"
#include "replay/simulate.hpp"
#include "replay/synthetic_tokens.hpp"  // wire_hashes_sorted

namespace kvbm::replay {

namespace {

enum class EventKind : std::uint8_t { Finish = 0, PrefillChunk = 1, DecodeStep = 2, Arrival = 3 };

struct Event {
  double time_ms;
  EventKind kind;
  std::uint64_t sequence;  // FIFO among equal (time, kind)
  std::size_t request;
  std::uint32_t epoch;  // a preemption makes the request's pending events stale
  friend bool operator>(const Event& a, const Event& b) {
    if (a.time_ms != b.time_ms) return a.time_ms > b.time_ms;
    if (a.kind != b.kind) return a.kind > b.kind;
    return a.sequence > b.sequence;
  }
};

using Sequence = SchedulableSequence<G1>;

struct Running {
  std::optional<Sequence> seq;
  std::size_t reservation = 0;  // blocks promised at admission and not allocated yet
  std::uint32_t epoch = 0;
  bool preempted = false;
  bool counted = false;  // admission statistics recorded (first admission only)
  double decode_start_ms = 0;
  std::size_t decode_start_generated = 0;
};

// Token j of trace block k: a mix of (id_k, j), so equal ids give equal tokens. Positions past
// the trace's ids (input_length longer than the ids cover) get ids unique to the request.
std::vector<std::uint32_t> synthesize_prompt(const TraceRequest& request, std::size_t index) {
  const std::size_t length = std::max<std::size_t>(request.input_length, 1);
  std::vector<std::uint32_t> tokens(length);
  for (std::size_t p = 0; p < length; ++p) {
    const std::size_t k = p / kTraceBlockSize;
    const std::uint64_t id = k < request.hash_ids.size()
                                 ? request.hash_ids[k]
                                 : ~std::uint64_t{0} ^ (std::uint64_t{index} << 24) ^ k;
    std::uint64_t x = id * 0x9E3779B97F4A7C15ull + (p % kTraceBlockSize);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    tokens[p] = static_cast<std::uint32_t>(x);
  }
  return tokens;
}

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

  void offload(std::span<const BlockId> g1_ids, std::span<const BlockId> g2_ids) {
    engine_.copy_blocks(g1_pool_, g1_ids, g2_pool_, g2_ids, stream_).wait();
  }
  void onboard(std::span<const BlockId> g2_ids, std::span<const BlockId> g1_ids) {
    engine_.copy_blocks(g2_pool_, g2_ids, g1_pool_, g1_ids, stream_).wait();
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

template <class Block>
std::vector<BlockId> ids_of(const std::vector<Block>& blocks) {
  std::vector<BlockId> ids;
  ids.reserve(blocks.size());
  for (const auto& b : blocks) ids.push_back(b.block_id());
  return ids;
}

class ServeSimulator {
 public:
  ServeSimulator(const Trace& trace, const ReplayConfig& config)
      : trace_{trace},
        config_{config},
        mapper_{config.block_size, config.salt},
        registry_{make_registry({config.policy, config.g2_policy.value_or(config.policy)})},
        g1_{make_manager<G1>(config.policy, config.g1_blocks, config.block_size, registry_,
                             config.event_sink)} {
    // Written so that NaN fails too: the rates divide every simulated time.
    const auto positive_finite = [](double v) { return v > 0 && std::isfinite(v); };
    if (!positive_finite(config.prefill_tokens_per_s) ||
        !positive_finite(config.decode_tokens_per_s)) {
      throw std::invalid_argument("serve mode: prefill and decode rates must be finite and > 0");
    }
    if (!(config.onboard_gb_per_s >= 0) || !std::isfinite(config.onboard_gb_per_s)) {
      throw std::invalid_argument("serve mode: the onboard bandwidth must be finite and >= 0");
    }
    if (config.block_size == 0 || kTraceBlockSize % config.block_size != 0) {
      throw std::invalid_argument("block size " + std::to_string(config.block_size) +
                                  " must be a power of two dividing the trace block size " +
                                  std::to_string(kTraceBlockSize));
    }
    if (config.salt != 0) keys_.set_cache_salt(std::to_string(config.salt));
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
      push(trace_.requests[i].timestamp_ms, EventKind::Arrival, i, 0);
    }
    std::size_t arrived = 0;
    double first_arrival = total == 0 ? 0 : trace_.requests.front().timestamp_ms;
    double last_event = first_arrival;
    while (!events_.empty()) {
      const Event event = events_.top();
      events_.pop();
      if (event.kind != EventKind::Arrival) {
        auto it = running_.find(event.request);
        if (it == running_.end() || it->second.epoch != event.epoch) continue;  // stale
      }
      last_event = event.time_ms;
      switch (event.kind) {
        case EventKind::Arrival:
          first_arrival = std::min(first_arrival, event.time_ms);
          on_arrival(event);
          if (progress && ++arrived % 256 == 0) progress(arrived, total);
          break;
        case EventKind::PrefillChunk:
          on_prefill_chunk(event);
          break;
        case EventKind::DecodeStep:
          on_decode_step(event);
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
    if (reserved_ != 0) throw std::logic_error("serve mode: reservations left over");
    g1_.check_invariants();
    if (g1_.available_blocks() != g1_.total_blocks()) {
      throw std::logic_error("serve mode: G1 blocks still held after the last request");
    }
    report_.g1.evictions = g1_.metrics().evictions;
    report_.dedup_registrations = g1_.metrics().registration_dedup;
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
  void push(double time_ms, EventKind kind, std::size_t request, std::uint32_t epoch) {
    events_.push(Event{time_ms, kind, next_sequence_++, request, epoch});
  }
  [[nodiscard]] std::size_t blocks_for(std::size_t tokens) const {
    return detail::blocks_for(tokens, config_.block_size);
  }
  [[nodiscard]] std::size_t decode_footprint(const Sequence& seq) const {
    const std::size_t all = blocks_for(seq.num_input_tokens() + seq.max_output_tokens());
    const std::size_t prompt = blocks_for(seq.prefill_target());
    return config_.reserve_decode && all > prompt ? all - prompt : 0;
  }

  void on_arrival(const Event& event) {
    const TraceRequest& request = trace_.requests[event.request];
    ++report_.requests;
    const std::size_t prompt = std::max<std::size_t>(request.input_length, 1);
    // Ids naming more blocks than positions exist (as cache mode), or larger than the pool:
    // rejected, not fatal.
    if (!mapper_.block_count(request.hash_ids.size()) ||
        blocks_for(prompt + request.output_length) > config_.g1_blocks) {
      ++report_.rejected;
      return;
    }
    Running state;
    auto builder = Sequence::builder();  // build() refuses a sequence past the position limit
    builder.tokens(synthesize_prompt(request, event.request))
        .max_output_tokens(request.output_length)
        .block_size(config_.block_size)
        .hash_keys(keys_);
    if (g2_) {
      builder.delegate([this](const SequenceEvent& e) {
        pending_evictions_.insert(pending_evictions_.end(), e.evicted.begin(), e.evicted.end());
      });
    }
    try {
      state.seq.emplace(builder.build());
    } catch (const ConfigError&) {
      ++report_.rejected;  // too long to name: rejected, not fatal
      return;
    }
    running_.emplace(event.request, std::move(state));
    waiting_.push_back(event.request);
    try_admit(event.time_ms);
    report_.peak_queue_length = std::max<std::uint64_t>(report_.peak_queue_length, waiting_.size());
  }

  void try_admit(double now_ms) {
    while (!waiting_.empty()) {
      const std::size_t index = waiting_.front();
      Running& state = running_.at(index);
      Sequence& seq = *state.seq;
      // A cached block that sat in the inactive pool counts as consumed once matched: the check
      // below sees available_blocks() after the match.
      if (state.preempted) {
        if (!seq.reacquire(g1_)) return;  // all or nothing: the head waits
        offload_pending(seq, seq.num_held() - seq.prefix_matched_blocks());
      } else {
        (void)seq.match_and_add_prefix(g1_);
      }
      const std::size_t prompt_rest = blocks_for(seq.prefill_target()) - seq.num_held();
      const std::size_t need = prompt_rest + decode_footprint(seq);
      if (g1_.available_blocks() < reserved_ + need) {
        seq.release();  // back to the cache, tail first
        return;         // FCFS: the head waits
      }
      waiting_.pop_front();
      admit(index, state, need, now_ms);
    }
  }

  void admit(std::size_t index, Running& state, std::size_t reservation, double now_ms) {
    const TraceRequest& request = trace_.requests[index];
    Sequence& seq = *state.seq;
    state.reservation = reservation;
    reserved_ += reservation;
    const std::size_t g1_hits = seq.prefix_matched_blocks();
    if (!state.counted) {
      state.counted = true;
      queue_delays_ms_.push_back(now_ms - request.timestamp_ms);
      accumulate<std::uint64_t>(report_.blocks_requested, blocks_for(seq.num_input_tokens()),
                                "prompt blocks requested");
      accumulate<std::uint64_t>(report_.prompt_tokens, request.input_length, "prompt tokens");
      report_.g1.blocks_hit += g1_hits;
    }

    // G1 misses that continue the prefix in G2 are onboarded (a prefill chunk whose KV is copied
    // instead of computed), never covering the last prompt token.
    std::size_t onboarded = 0;
    if (g2_ && !state.preempted) {
      const std::size_t limit = (seq.prefill_target() - 1) / config_.block_size;
      if (limit > g1_hits) {
        auto g2_matched =
            g2_->match_blocks(seq.sequence_hashes().subspan(g1_hits, limit - g1_hits));
        onboarded = g2_matched.size();
        if (onboarded != 0) onboard(state, g2_matched);
        while (!g2_matched.empty()) g2_matched.pop_back();
      }
      report_.g2.blocks_hit += onboarded;
    }
    const std::uint64_t cached_tokens = seq.prefill_position();
    if (!state.preempted) {
      report_.prefill_tokens_saved += std::min<std::uint64_t>(cached_tokens, request.input_length);
    }
    double extra_ms = 0;
    if (onboarded != 0 && config_.onboard_gb_per_s > 0) {
      extra_ms = 1000.0 * static_cast<double>(onboarded) * static_cast<double>(block_bytes_) /
                 (config_.onboard_gb_per_s * 1e9);
    }
    state.preempted = false;
    schedule_chunk(index, state, now_ms, extra_ms);
  }

  // Schedules the next prefill chunk; its PrefillChunk event applies it.
  void schedule_chunk(std::size_t index, Running& state, double now_ms, double extra_ms) {
    Sequence& seq = *state.seq;
    std::size_t chunk = seq.prefill_target() - seq.prefill_position();
    if (config_.max_prefill_tokens != 0) chunk = std::min(chunk, config_.max_prefill_tokens);
    seq.schedule_prefill(chunk, g1_);  // cannot fail: the admission reserved its blocks
    took_blocks(state, seq.state().blocks_allocated);
    ++report_.prefill_chunks;
    push(now_ms + extra_ms + 1000.0 * static_cast<double>(chunk) / config_.prefill_tokens_per_s,
         EventKind::PrefillChunk, index, state.epoch);
  }

  void on_prefill_chunk(const Event& event) {
    Running& state = running_.at(event.request);
    Sequence& seq = *state.seq;
    const bool final_chunk =
        seq.prefill_position() + seq.state().num_tokens >= seq.prefill_target();
    const bool sample = final_chunk && seq.remaining_tokens() != 0;
    const std::size_t computed_before = seq.kv_position();
    seq.apply_prefill(sample ? std::optional<std::uint32_t>(next_token_++) : std::nullopt, g1_);
    note_tokens(seq, computed_before);
    if (!final_chunk) {
      schedule_chunk(event.request, state, event.time_ms, 0);
      return;
    }
    state.decode_start_ms = event.time_ms;
    state.decode_start_generated = seq.generated_tokens();
    next_decode_or_finish(event.request, state);
  }

  // Decode token k (k = tokens generated so far) is produced at decode_start + (k - k0) / rate;
  // the request finishes at decode_start + (output - k0) / rate.
  void next_decode_or_finish(std::size_t index, Running& state) {
    const Sequence& seq = *state.seq;
    const double per_token_ms = 1000.0 / config_.decode_tokens_per_s;
    const double steps = static_cast<double>(seq.generated_tokens() - state.decode_start_generated);
    if (seq.is_complete()) {
      const double left =
          static_cast<double>(seq.max_output_tokens() - state.decode_start_generated);
      push(state.decode_start_ms + left * per_token_ms, EventKind::Finish, index, state.epoch);
    } else {
      push(state.decode_start_ms + (steps + 1) * per_token_ms, EventKind::DecodeStep, index,
           state.epoch);
    }
  }

  void on_decode_step(const Event& event) {
    Running& state = running_.at(event.request);
    Sequence& seq = *state.seq;
    // A block beyond the reservation comes out of the unreserved part of the pool.
    const std::size_t need = blocks_for(seq.kv_position() + 1) > seq.num_held() ? 1 : 0;
    const bool fits = need <= state.reservation || g1_.available_blocks() >= reserved_ + need;
    try {
      if (!fits) throw ScheduleError(ScheduleErrorKind::AllocationFailed, "reserved", need);
      seq.schedule_decode(g1_);
    } catch (const ScheduleError& e) {
      if (e.kind() != ScheduleErrorKind::AllocationFailed) throw;
      preempt(event.request, state, event.time_ms);
      return;
    }
    const std::size_t allocated = seq.state().blocks_allocated;
    report_.decode_blocks += allocated;
    took_blocks(state, allocated);
    const std::size_t computed_before = seq.kv_position();
    (void)seq.apply_decode(next_token_++, g1_);
    note_tokens(seq, computed_before);
    next_decode_or_finish(event.request, state);
  }

  void preempt(std::size_t index, Running& state, double now_ms) {
    ++report_.preemptions;
    state.seq->release();
    reserved_ -= state.reservation;
    state.reservation = 0;
    state.preempted = true;
    ++state.epoch;
    waiting_.push_front(index);
    try_admit(now_ms);
  }

  void on_finish(const Event& event) {
    auto it = running_.find(event.request);
    Running& state = it->second;
    reserved_ -= state.reservation;  // a reservation never used (the last token's block)
    state.seq->release();            // last block first
    running_.erase(it);
    try_admit(event.time_ms);
  }

  // Bookkeeping after a schedule allocated `blocks`: they come out of the request's reservation
  // first, and the evictions they caused are offloaded to G2.
  void took_blocks(Running& state, std::size_t blocks) {
    const std::size_t from_reservation = std::min(blocks, state.reservation);
    state.reservation -= from_reservation;
    reserved_ -= from_reservation;
    note_occupancy();
    if (blocks != 0) offload_pending(*state.seq, blocks);
  }

  // G1 blocks evicted to make room are written to G2 (unless G2 already holds them). The slots
  // the allocation handed out are the last `allocated` pages (free-list slots first, then the
  // evicted slots in eviction order, whose bytes are still the evicted blocks' until the engine
  // writes them).
  void offload_pending(const Sequence& seq, std::size_t allocated) {
    if (!g2_ || pending_evictions_.empty()) {
      pending_evictions_.clear();
      return;
    }
    const std::vector<SequenceHash> evicted = std::move(pending_evictions_);
    pending_evictions_.clear();
    // Evicted from G1: their tokens are needed once more (staging the G2 copy), then forgotten.
    std::unordered_map<SequenceHash, std::vector<Token>> evicted_tokens;
    for (const SequenceHash& hash : evicted) {
      if (auto node = g1_tokens_.extract(hash)) {
        evicted_tokens.emplace(hash, std::move(node.mapped()));
      }
    }
    const auto present = registry_.check_presence<G2>(evicted);
    std::vector<SequenceHash> to_copy;
    for (std::size_t i = 0; i < evicted.size(); ++i) {
      if (!present[i]) to_copy.push_back(evicted[i]);
    }
    const std::size_t room = std::min(to_copy.size(), g2_->available_blocks());
    if (room == 0) return;
    const std::span<const SequenceHash> copied = std::span(to_copy).last(room);
    auto slots = g2_->allocate_blocks(room);
    if (!slots) return;
    if (transfers_) {
      const std::vector<BlockId> pages = seq.page_indices();
      const auto fresh = std::span(pages).last(allocated);
      const auto sources = fresh.last(std::min({room, evicted.size(), fresh.size()}));
      const auto g2_ids = ids_of(*slots);
      transfers_->offload(sources, std::span(g2_ids).first(sources.size()));
    }
    std::vector<CompleteBlock<G2>> staged;
    staged.reserve(room);
    for (std::size_t i = 0; i < room; ++i) {
      staged.push_back(stage_g2(std::move((*slots)[i]), copied[i], evicted_tokens));
    }
    auto registered = g2_->register_blocks(std::move(staged));
    report_.offload_blocks += room;
    accumulate<std::uint64_t>(report_.offload_bytes,
                              mul_or_throw<std::uint64_t>(room, block_bytes_, "offload bytes"),
                              "offload bytes (lower --kv-bytes-per-token)");
    while (!registered.empty()) registered.pop_back();
  }

  // Copies the G2 blocks into G1 as one prefill chunk of the sequence: schedule (allocates the
  // slots), copy, apply (registers them).
  void onboard(Running& state, std::vector<ImmutableBlock<G2>>& source) {
    Sequence& seq = *state.seq;
    const std::size_t first = seq.num_held();
    seq.schedule_prefill(source.size() * config_.block_size, g1_);
    took_blocks(state, seq.state().blocks_allocated);
    ++report_.prefill_chunks;
    if (transfers_) {
      const std::vector<BlockId> pages = seq.page_indices();
      const auto g2_ids = ids_of(source);
      transfers_->onboard(g2_ids, std::span(pages).subspan(first, source.size()));
    }
    const std::size_t computed_before = seq.kv_position();
    seq.apply_prefill(std::nullopt, g1_);
    note_tokens(seq, computed_before);
    report_.onboard_blocks += source.size();
    accumulate<std::uint64_t>(
        report_.onboard_bytes,
        mul_or_throw<std::uint64_t>(source.size(), block_bytes_, "onboard bytes"),
        "onboard bytes (lower --kv-bytes-per-token)");
  }

  // G1 blocks are completed by their sequence from its (synthesized) prompt and sampled tokens.
  // With an event sink and G2, the tokens of every block registered in G1 are kept until the
  // block is evicted, so its G2 copy's stored event carries the same token ids (a router keys
  // blocks by tokens). Bounded by the G1 pool: entries leave on eviction.
  void note_tokens(const Sequence& seq, std::size_t computed_before) {
    if (!config_.event_sink || !g2_) return;
    const std::size_t bs = config_.block_size;
    const auto hashes = seq.sequence_hashes();
    const auto tokens = seq.tokens();
    const std::size_t end = std::min(seq.kv_position() / bs, hashes.size());
    for (std::size_t i = computed_before / bs; i < end; ++i) {
      g1_tokens_.try_emplace(hashes[i], tokens.begin() + static_cast<std::ptrdiff_t>(i * bs),
                             tokens.begin() + static_cast<std::ptrdiff_t>((i + 1) * bs));
    }
  }

  CompleteBlock<G2> stage_g2(MutableBlock<G2>&& block, const SequenceHash& hash,
                             std::unordered_map<SequenceHash, std::vector<Token>>& tokens) {
    if (config_.event_sink) {
      if (auto it = tokens.find(hash); it != tokens.end()) {
        return std::move(block).complete(
            TokenBlock(std::move(it->second), hash.position(), 0, hash));
      }
    }
    return std::move(block).stage(hash, config_.block_size);
  }

  void note_occupancy() {
    const std::uint64_t held = g1_.total_blocks() - g1_.available_blocks();
    report_.g1.peak_occupancy = std::max(report_.g1.peak_occupancy, held);
  }

  const Trace& trace_;
  ReplayConfig config_;
  HashMapper mapper_;  // only to apply cache mode's position limit to the trace's ids
  HashKeys keys_;
  BlockRegistry registry_;
  BlockManager<G1> g1_;
  std::optional<BlockManager<G2>> g2_;
  std::unique_ptr<HostTransfers> transfers_;
  std::unordered_map<SequenceHash, std::vector<Token>> g1_tokens_;
  std::uint64_t block_bytes_ = 0;

  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t next_sequence_ = 0;
  std::uint32_t next_token_ = 1;  // sampled tokens: any values serve
  std::deque<std::size_t> waiting_;
  std::unordered_map<std::size_t, Running> running_;  // waiting and admitted requests
  std::size_t reserved_ = 0;
  std::vector<SequenceHash> pending_evictions_;
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
