#include "replay/cli_run.hpp"

#include <filesystem>
#include <iomanip>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <system_error>

#include "kvbm/errors.hpp"
#include "replay/atomic_file.hpp"
#include "replay/checked.hpp"
#include "replay/cli_options.hpp"
#include "replay/profile.hpp"
#include "replay/report.hpp"
#include "replay/simulate.hpp"
#include "replay/trace.hpp"

namespace kvbm::replay {

namespace {

// A one-line progress bar, drawn only when the error stream is a terminal.
class ProgressBar {
 public:
  ProgressBar(std::ostream* os, std::string label) : os_{os}, label_{std::move(label)} {}
  ~ProgressBar() {
    if (drawn_) *os_ << "\r\033[K" << std::flush;
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  ProgressFn callback() {
    if (os_ == nullptr) return {};
    return [this](std::size_t done, std::size_t total) {
      constexpr int kWidth = 40;
      const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / total;
      const int filled = static_cast<int>(fraction * kWidth);
      *os_ << '\r' << label_ << " [" << std::string(filled, '#')
           << std::string(kWidth - filled, ' ') << "] " << done << '/' << total << std::flush;
      drawn_ = true;
    };
  }

 private:
  std::ostream* os_;
  std::string label_;
  bool drawn_ = false;
};

ReplayReport run_one(const Trace& trace, const std::string& mode, const ReplayConfig& config,
                     std::ostream* progress) {
  ProgressBar bar(progress, mode + " " + std::string(to_string(config.policy)) + " " +
                                std::to_string(config.g1_blocks));
  return mode == "cache" ? run_cache_mode(trace, config, bar.callback())
                         : run_serve_mode(trace, config, bar.callback());
}

Trace load(const CliOptions& o) {
  std::error_code ec;
  if (std::filesystem::is_directory(o.trace_path, ec)) {
    throw TraceError(0, "'" + o.trace_path + "' is a directory, not a trace file");
  }
  TraceOptions options;
  options.skip_bad_lines = o.skip_bad_lines;
  options.max_requests = o.max_requests;
  return load_trace(o.trace_path, options);
}

// The run's whole stdout, written at once; a failed write (a full disk, a closed pipe) is an
// error, not a silent success.
int print(std::ostream& out, const std::string& text) {
  out << text << std::flush;
  if (!out) throw OutputError("cannot write the result to standard output");
  return static_cast<int>(ExitCode::Success);
}

int replay(const CliOptions& o, std::ostream& out, std::ostream& err, std::ostream* progress) {
  // Opened before any work: an unwritable --csv fails now, not after a long sweep.
  std::optional<AtomicFile> csv_file;
  if (o.sweep && !o.csv_path.empty()) {
    std::error_code ec;
    if (std::filesystem::equivalent(o.csv_path, o.trace_path, ec)) {
      throw UsageError("--csv: " + o.csv_path + " is the --trace file");
    }
    try {
      csv_file.emplace(o.csv_path);
    } catch (const OutputError& e) {
      throw UsageError(std::string("--csv: ") + e.what());
    }
  }
  std::optional<AtomicFile> profile_file;
  if (!o.profile_path.empty()) {
    std::error_code ec;
    if (std::filesystem::equivalent(o.profile_path, o.trace_path, ec)) {
      throw UsageError("--profile: " + o.profile_path + " is the --trace file");
    }
    try {
      profile_file.emplace(o.profile_path);
    } catch (const OutputError& e) {
      throw UsageError(std::string("--profile: ") + e.what());
    }
  }
  const Trace trace = load(o);
  // Started after the trace is read: the profile covers the replay through kvbm only.
  std::optional<ProfileSession> profile;
  if (profile_file) {
    try {
      profile.emplace();
    } catch (const ProfileError& e) {
      throw UsageError(e.what());
    }
  }
  // The profile is written only once the whole run has succeeded, like stdout.
  const auto finish_profile = [&] {
    if (!profile) return;
    const std::vector<ProfileEvent> events = profile->take_events();
    write_chrome_trace(profile_file->stream(), events);
    profile_file->commit();
    err << "kvbm-replay: profile: " << events.size() << " kvbm ranges written to "
        << o.profile_path << '\n';
    print_range_totals(err, range_totals(events));
  };
  if (trace.bad_lines != 0) {
    err << "kvbm-replay: skipped " << trace.bad_lines
        << " malformed line(s); first: " << trace.first_bad_line_error << '\n';
  }

  std::ostringstream stdout_text;  // printed only when everything succeeded
  if (!o.sweep) {
    ReplayReport report;
    ReplayConfig config = o.config;
    ReplayKvEvents events(o.kv_events, config);  // --kv-events, --cache-dump
    try {
      report = run_one(trace, o.mode, config, progress);
    } catch (const ConfigError& e) {
      throw UsageError(std::string("--policy: ") + e.what());
    }
    events.finish(report);
    if (o.json) {
      stdout_text << to_json(report).dump(2) << '\n';
    } else {
      print_summary(stdout_text, report);
    }
    finish_profile();
    const int status = print(out, stdout_text.str());
    events.linger();  // late subscribers may still replay or ask for a snapshot
    return status;
  }
  if (o.kv_events.any()) throw UsageError("--kv-events and --cache-dump do not apply to --sweep");

  // CSV goes to --csv, else to stdout unless stdout carries the JSON array.
  std::ostringstream csv_text;
  csv_text << csv_header() << '\n';
  nlohmann::json all = nlohmann::json::array();
  for (const Policy policy : o.sweep_policies) {
    for (const std::size_t blocks : o.sweep_blocks) {
      ReplayConfig point = o.config;
      point.policy = policy;
      point.g1_blocks = blocks;
      ReplayReport report;
      try {
        report = run_one(trace, o.mode, point, progress);
      } catch (const ConfigError& e) {
        if (o.sweep_policies_given) {
          throw UsageError(std::string("--sweep-policies: ") + std::string(to_string(policy)) +
                           ": " + e.what());
        }
        err << "kvbm-replay: skipping policy " << to_string(policy) << ": " << e.what() << '\n';
        break;
      }
      csv_text << csv_row(report) << '\n';
      if (o.json) all.push_back(to_json(report));
      if (csv_file && !o.json) {
        stdout_text << std::left << std::setw(10) << to_string(policy) << std::right
                    << std::setw(8) << blocks << " blocks  hit rate " << std::fixed
                    << std::setprecision(2) << 100.0 * report.total_hit_rate()
                    << " %  evictions " << report.g1.evictions << '\n';
      }
    }
  }
  if (o.json) stdout_text << all.dump(2) << '\n';
  if (csv_file) {
    csv_file->stream() << csv_text.str();
    csv_file->commit();
  } else if (!o.json) {
    stdout_text << csv_text.str();
  }
  finish_profile();
  return print(out, stdout_text.str());
}

}  // namespace

int run_replay_cli(std::span<const std::string> args, std::ostream& out, std::ostream& err,
                   const CliEnvironment& environment) {
  std::string trace_path = environment.default_trace;
  try {
    ParsedCommandLine parsed = parse_command_line(args, environment.default_trace);
    if (parsed.help) {
      out << parsed.help_text << std::flush;
      return static_cast<int>(ExitCode::Success);
    }
    const CliOptions& o = parsed.options;
    trace_path = o.trace_path;
    for (const std::string& note : o.notes) err << "kvbm-replay: note: " << note << '\n';
    const bool progress = environment.progress_terminal && !o.no_progress;
    return replay(o, out, err, progress ? &err : nullptr);
  } catch (const UsageError& e) {
    err << "kvbm-replay: " << e.what() << "\nRun with --help for the flags.\n";
    return static_cast<int>(ExitCode::Usage);
  } catch (const TraceError& e) {
    err << "kvbm-replay: " << trace_path << ": " << e.what() << '\n';
    return static_cast<int>(ExitCode::BadInput);
  } catch (const OverflowError& e) {
    err << "kvbm-replay: " << trace_path << ": " << e.what() << '\n';
    return static_cast<int>(ExitCode::BadInput);
  } catch (const std::bad_alloc&) {
    err << "kvbm-replay: out of memory (try smaller --blocks, --g2-blocks or "
           "--copy-bytes-per-block)\n";
    return static_cast<int>(ExitCode::Failure);
  } catch (const std::exception& e) {
    err << "kvbm-replay: " << e.what() << '\n';
    return static_cast<int>(ExitCode::Failure);
  }
}

}  // namespace kvbm::replay
