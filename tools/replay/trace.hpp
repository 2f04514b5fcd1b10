// tools/replay/trace.hpp — Mooncake-format request traces (JSON Lines).
//
// One request per line: {"timestamp": ms, "input_length": tokens, "output_length": tokens,
// "hash_ids": [one id per trace block of the prompt]}. Equal ids mean equal prefixes.
// Parsing is strict: a malformed line (bad JSON, a number that overflows such as 1e999, a missing,
// negative, fractional or too large field) throws TraceError naming its 1-based line number, unless
// the caller asks to skip bad lines, in which case they are counted in Trace::bad_lines.
// Blank lines are not requests and are ignored. Value types; no synchronisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvbm::replay {

/// Tokens per hash id in the Mooncake traces.
inline constexpr std::uint32_t kTraceBlockSize = 512;
/// Largest accepted timestamp (ms): 2^53, beyond which a double no longer counts milliseconds.
inline constexpr double kMaxTimestampMs = 9007199254740992.0;

struct TraceRequest {
  double timestamp_ms = 0;
  std::uint32_t input_length = 0;
  std::uint32_t output_length = 0;
  std::vector<std::uint64_t> hash_ids;
  std::size_t line = 0;  ///< 1-based line number in the source
};

struct Trace {
  std::vector<TraceRequest> requests;
  std::size_t bad_lines = 0;         ///< malformed lines skipped (only with skip_bad_lines)
  std::size_t first_bad_line = 0;    ///< 1-based, 0 when none
  std::string first_bad_line_error;  ///< why the first skipped line was rejected
};

/// A malformed trace line (or an unreadable file when line() == 0).
class TraceError : public std::runtime_error {
 public:
  TraceError(std::size_t line, const std::string& what)
      : std::runtime_error(line == 0 ? what : "line " + std::to_string(line) + ": " + what),
        line_{line} {}
  [[nodiscard]] std::size_t line() const noexcept { return line_; }

 private:
  std::size_t line_;
};

struct TraceOptions {
  bool skip_bad_lines = false;
  std::size_t max_requests = 0;  ///< stop after this many requests (0: all)
};

/// Parses one line; throws TraceError(line_number, ...) if it is not a valid request.
[[nodiscard]] TraceRequest parse_trace_line(const std::string& text, std::size_t line_number);
[[nodiscard]] Trace parse_trace(std::istream& in, const TraceOptions& options = {});
/// Throws TraceError(0, ...) if the file cannot be opened.
[[nodiscard]] Trace load_trace(const std::string& path, const TraceOptions& options = {});

}  // namespace kvbm::replay
