// kvbm/sequence_state.hpp — the vocabulary of kvbm::SchedulableSequence: its states, the outcome
// of a decode step, the events it reports to its delegate, and its two error types.
//
// Value types; no synchronisation. ScheduleError and ApplyError derive from kvbm::Error; a call
// that throws either has changed nothing (no block allocated or released, no reference taken,
// no position moved).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/errors.hpp"
#include "kvbm/sequence_hash.hpp"

namespace kvbm {

enum class SequenceStateKind : std::uint8_t {
  Idle,
  PrefillScheduled,
  DecodeScheduled,
  SpeculativeScheduled,
};

/// Where a SchedulableSequence is in its two-phase protocol. `num_tokens` is the scheduled chunk
/// (prefill) or draft count (speculative); `blocks_allocated` what the schedule call allocated
/// (what revert_schedule gives back). Both 0 when Idle.
struct SequenceState {
  SequenceStateKind kind = SequenceStateKind::Idle;
  std::size_t num_tokens = 0;
  std::size_t blocks_allocated = 0;
  friend bool operator==(const SequenceState&, const SequenceState&) = default;
};

/// What apply_decode / apply_speculative did: whether a block's KV became complete (and the block
/// was registered), and whether the sequence reached max_output_tokens.
enum class DecodeOutcome : std::uint8_t {
  Continue,
  BlockCompleted,
  MaxLength,
  BlockCompletedAndMaxLength,
};

enum class SequenceEventKind : std::uint8_t {
  Created,
  PrefixMatched,
  PrefillScheduled,
  PrefillApplied,
  DecodeScheduled,
  DecodeApplied,
  SpeculativeScheduled,
  SpeculativeApplied,
  ScheduleReverted,
  UnassignedDropped,
  Released,
  Reacquired,
};

/// One transition of a SchedulableSequence. Fields that do not apply to `kind` are zero/empty.
struct SequenceEvent {
  SequenceEventKind kind = SequenceEventKind::Created;
  /// Created: prompt tokens; PrefillScheduled/Applied: the chunk; SpeculativeScheduled: drafts;
  /// SpeculativeApplied: tokens accepted.
  std::size_t num_tokens = 0;
  std::size_t blocks_allocated = 0;   ///< *Scheduled, Reacquired
  std::size_t blocks_registered = 0;  ///< *Applied, Reacquired (always 0: KV must be recomputed)
  /// SpeculativeApplied, ScheduleReverted, UnassignedDropped, Released
  std::size_t blocks_released = 0;
  std::size_t blocks_matched = 0;     ///< PrefixMatched, Reacquired
  std::optional<std::uint32_t> token;  ///< PrefillApplied (final chunk), DecodeApplied
  bool success = true;                 ///< Reacquired
  /// Cached blocks the allocation of a *Scheduled or Reacquired event evicted, in eviction
  /// order (what a tiered cache offloads). Their slots are the last entries of page_indices().
  std::vector<SequenceHash> evicted;
};

/// Receives every SequenceEvent, on the thread that made the call, after the transition took
/// effect and with no kvbm lock held. It must not call back into the same sequence.
using SequenceDelegate = std::function<void(const SequenceEvent&)>;

enum class ScheduleErrorKind : std::uint8_t {
  NotIdle,             ///< a schedule_* or match while another operation is scheduled
  PrefillOverrun,      ///< the chunk would go past the tokens to prefill
  PrefillComplete,     ///< schedule_prefill with nothing left to prefill
  PrefillNotComplete,  ///< decode/speculative before prefill finished
  AllocationFailed,    ///< the manager could not supply needed() blocks; nothing was taken
  GenerationComplete,  ///< max_output_tokens already generated
  WrongDanglingCount,  ///< decode/speculative need exactly one token whose KV is not computed
};

enum class ApplyErrorKind : std::uint8_t {
  WrongState,                ///< the operation is not valid in the current state
  TokenOnNonFinalChunk,      ///< apply_prefill got a token on a chunk that does not end prefill
  MissingTokenOnFinalChunk,  ///< apply_prefill got no token on the chunk that ends prefill
  AcceptedExceedsScheduled,  ///< apply_speculative accepted more tokens than drafts scheduled
  AppendExceedsRemaining,    ///< appending would go past max_output_tokens
};

[[nodiscard]] std::string_view to_string(SequenceStateKind kind) noexcept;
[[nodiscard]] std::string_view to_string(ScheduleErrorKind kind) noexcept;
[[nodiscard]] std::string_view to_string(ApplyErrorKind kind) noexcept;
[[nodiscard]] std::string_view to_string(DecodeOutcome outcome) noexcept;
[[nodiscard]] std::string_view to_string(SequenceEventKind kind) noexcept;

/// A schedule_* call was refused; nothing changed.
class ScheduleError : public Error {
 public:
  ScheduleError(ScheduleErrorKind kind, const std::string& detail, std::size_t needed = 0);
  [[nodiscard]] ScheduleErrorKind kind() const noexcept { return kind_; }
  /// AllocationFailed: how many blocks the schedule needed (0 for other kinds).
  [[nodiscard]] std::size_t needed() const noexcept { return needed_; }

 private:
  ScheduleErrorKind kind_;
  std::size_t needed_;
};

/// An apply_*, revert, release, reacquire or append was refused; nothing changed.
class ApplyError : public Error {
 public:
  ApplyError(ApplyErrorKind kind, const std::string& detail);
  [[nodiscard]] ApplyErrorKind kind() const noexcept { return kind_; }

 private:
  ApplyErrorKind kind_;
};

}  // namespace kvbm
