// tools/replay/cli_options.hpp — kvbm-replay's command line: every flag, parsed and validated.
//
// parse_command_line() is the only place flags are declared. It checks every value before the
// replay does any work (numbers parsed strictly, floats finite and in range, sizes whose products
// fit, cross-flag rules) and throws UsageError whose message names the offending flag. CLI11's
// own errors (unknown flag, missing value, ...) become UsageError too, so a usage mistake always
// exits with ExitCode::Usage. To add a flag: a field in CliOptions, an add_option in
// cli_options.cpp, and its check in validate() there.
// Value types and pure functions; no global state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "replay/policy.hpp"
#include "replay/simulate.hpp"
#include "replay/kv_events_cli.hpp"

namespace kvbm::replay {

/// kvbm-replay's exit statuses (documented in docs/replay.md).
enum class ExitCode : int {
  Success = 0,   ///< replay done, output written (also --help)
  Usage = 1,     ///< bad command line: unknown flag, bad or out-of-range value, conflicting flags
  BadInput = 2,  ///< the trace cannot be read or a line is malformed (and not skipped)
  Failure = 3,   ///< anything else: out of memory, output not writable at the end, internal error
};

/// A command-line mistake; the message names the flag (ExitCode::Usage).
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

/// Largest --blocks / --g2-blocks / --sweep-blocks value: 2^26 slots (~67M, several GB of
/// manager state). The replayed traces need at most ~130K.
inline constexpr std::size_t kMaxPoolBlocks = std::size_t{1} << 26;
/// Largest --kv-bytes-per-token (1 GiB per token: no model comes close).
inline constexpr std::uint64_t kMaxKvBytesPerToken = std::uint64_t{1} << 30;
/// Largest total of the two host payload buffers (--copy-bytes-per-block x (G1 + G2 blocks)).
inline constexpr std::uint64_t kMaxPayloadBytes = std::uint64_t{1} << 34;
/// --prefill-rate and --decode-rate: tokens per second in [kMinRate, kMaxRate].
inline constexpr double kMinRate = 1e-3;
inline constexpr double kMaxRate = 1e12;
/// --onboard-gbps: 0 (free), or in [kMinGbps, kMaxGbps].
inline constexpr double kMinGbps = 1e-6;
inline constexpr double kMaxGbps = 1e6;

struct CliOptions {
  std::string trace_path;
  std::string mode = "serve";  ///< "cache" or "serve"
  ReplayConfig config;
  bool json = false;
  bool skip_bad_lines = false;
  bool no_progress = false;
  std::size_t max_requests = 0;  ///< 0: all
  bool sweep = false;
  std::vector<std::size_t> sweep_blocks{1024, 2048, 4096, 8192, 16384, 32768, 65536};
  std::vector<Policy> sweep_policies;  ///< default: every backend
  bool sweep_policies_given = false;   ///< named on the command line (so none may be skipped)
  std::string csv_path;                ///< empty: the sweep CSV goes to stdout
  std::string profile_path;            ///< --profile: trace-event JSON of kvbm's ranges; empty: off
  std::vector<std::string> notes;      ///< harmless oddities worth a line on stderr
  KvEventsOptions kv_events;           ///< --kv-events* and --cache-dump (kv_events_cli.hpp)
};

/// What the command line asks for: a replay, or only the help text.
struct ParsedCommandLine {
  bool help = false;
  std::string help_text;  ///< set when help
  CliOptions options;
};

/// Parses and validates `args` (args[0] is the program name). `default_trace` is --trace's
/// default. Throws UsageError naming the flag for any mistake; never starts a replay.
[[nodiscard]] ParsedCommandLine parse_command_line(std::span<const std::string> args,
                                                   const std::string& default_trace);

/// The flag checks alone (parse_command_line runs them): throws UsageError naming the flag.
/// Exposed so tests and library callers can validate a CliOptions they built themselves.
void validate(CliOptions& options);

}  // namespace kvbm::replay
