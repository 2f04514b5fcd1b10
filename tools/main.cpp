// kvbm-replay — replays a Mooncake-format request trace through real kvbm BlockManagers.
// This file only parses flags; the replay itself lives in tools/replay/ (kvbm_replay library).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "kvbm/errors.hpp"
#include "kvbm/eviction.hpp"
#include "replay/policy.hpp"
#include "replay/report.hpp"
#include "replay/simulate.hpp"
#include "replay/trace.hpp"

#ifndef KVBM_REPLAY_DEFAULT_TRACE
#define KVBM_REPLAY_DEFAULT_TRACE "data/mooncake_conversation_sample.jsonl"
#endif

namespace {

using namespace kvbm::replay;

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
 public:
  ProgressBar(bool enabled, std::string label) : enabled_{enabled}, label_{std::move(label)} {}
  ~ProgressBar() {
    if (drawn_) std::fputs("\r\033[K", stderr);
  }
  ProgressFn callback() {
    if (!enabled_) return {};
    return [this](std::size_t done, std::size_t total) {
      constexpr int kWidth = 40;
      const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / total;
      const int filled = static_cast<int>(fraction * kWidth);
      std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu", label_.c_str(), filled,
                   "########################################", kWidth - filled, "", done, total);
      std::fflush(stderr);
      drawn_ = true;
    };
  }

 private:
  bool enabled_;
  std::string label_;
  bool drawn_ = false;
};

// The backend names, from the library's one list.
std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const kvbm::EvictionBackend backend : kvbm::all_eviction_backends()) {
    names.emplace_back(kvbm::to_string(backend));
  }
  return names;
}

