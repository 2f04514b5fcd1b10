// kvbm-replay — replays a Mooncake-format request trace through real kvbm BlockManagers.
// Flags are declared and validated in tools/replay/cli_options.cpp, the program itself is
// tools/replay/cli_run.cpp (so the tests can run it in-process); this file only hands it argv.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "replay/cli_run.hpp"

#ifndef KVBM_REPLAY_DEFAULT_TRACE
#define KVBM_REPLAY_DEFAULT_TRACE "data/mooncake_conversation_sample.jsonl"
#endif

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv, argv + argc);
  kvbm::replay::CliEnvironment environment;
  environment.default_trace = KVBM_REPLAY_DEFAULT_TRACE;
  environment.progress_terminal = ::isatty(STDERR_FILENO) == 1;
  return kvbm::replay::run_replay_cli(args, std::cout, std::cerr, environment);
}
