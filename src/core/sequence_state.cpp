#include "kvbm/sequence_state.hpp"

#include <string>

namespace kvbm {

std::string_view to_string(SequenceStateKind kind) noexcept {
  switch (kind) {
    case SequenceStateKind::Idle: return "Idle";
    case SequenceStateKind::PrefillScheduled: return "PrefillScheduled";
    case SequenceStateKind::DecodeScheduled: return "DecodeScheduled";
    case SequenceStateKind::SpeculativeScheduled: return "SpeculativeScheduled";
  }
  return "?";
}

std::string_view to_string(ScheduleErrorKind kind) noexcept {
  switch (kind) {
    case ScheduleErrorKind::NotIdle: return "NotIdle";
    case ScheduleErrorKind::PrefillOverrun: return "PrefillOverrun";
    case ScheduleErrorKind::PrefillComplete: return "PrefillComplete";
    case ScheduleErrorKind::PrefillNotComplete: return "PrefillNotComplete";
    case ScheduleErrorKind::AllocationFailed: return "AllocationFailed";
    case ScheduleErrorKind::GenerationComplete: return "GenerationComplete";
    case ScheduleErrorKind::WrongDanglingCount: return "WrongDanglingCount";
  }
  return "?";
}

std::string_view to_string(ApplyErrorKind kind) noexcept {
  switch (kind) {
    case ApplyErrorKind::WrongState: return "WrongState";
    case ApplyErrorKind::TokenOnNonFinalChunk: return "TokenOnNonFinalChunk";
    case ApplyErrorKind::MissingTokenOnFinalChunk: return "MissingTokenOnFinalChunk";
    case ApplyErrorKind::AcceptedExceedsScheduled: return "AcceptedExceedsScheduled";
    case ApplyErrorKind::AppendExceedsRemaining: return "AppendExceedsRemaining";
  }
  return "?";
}

std::string_view to_string(DecodeOutcome outcome) noexcept {
  switch (outcome) {
    case DecodeOutcome::Continue: return "Continue";
    case DecodeOutcome::BlockCompleted: return "BlockCompleted";
    case DecodeOutcome::MaxLength: return "MaxLength";
    case DecodeOutcome::BlockCompletedAndMaxLength: return "BlockCompletedAndMaxLength";
  }
  return "?";
}

std::string_view to_string(SequenceEventKind kind) noexcept {
  switch (kind) {
    case SequenceEventKind::Created: return "Created";
    case SequenceEventKind::PrefixMatched: return "PrefixMatched";
    case SequenceEventKind::PrefillScheduled: return "PrefillScheduled";
    case SequenceEventKind::PrefillApplied: return "PrefillApplied";
    case SequenceEventKind::DecodeScheduled: return "DecodeScheduled";
    case SequenceEventKind::DecodeApplied: return "DecodeApplied";
    case SequenceEventKind::SpeculativeScheduled: return "SpeculativeScheduled";
    case SequenceEventKind::SpeculativeApplied: return "SpeculativeApplied";
    case SequenceEventKind::ScheduleReverted: return "ScheduleReverted";
    case SequenceEventKind::UnassignedDropped: return "UnassignedDropped";
    case SequenceEventKind::Released: return "Released";
    case SequenceEventKind::Reacquired: return "Reacquired";
  }
  return "?";
}

ScheduleError::ScheduleError(ScheduleErrorKind kind, const std::string& detail, std::size_t needed)
    : Error("schedule refused (" + std::string(to_string(kind)) + "): " + detail),
      kind_{kind},
      needed_{needed} {}

ApplyError::ApplyError(ApplyErrorKind kind, const std::string& detail)
    : Error("apply refused (" + std::string(to_string(kind)) + "): " + detail), kind_{kind} {}

}  // namespace kvbm