ReplayReport run_one(const Trace& trace, const std::string& mode, const ReplayConfig& config,
                     bool progress) {
  ProgressBar bar(progress, mode + " " + std::string(to_string(config.policy)) + " " +
                                std::to_string(config.g1_blocks));
  return mode == "cache" ? run_cache_mode(trace, config, bar.callback())
                         : run_serve_mode(trace, config, bar.callback());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kvbm-replay: replay a Mooncake-format request trace through kvbm BlockManagers\n"
      "and report what the KV cache did (hit rates, prefill saved, queueing, evictions)."};
  std::string trace_path = KVBM_REPLAY_DEFAULT_TRACE;
  std::string mode = "serve";
  std::string g2_policy;
  ReplayConfig config;
  std::string policy{kvbm::to_string(config.policy)};  // the sweep winner, see docs/replay.md
  bool json = false;
  bool skip_bad_lines = false;
  bool no_progress = false;
  std::size_t max_requests = 0;
  bool sweep = false;
  std::vector<std::size_t> sweep_blocks{1024, 2048, 4096, 8192, 16384, 32768, 65536};
  const std::vector<std::string> backends = backend_names();
  std::vector<std::string> sweep_policies = backends;
  std::string csv_path;

  app.add_option("--trace", trace_path, "Mooncake JSON Lines trace")->capture_default_str();
  app.add_option("--mode", mode, "cache: sequential, exact; serve: serving-engine model")
      ->check(CLI::IsMember({"cache", "serve"}))
      ->capture_default_str();
  app.add_option("--blocks", config.g1_blocks, "G1 capacity in blocks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--policy", policy, "eviction backend")
      ->check(CLI::IsMember(backends))
      ->capture_default_str();
  app.add_option("--g2-blocks", config.g2_blocks, "G2 (host) capacity in blocks; 0: no G2 (serve)")
      ->capture_default_str();
  app.add_option("--g2-policy", g2_policy, "G2's eviction backend (default: --policy)")
      ->check(CLI::IsMember(backends));
  app.add_option("--block-size", config.block_size,
                 "tokens per kvbm block; a power of two dividing 512 (each trace block becomes "
                 "512/block-size kvbm blocks)")
      ->capture_default_str();
  app.add_option("--salt", config.salt, "salt of the block hashes")->capture_default_str();
  app.add_option("--prefill-rate", config.prefill_tokens_per_s,
                 "serve: prefill tokens per second per request")
      ->capture_default_str();
  app.add_option("--decode-rate", config.decode_tokens_per_s,
                 "serve: decode tokens per second per request")
      ->capture_default_str();
  app.add_option("--kv-bytes-per-token", config.kv_bytes_per_token,
                 "serve: KV bytes per token, for offload/onboard bytes")
      ->capture_default_str();
  app.add_option("--onboard-gbps", config.onboard_gb_per_s,
                 "serve: G2->G1 bandwidth in GB/s, charged to prefill (0: free)")
      ->capture_default_str();
  app.add_option("--copy-bytes-per-block", config.copy_bytes_per_block,
                 "serve with G2: real bytes per block moved through kvbm::TransferEngine (host "
                 "backend); 0: count only")
      ->capture_default_str();
  app.add_option("--max-requests", max_requests, "replay only the first N requests (0: all)");
  app.add_flag("--skip-bad-lines", skip_bad_lines,
               "skip malformed trace lines (counted in the report) instead of failing");
  app.add_flag("--json", json, "print one JSON object instead of the table");
  app.add_flag("--no-progress", no_progress, "no progress bar (it is off anyway off a terminal)");
  app.add_flag("--sweep", sweep, "replay every (policy, capacity) pair and write CSV");
  app.add_option("--sweep-blocks", sweep_blocks, "capacities for --sweep")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--sweep-policies", sweep_policies, "policies for --sweep")
      ->delimiter(',')
      ->check(CLI::IsMember(backends))
      ->capture_default_str();
  app.add_option("--csv", csv_path, "sweep CSV output file (default: stdout)");
  CLI11_PARSE(app, argc, argv);

  const bool progress = !no_progress && ::isatty(STDERR_FILENO) == 1;
  try {
    TraceOptions options;
    options.skip_bad_lines = skip_bad_lines;
    options.max_requests = max_requests;
    const Trace trace = load_trace(trace_path, options);
    if (!g2_policy.empty()) config.g2_policy = kvbm::parse_eviction_backend(g2_policy);
    if (mode == "cache" && config.g2_blocks != 0) {
      std::cerr << "kvbm-replay: note: --g2-blocks only applies to --mode serve; ignored\n";
    }
    if (trace.bad_lines != 0) {
      std::cerr << "kvbm-replay: skipped " << trace.bad_lines
                << " malformed line(s); first: " << trace.first_bad_line_error << '\n';
    }

    if (!sweep) {
      config.policy = kvbm::parse_eviction_backend(policy);
      const ReplayReport report = run_one(trace, mode, config, progress);
      if (json) {
        std::cout << to_json(report).dump(2) << '\n';
      } else {
        print_summary(std::cout, report);
      }
      return 0;
    }

    std::ofstream csv_file;
    if (!csv_path.empty()) {
      csv_file.open(csv_path);
      if (!csv_file) {
        std::cerr << "kvbm-replay: cannot write " << csv_path << '\n';
        return 1;
      }
    }
    // CSV goes to --csv, else to stdout unless stdout carries the JSON array.
    std::ostringstream discarded;
    std::ostream& csv = !csv_path.empty() ? csv_file
                        : json            ? static_cast<std::ostream&>(discarded)
                                          : std::cout;
    csv << csv_header() << '\n';
    nlohmann::json all = nlohmann::json::array();
    for (const auto& name : sweep_policies) {
      for (const std::size_t blocks : sweep_blocks) {
        ReplayConfig point = config;
        point.policy = kvbm::parse_eviction_backend(name);
        point.g1_blocks = blocks;
        ReplayReport report;
        try {
          report = run_one(trace, mode, point, progress);
        } catch (const kvbm::ConfigError& e) {
          std::cerr << "kvbm-replay: skipping policy " << name << ": " << e.what() << '\n';
          break;
        }
        csv << csv_row(report) << '\n' << std::flush;
        if (json) all.push_back(to_json(report));
        if (!csv_path.empty() && !json) {
          std::cout << std::left << std::setw(10) << name << std::right << std::setw(8) << blocks
                    << " blocks  hit rate " << std::fixed << std::setprecision(2)
                    << 100.0 * report.total_hit_rate() << " %  evictions " << report.g1.evictions
                    << '\n';
        }
      }
    }
    if (json) std::cout << all.dump(2) << '\n';
    return 0;
  } catch (const TraceError& e) {
    std::cerr << "kvbm-replay: " << trace_path << ": " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kvbm-replay: " << e.what() << '\n';
    return 1;
  }
}
