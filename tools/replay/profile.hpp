// tools/replay/profile.hpp — kvbm-replay --profile: kvbm's NVTX ranges recorded without Nsight.
//
// kvbm marks its public operations with NVTX ranges in the "kvbm" domain (kvbm/nvtx.hpp). NVTX
// hands every range to whichever tool attached at the process's first NVTX call; Nsight Systems
// attaches through NVTX_INJECTION64_PATH. This collector attaches as a *static* injection (NVTX's
// weak symbol InitializeInjectionNvtx2_fnptr, defined in profile.cpp), which NVTX consults only
// when no dynamic tool is named, so nsys always wins and --profile then refuses to start.
//
// Cost when off: at NVTX's first call the collector declines (returns 0), and NVTX patches every
// entry point to its no-op, exactly as with no tool at all; nothing is recorded or checked later.
// Process-wide state is unavoidable here (NVTX's attachment is process-wide): at most one
// ProfileSession at a time, and it must start before kvbm's first range in the process.
// Threads: ranges may be pushed and popped on any thread (per-thread stacks and buffers; a
// thread's own buffer lock is uncontended). take_events() may run while ranges are still open
// on other threads: those are left out. Complexity: O(1) per range, O(n log n) totals.
#pragma once

#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvbm::replay {

/// --profile cannot start (built without NVTX, another NVTX tool attached, started too late).
class ProfileError : public std::runtime_error {
 public:
  explicit ProfileError(const std::string& what) : std::runtime_error(what) {}
};

/// One closed range: the name NVTX was given, its thread (dense ids in order of first range),
/// start and duration in nanoseconds since the session began, and its payload (a count) if any.
struct ProfileEvent {
  std::string name;
  std::uint32_t thread = 0;
  std::uint64_t start_ns = 0;
  std::uint64_t duration_ns = 0;
  bool has_count = false;
  std::uint64_t count = 0;
};

/// Per-range totals; durations are inclusive (a nested range's time counts in its parent's too).
struct RangeTotals {
  std::string name;
  std::uint64_t calls = 0;
  std::uint64_t total_ns = 0;
  std::uint64_t p50_ns = 0;  ///< nearest rank
  std::uint64_t p99_ns = 0;  ///< nearest rank
};

/// Whether this build has NVTX ranges to record (KVBM_NVTX on and NVTX3's headers found).
[[nodiscard]] bool profile_available() noexcept;

/// Records kvbm-domain ranges from construction until destruction. Not copyable or movable.
class ProfileSession {
 public:
  /// Attaches now (forcing NVTX's initialisation). Throws ProfileError when profile_available()
  /// is false, when another session exists, or when NVTX already initialised without the
  /// collector (an earlier kvbm range, or a tool named in NVTX_INJECTION64_PATH).
  ProfileSession();
  ~ProfileSession();
  ProfileSession(const ProfileSession&) = delete;
  ProfileSession& operator=(const ProfileSession&) = delete;

  /// Moves out every range closed so far, ordered by start time.
  [[nodiscard]] std::vector<ProfileEvent> take_events();
};

/// Writes `events` as Chrome trace-event JSON (the "JSON Object Format": complete "X" events in
/// microseconds, one track per thread), which Perfetto and chrome://tracing open.
void write_chrome_trace(std::ostream& out, const std::vector<ProfileEvent>& events);

/// Totals per range name, largest total first.
[[nodiscard]] std::vector<RangeTotals> range_totals(const std::vector<ProfileEvent>& events);

/// A fixed-width table of `totals` (milliseconds total, microseconds p50/p99).
void print_range_totals(std::ostream& out, const std::vector<RangeTotals>& totals);

}  // namespace kvbm::replay
