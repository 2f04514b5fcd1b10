// kvbm/schedulable_sequence.hpp — SchedulableSequence<Tier>: the two-phase protocol an engine
// drives every step (schedule before the forward pass, apply after it) over a RequestSequence.
//
//            schedule_prefill           apply_prefill
//   Idle ───────────────────► PrefillScheduled ──────────► Idle
//    │     schedule_decode            apply_decode
//    ├──────────────────────► DecodeScheduled ───────────► Idle
//    │   schedule_speculative        apply_speculative
//    └──────────────────────► SpeculativeScheduled ──────► Idle
//                 any *Scheduled ── revert_schedule ─────► Idle
//
// Positions: prefill_position() tokens of the prefill target are processed; kv_position() tokens
// have computed KV; tail_tokens() = total_tokens() - kv_position() (decode and speculative need
// exactly one: the last sampled token, whose KV the next step computes). The prefill target is
// the prompt, or, after release(), every token the sequence has (recompute after preemption).
// Blocks: schedule_* allocates what the step's KV needs (all or nothing; on failure
// ScheduleError(AllocationFailed) and nothing changed); apply_* registers exactly the blocks
// whose KV is now complete (floor(kv_position / block_size)): a partial block, or a block filled
// by a token whose KV is not computed yet (a sampled or speculative token), is never registered.
// Every refused call throws ScheduleError / ApplyError with its kind() and changes nothing.
// Ownership: move-only; owns its blocks (dropping it releases them, last block first).
// Thread safety: a value; one thread at a time. The delegate runs on the calling thread after
// the transition, with no kvbm lock held.
// Complexity: a decode step is O(1) plus one pool-lock acquisition at each block boundary
// (allocation, registration); no heap allocation between boundaries without a delegate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/request_sequence.hpp"
#include "kvbm/sequence_state.hpp"

namespace kvbm {

template <class Tier>
class SchedulableSequence {
 public:
  class Builder {
   public:
    /// Required, non-empty: the prompt.
    Builder& tokens(std::vector<std::uint32_t> prompt) {
      tokens_ = std::move(prompt);
      return *this;
    }
    /// Required: the most tokens the request may generate.
    Builder& max_output_tokens(std::size_t n) {
      max_output_tokens_ = n;
      return *this;
    }
    /// Required: a power of two, equal to the manager's block size.
    Builder& block_size(std::uint32_t n) {
      block_size_ = n;
      return *this;
    }
    Builder& hash_keys(HashKeys keys) {
      keys_ = std::move(keys);
      return *this;
    }
    Builder& delegate(SequenceDelegate d) {
      delegate_ = std::move(d);
      return *this;
    }
    /// Throws ConfigError naming the missing or invalid setting.
    [[nodiscard]] SchedulableSequence build() const {
      if (!tokens_) throw ConfigError("SchedulableSequence: tokens(...) is required");
      if (tokens_->empty()) throw ConfigError("SchedulableSequence: the prompt has no tokens");
      if (!max_output_tokens_) {
        throw ConfigError("SchedulableSequence: max_output_tokens(...) is required");
      }
      if (!block_size_) throw ConfigError("SchedulableSequence: block_size(...) is required");
      return SchedulableSequence(RequestSequence<Tier>(*tokens_, *max_output_tokens_,
                                                       *block_size_, keys_),
                                 delegate_);
    }

   private:
    std::optional<std::vector<std::uint32_t>> tokens_;
    std::optional<std::size_t> max_output_tokens_;
    std::optional<std::uint32_t> block_size_;
    HashKeys keys_;
    SequenceDelegate delegate_;
  };

  [[nodiscard]] static Builder builder() { return Builder{}; }

  SchedulableSequence(SchedulableSequence&&) noexcept = default;
  SchedulableSequence& operator=(SchedulableSequence&&) noexcept = default;

  // ------------------------------------------------------------------ prefix match

