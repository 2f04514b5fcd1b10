// tools/replay/cli_run.hpp — kvbm-replay's main program as a library call.
//
// run_replay_cli(args, out, err) does everything the executable does: parse and validate the
// flags (parse_command_line), open the --csv output (AtomicFile) and the trace, replay, and print
// the result on `out`. Stdout output is assembled in memory and printed only once the run has
// succeeded, so a failed run prints nothing there; errors and notes go to `err`, one line each,
// naming the flag or the trace line. Returns the ExitCode as an int; never throws.
// The tests call this directly; tools/main.cpp is a thin wrapper.
#pragma once

#include <ostream>
#include <span>
#include <string>

namespace kvbm::replay {

struct CliEnvironment {
  std::string default_trace;       ///< --trace's default
  bool progress_terminal = false;  ///< `err` is a terminal: draw a progress bar
};

[[nodiscard]] int run_replay_cli(std::span<const std::string> args, std::ostream& out,
                                 std::ostream& err, const CliEnvironment& environment);

}  // namespace kvbm::replay