  /// Idle, before prefill started and with no blocks held: adopts the longest cached prefix (never
  /// the last token of the prefill target) and advances prefill_position / kv_position over it.
  /// Returns the blocks matched. Matched blocks that sat in the inactive pool now count as held.
  std::size_t match_and_add_prefix(BlockManager<Tier>& manager) {
    require_idle_to_schedule();
    if (prefill_position_ != 0 || inner_.num_held() != 0) {
      throw ApplyError(ApplyErrorKind::WrongState,
                       "match_and_add_prefix: prefill already started or blocks held");
    }
    const std::size_t matched = inner_.match_prefix_up_to(manager, inner_.match_limit(target_));
    prefill_position_ = kv_position_ = matched * inner_.block_size();
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::PrefixMatched);
      event.blocks_matched = matched;
      delegate_(event);
    }
    return matched;
  }

  // ------------------------------------------------------------------ prefill

  /// Schedules the next `n_tokens` of the prefill target and allocates the blocks their KV needs.
  void schedule_prefill(std::size_t n_tokens, BlockManager<Tier>& manager) {
    require_idle_to_schedule();
    if (is_prefill_complete()) {
      throw ScheduleError(ScheduleErrorKind::PrefillComplete,
                          "all " + std::to_string(target_) + " tokens are prefilled");
    }
    if (n_tokens > target_ - prefill_position_) {
      throw ScheduleError(ScheduleErrorKind::PrefillOverrun,
                          "position " + std::to_string(prefill_position_) + " + " +
                              std::to_string(n_tokens) + " tokens > " + std::to_string(target_));
    }
    const std::size_t blocks = allocate_for(prefill_position_ + n_tokens, manager);
    state_ = SequenceState{SequenceStateKind::PrefillScheduled, n_tokens, blocks};
    emit_scheduled(SequenceEventKind::PrefillScheduled, n_tokens, blocks);
  }

  /// Commits the scheduled chunk: registers the blocks its KV completed. `token` (the first
  /// sampled token) is required on the chunk that ends prefill while output remains, and refused
  /// otherwise.
  void apply_prefill(std::optional<std::uint32_t> token, BlockManager<Tier>& manager) {
    require_state(SequenceStateKind::PrefillScheduled, "apply_prefill");
    const std::size_t n = state_.num_tokens;
    const bool final_chunk = prefill_position_ + n >= target_;
    if (token && !final_chunk) {
      throw ApplyError(ApplyErrorKind::TokenOnNonFinalChunk,
                       "this chunk ends at " + std::to_string(prefill_position_ + n) + " of " +
                           std::to_string(target_) + " tokens");
    }
    if (final_chunk && !token && inner_.remaining_tokens() != 0) {
      throw ApplyError(ApplyErrorKind::MissingTokenOnFinalChunk,
                       "the final prefill chunk must carry the first sampled token");
    }
    if (token && inner_.remaining_tokens() == 0) {
      throw ApplyError(ApplyErrorKind::AppendExceedsRemaining,
                       "max_output_tokens already generated");
    }
    check_manager(manager, "apply_prefill");
    prefill_position_ += n;
    kv_position_ = prefill_position_;
    const std::size_t registered = register_computed(manager);
    if (token) inner_.append_token(*token);
    state_ = SequenceState{};
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::PrefillApplied);
      event.num_tokens = n;
      event.blocks_registered = registered;
      event.token = token;
      delegate_(event);
    }
  }

  // ------------------------------------------------------------------ decode

  /// Schedules one decode step: the KV of the dangling token. Allocates a block when that token
  /// starts one.
  void schedule_decode(BlockManager<Tier>& manager) {
    require_decodable();
    const std::size_t blocks = allocate_for(kv_position_ + 1, manager);
    state_ = SequenceState{SequenceStateKind::DecodeScheduled, 0, blocks};
    emit_scheduled(SequenceEventKind::DecodeScheduled, 0, blocks);
  }

  /// Commits the step: the dangling token's KV is computed, `token` is the new dangling token.
  DecodeOutcome apply_decode(std::uint32_t token, BlockManager<Tier>& manager) {
    require_state(SequenceStateKind::DecodeScheduled, "apply_decode");
    check_manager(manager, "apply_decode");
    inner_.append_token(token);  // cannot throw: schedule_decode saw remaining output
    ++kv_position_;
    const std::size_t registered = register_computed(manager);
    state_ = SequenceState{};
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::DecodeApplied);
      event.blocks_registered = registered;
      event.token = token;
      delegate_(event);
    }
    return outcome(registered != 0);
  }

  // ------------------------------------------------------------------ speculative decode

  /// Schedules the dangling token plus `n` draft tokens (clamped to the remaining output) and
  /// allocates the blocks their KV needs.
  void schedule_speculative(std::size_t n, BlockManager<Tier>& manager) {
    require_decodable();
    n = std::min(n, inner_.remaining_tokens());
    const std::size_t blocks = allocate_for(kv_position_ + 1 + n, manager);
    state_ = SequenceState{SequenceStateKind::SpeculativeScheduled, n, blocks};
    emit_scheduled(SequenceEventKind::SpeculativeScheduled, n, blocks);
  }

  /// Commits `accepted` (at most the drafts scheduled) tokens: kv_position advances by their
  /// count, the last accepted token becomes the dangling one, blocks whose KV completed are
  /// registered and blocks beyond the tokens now held are released, last first.
  DecodeOutcome apply_speculative(std::span<const std::uint32_t> accepted,
                                  BlockManager<Tier>& manager) {
    require_state(SequenceStateKind::SpeculativeScheduled, "apply_speculative");
    if (accepted.size() > state_.num_tokens) {
      throw ApplyError(ApplyErrorKind::AcceptedExceedsScheduled,
                       std::to_string(accepted.size()) + " tokens accepted, " +
                           std::to_string(state_.num_tokens) + " drafts scheduled");
    }
    check_manager(manager, "apply_speculative");
    for (const std::uint32_t token : accepted) inner_.append_token(token);
    kv_position_ += accepted.size();
    const std::size_t registered = register_computed(manager);
    const std::size_t keep = inner_.blocks_for(inner_.total_tokens());
    const std::size_t released =
        inner_.num_held() > keep ? inner_.drop_last_unassigned(inner_.num_held() - keep) : 0;
    state_ = SequenceState{};
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::SpeculativeApplied);
      event.num_tokens = accepted.size();
      event.blocks_registered = registered;
      event.blocks_released = released;
      delegate_(event);
    }
    return outcome(registered != 0);
  }

  // ------------------------------------------------------------------ undo and preemption

  /// Undoes the scheduled operation: the blocks it allocated go back, last first.
  void revert_schedule() {
    if (state_.kind == SequenceStateKind::Idle) {
      throw ApplyError(ApplyErrorKind::WrongState, "revert_schedule: nothing is scheduled");
    }
    const std::size_t released = inner_.drop_last_unassigned(state_.blocks_allocated);
    state_ = SequenceState{};
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::ScheduleReverted);
      event.blocks_released = released;
      delegate_(event);
    }
  }

  /// Idle: releases up to `n` unassigned blocks, last first, but never one holding computed KV.
  /// Returns how many were released.
  std::size_t drop_unassigned(std::size_t n) {
    require_state(SequenceStateKind::Idle, "drop_unassigned");
    const std::size_t first_droppable =
        std::max(inner_.blocks_for(kv_position_),
                 inner_.assigned_blocks() + inner_.staged_blocks());
    const std::size_t droppable =
        inner_.num_held() > first_droppable ? inner_.num_held() - first_droppable : 0;
    const std::size_t dropped = inner_.drop_last_unassigned(std::min(n, droppable));
    if (dropped != 0 && delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::UnassignedDropped);
      event.blocks_released = dropped;
      delegate_(event);
    }
    return dropped;
  }

  /// Idle: gives every block back, last block first (preemption). The KV is gone: positions go
  /// back to 0 and the prefill target becomes every token held, to be recomputed (after
  /// reacquire, or from scratch by schedule_prefill).
  void release() {
    require_state(SequenceStateKind::Idle, "release");
    const std::size_t held = inner_.num_held();
    inner_.release();
    prefill_position_ = kv_position_ = 0;
    target_ = inner_.total_tokens();
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::Released);
      event.blocks_released = held;
      delegate_(event);
    }
  }

  /// Idle, holding nothing (after release, or before the first schedule): re-matches what is
  /// still cached and allocates blocks for the rest of the prefill target, all or nothing.
  /// False: nothing held, nothing changed. Continue with schedule_prefill.
  bool reacquire(BlockManager<Tier>& manager) {
    require_state(SequenceStateKind::Idle, "reacquire");
    if (prefill_position_ != 0) {
      throw ApplyError(ApplyErrorKind::WrongState, "reacquire: release() the sequence first");
    }
    std::vector<SequenceHash> evicted;
    const bool ok = inner_.reacquire_up_to(manager, target_, delegate_ ? &evicted : nullptr);
    const std::size_t matched = ok ? inner_.prefix_matched_blocks() : 0;
    prefill_position_ = kv_position_ = matched * inner_.block_size();
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::Reacquired);
      event.blocks_matched = matched;
      event.blocks_allocated = ok ? inner_.num_held() - matched : 0;
      event.success = ok;
      event.evicted = std::move(evicted);
      delegate_(event);
    }
    return ok;
  }

  /// Idle: appends tokens whose KV is not computed (each adds one to tail_tokens()). Throws
  /// ApplyError(AppendExceedsRemaining), appending nothing, past max_output_tokens.
  void append_tokens(std::span<const std::uint32_t> tokens) {
    require_state(SequenceStateKind::Idle, "append_tokens");
    if (tokens.size() > inner_.remaining_tokens()) {
      throw ApplyError(ApplyErrorKind::AppendExceedsRemaining,
                       std::to_string(tokens.size()) + " tokens, " +
                           std::to_string(inner_.remaining_tokens()) + " remaining");
    }
    for (const std::uint32_t token : tokens) inner_.append_token(token);
  }

  // ------------------------------------------------------------------ accessors
  [[nodiscard]] SequenceState state() const noexcept { return state_; }
  [[nodiscard]] std::size_t prefill_position() const noexcept { return prefill_position_; }
  /// Tokens prefill must process: the prompt, or every token held at the last release().
  [[nodiscard]] std::size_t prefill_target() const noexcept { return target_; }
  [[nodiscard]] bool is_prefill_complete() const noexcept { return prefill_position_ >= target_; }
  [[nodiscard]] std::size_t kv_position() const noexcept { return kv_position_; }
  [[nodiscard]] std::size_t tail_tokens() const noexcept {
    return inner_.total_tokens() - kv_position_;
  }
  [[nodiscard]] std::size_t num_input_tokens() const noexcept { return inner_.num_input_tokens(); }
  [[nodiscard]] std::size_t total_tokens() const noexcept { return inner_.total_tokens(); }
  [[nodiscard]] std::size_t generated_tokens() const noexcept { return inner_.generated_tokens(); }
  [[nodiscard]] std::size_t max_output_tokens() const noexcept {
    return inner_.max_output_tokens();
  }
  [[nodiscard]] std::size_t remaining_tokens() const noexcept { return inner_.remaining_tokens(); }
  [[nodiscard]] std::size_t num_blocks() const noexcept { return inner_.num_blocks(); }
  [[nodiscard]] std::size_t assigned_blocks() const noexcept { return inner_.assigned_blocks(); }
  [[nodiscard]] std::size_t staged_blocks() const noexcept { return inner_.staged_blocks(); }
  [[nodiscard]] std::size_t unassigned_blocks() const noexcept {
    return inner_.unassigned_blocks();
  }
  [[nodiscard]] std::size_t num_held() const noexcept { return inner_.num_held(); }
  [[nodiscard]] std::size_t prefix_matched_blocks() const noexcept {
    return inner_.prefix_matched_blocks();
  }
  [[nodiscard]] std::size_t new_tokens_for_prefill() const noexcept {
    return inner_.new_tokens_for_prefill();
  }
  [[nodiscard]] std::uint32_t block_size() const noexcept { return inner_.block_size(); }
  [[nodiscard]] bool is_complete() const noexcept { return inner_.is_complete(); }
  [[nodiscard]] std::vector<BlockId> page_indices() const { return inner_.page_indices(); }
  [[nodiscard]] std::span<const std::uint32_t> tokens() const noexcept { return inner_.tokens(); }
  [[nodiscard]] std::span<const SequenceHash> sequence_hashes() const noexcept {
    return inner_.sequence_hashes();
  }
  [[nodiscard]] const HashKeys& hash_keys() const noexcept { return inner_.hash_keys(); }
  [[nodiscard]] const RequestSequence<Tier>& inner() const noexcept { return inner_; }

 private:
  SchedulableSequence(RequestSequence<Tier> inner, SequenceDelegate delegate)
      : inner_{std::move(inner)},
        delegate_{std::move(delegate)},
        target_{inner_.num_input_tokens()} {
    if (delegate_) {
      SequenceEvent event = make_event(SequenceEventKind::Created);
      event.num_tokens = inner_.num_input_tokens();
      delegate_(event);
    }
  }

  static SequenceEvent make_event(SequenceEventKind kind) {
    SequenceEvent event;
    event.kind = kind;
    return event;
  }

  void require_idle_to_schedule() const {
    if (state_.kind != SequenceStateKind::Idle) {
      throw ScheduleError(ScheduleErrorKind::NotIdle,
                          std::string(to_string(state_.kind)) + " is pending");
    }
  }
  void require_state(SequenceStateKind expected, const char* operation) const {
    if (state_.kind != expected) {
      throw ApplyError(ApplyErrorKind::WrongState,
                       std::string(operation) + " needs " + std::string(to_string(expected)) +
                           ", the sequence is " + std::string(to_string(state_.kind)));
    }
  }
  void require_decodable() const {
    require_idle_to_schedule();
    if (!is_prefill_complete()) {
      throw ScheduleError(ScheduleErrorKind::PrefillNotComplete,
                          "prefilled " + std::to_string(prefill_position_) + " of " +
                              std::to_string(target_) + " tokens");
    }
    if (inner_.is_complete()) {
      throw ScheduleError(ScheduleErrorKind::GenerationComplete,
                          std::to_string(inner_.generated_tokens()) + " of " +
                              std::to_string(inner_.max_output_tokens()) + " tokens generated");
    }
    if (tail_tokens() != 1) {
      throw ScheduleError(ScheduleErrorKind::WrongDanglingCount,
                          "expected 1 token without KV, have " + std::to_string(tail_tokens()));
    }
  }
  void check_manager(const BlockManager<Tier>& manager, const char* operation) const {
    inner_.check_manager(manager, operation);
  }

  // Allocates the blocks that KV for the first `tokens` tokens needs beyond those held. Throws
  // ScheduleError(AllocationFailed) with nothing taken. Returns the count allocated.
  std::size_t allocate_for(std::size_t tokens, BlockManager<Tier>& manager) {
    check_manager(manager, "schedule");
    const std::size_t need = inner_.blocks_for(tokens);
    const std::size_t held = inner_.num_held();
    if (need <= held) return 0;
    const std::size_t n = need - held;
    last_evicted_.clear();
    if (!inner_.allocate(n, manager, delegate_ ? &last_evicted_ : nullptr)) {
      throw ScheduleError(ScheduleErrorKind::AllocationFailed,
                          "needed " + std::to_string(n) + " blocks, " +
                              std::to_string(manager.available_blocks()) + " available",
                          n);
    }
    return n;
  }

  std::size_t register_computed(BlockManager<Tier>& manager) {
    const std::size_t complete = inner_.full_blocks(kv_position_);
    // Between block boundaries there is nothing to register (the common decode step).
    if (complete <= inner_.assigned_blocks() && inner_.staged_blocks() == 0) return 0;
    return inner_.complete_and_register_pending(manager, complete);
  }

  void emit_scheduled(SequenceEventKind kind, std::size_t tokens, std::size_t blocks) {
    if (!delegate_) return;
    SequenceEvent event = make_event(kind);
    event.num_tokens = tokens;
    event.blocks_allocated = blocks;
    if (blocks != 0) event.evicted = std::move(last_evicted_);
    last_evicted_.clear();
    delegate_(event);
  }

  [[nodiscard]] DecodeOutcome outcome(bool block_completed) const noexcept {
    const bool max_length = inner_.is_complete();
    if (block_completed) {
      return max_length ? DecodeOutcome::BlockCompletedAndMaxLength : DecodeOutcome::BlockCompleted;
    }
    return max_length ? DecodeOutcome::MaxLength : DecodeOutcome::Continue;
  }

  RequestSequence<Tier> inner_;
  SequenceDelegate delegate_;
  SequenceState state_{};
  std::size_t target_;
  std::size_t prefill_position_ = 0;
  std::size_t kv_position_ = 0;
  std::vector<SequenceHash> last_evicted_;
};

}  // namespace kvbm
