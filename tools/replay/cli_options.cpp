#include "replay/cli_options.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <sstream>
#include <system_error>
#include <utility>

#include "kvbm/eviction.hpp"
#include "replay/checked.hpp"
#include "replay/profile.hpp"

namespace kvbm::replay {

namespace {

// Numbers are taken as text and parsed here rather than by CLI11, so every flag gets the same
// strict rules (plain decimal, nothing before or after, no sign on unsigned values, finite
// floats) and an error that names it. CLI11's own checks print the double range of the type.
std::uint64_t parse_unsigned(const std::string& flag, const std::string& text, std::uint64_t min,
                             std::uint64_t max) {
  std::uint64_t value = 0;
  const char* const end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec == std::errc::invalid_argument || ptr != end) {
    throw UsageError(flag + ": '" + text + "' is not a non-negative integer");
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) {
    throw UsageError(flag + ": " + text + " is out of range [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
  }
  return value;
}

std::string format_double(double value) {
  std::ostringstream os;
  os << value;
  return os.str();
}

// `allow_zero`: 0 is accepted as an "off" value below `min`.
double parse_double(const std::string& flag, const std::string& text, double min, double max,
                    bool allow_zero = false) {
  double value = 0;
  const char* const end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec == std::errc::invalid_argument || ptr != end) {
    throw UsageError(flag + ": '" + text + "' is not a number");
  }
  if (ec == std::errc::result_out_of_range || !std::isfinite(value)) {
    throw UsageError(flag + ": '" + text + "' is not a finite number");
  }
  if (allow_zero && value == 0) return 0;
  if (value < min || value > max) {
    throw UsageError(flag + ": " + text + " is out of range [" + format_double(min) + ", " +
                     format_double(max) + "]" + (allow_zero ? " (or 0)" : ""));
  }
  return value;
}

Policy parse_policy(const std::string& flag, const std::string& text) {
  for (const Policy policy : all_eviction_backends()) {
    if (to_string(policy) == text) return policy;
  }
  std::string names;
  for (const Policy policy : all_eviction_backends()) {
    names += (names.empty() ? "" : ", ") + std::string(to_string(policy));
  }
  throw UsageError(flag + ": unknown policy '" + text + "' (one of: " + names + ")");
}

// The raw text of every valued flag, as CLI11 collected it.
struct RawFlags {
  std::string blocks, g2_blocks, g2_policy, policy, block_size, salt, prefill_rate, decode_rate,
      kv_bytes_per_token, onboard_gbps, copy_bytes_per_block, max_requests;
  std::vector<std::string> sweep_blocks, sweep_policies;
  std::string max_prefill_tokens = "0", match_cap = "none";
  bool no_decode_reserve = false;
};

std::string join(const std::vector<std::size_t>& values) {
  std::string out;
  for (const std::size_t v : values) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

}  // namespace

void validate(CliOptions& o) {
  if (o.trace_path.empty()) throw UsageError("--trace: empty path");
  if (!o.profile_path.empty()) {
    if (!profile_available()) {
      throw UsageError("--profile: this build has no NVTX ranges (KVBM_NVTX is off or NVTX3's "
                       "headers were not found)");
    }
    if (o.profile_path == o.trace_path) throw UsageError("--profile: names the --trace file");
    if (o.sweep && o.profile_path == o.csv_path) {
      throw UsageError("--profile: names the --csv file");
    }
  }
  if (o.mode != "cache" && o.mode != "serve") {
    throw UsageError("--mode: '" + o.mode + "' is not one of: cache, serve");
  }
  ReplayConfig& c = o.config;
  const auto check_blocks = [](const char* flag, std::size_t blocks, std::size_t min) {
    if (blocks < min || blocks > kMaxPoolBlocks) {
      throw UsageError(std::string(flag) + ": " + std::to_string(blocks) + " is out of range [" +
                       std::to_string(min) + ", " + std::to_string(kMaxPoolBlocks) + "]");
    }
  };
  check_blocks("--blocks", c.g1_blocks, 1);
  check_blocks("--g2-blocks", c.g2_blocks, 0);
  if (c.block_size == 0 || (c.block_size & (c.block_size - 1)) != 0 ||
      kTraceBlockSize % c.block_size != 0) {
    throw UsageError("--block-size: " + std::to_string(c.block_size) +
                     " is not a power of two dividing " + std::to_string(kTraceBlockSize));
  }
  const auto check_rate = [](const char* flag, double rate) {
    if (!std::isfinite(rate) || rate < kMinRate || rate > kMaxRate) {
      throw UsageError(std::string(flag) + ": " + format_double(rate) + " is out of range [" +
                       format_double(kMinRate) + ", " + format_double(kMaxRate) + "]");
    }
  };
  check_rate("--prefill-rate", c.prefill_tokens_per_s);
  check_rate("--decode-rate", c.decode_tokens_per_s);
  if (!std::isfinite(c.onboard_gb_per_s) ||
      (c.onboard_gb_per_s != 0 &&
       (c.onboard_gb_per_s < kMinGbps || c.onboard_gb_per_s > kMaxGbps))) {
    throw UsageError("--onboard-gbps: " + format_double(c.onboard_gb_per_s) +
                     " is out of range [" + format_double(kMinGbps) + ", " +
                     format_double(kMaxGbps) + "] (or 0)");
  }
  if (c.kv_bytes_per_token > kMaxKvBytesPerToken) {
    throw UsageError("--kv-bytes-per-token: " + std::to_string(c.kv_bytes_per_token) +
                     " is out of range [0, " + std::to_string(kMaxKvBytesPerToken) + "]");
  }

  if (o.sweep) {
    if (o.sweep_blocks.empty()) throw UsageError("--sweep-blocks: no capacities given");
    for (const std::size_t blocks : o.sweep_blocks) check_blocks("--sweep-blocks", blocks, 1);
    auto sorted = o.sweep_blocks;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      throw UsageError("--sweep-blocks: a capacity is listed twice (" + join(o.sweep_blocks) +
                       ")");
    }
    if (o.sweep_policies.empty()) throw UsageError("--sweep-policies: no policies given");
    auto policies = o.sweep_policies;
    std::sort(policies.begin(), policies.end());
    if (std::adjacent_find(policies.begin(), policies.end()) != policies.end()) {
      throw UsageError("--sweep-policies: a policy is listed twice");
    }
  }

  // Serve mode with a G2 tier allocates (G1 + G2 blocks) x --copy-bytes-per-block of host
  // payload; the product must fit and stay within kMaxPayloadBytes for every G1 size it runs.
  if (o.mode == "serve" && c.g2_blocks != 0 && c.copy_bytes_per_block != 0) {
    const std::size_t g1_max =
        o.sweep ? *std::max_element(o.sweep_blocks.begin(), o.sweep_blocks.end()) : c.g1_blocks;
    const auto slots = checked_add<std::uint64_t>(g1_max, c.g2_blocks);
    const auto bytes =
        slots ? checked_mul<std::uint64_t>(*slots, c.copy_bytes_per_block) : std::nullopt;
    if (!bytes || *bytes > kMaxPayloadBytes) {
      throw UsageError("--copy-bytes-per-block: " + std::to_string(c.copy_bytes_per_block) +
                       " bytes x (" + std::to_string(g1_max) + " G1 + " +
                       std::to_string(c.g2_blocks) + " G2 blocks) exceeds the " +
                       std::to_string(kMaxPayloadBytes) + "-byte payload limit");
    }
  }
}

ParsedCommandLine parse_command_line(std::span<const std::string> args,
                                     const std::string& default_trace) {
  CLI::App app{
      "kvbm-replay: replay a Mooncake-format request trace through kvbm BlockManagers\n"
      "and report what the KV cache did (hit rates, prefill saved, queueing, evictions).\n"
      "Exit status: 0 success, 1 usage error, 2 bad trace, 3 other failure.",
      "kvbm-replay"};
  ParsedCommandLine parsed;
  CliOptions& o = parsed.options;
  o.trace_path = default_trace;
  const ReplayConfig defaults;
  RawFlags raw;
  raw.policy = std::string(to_string(defaults.policy));  // the sweep winner, see docs/replay.md
  raw.blocks = std::to_string(defaults.g1_blocks);
  raw.g2_blocks = std::to_string(defaults.g2_blocks);
  raw.block_size = std::to_string(defaults.block_size);
  raw.salt = std::to_string(defaults.salt);
  raw.prefill_rate = format_double(defaults.prefill_tokens_per_s);
  raw.decode_rate = format_double(defaults.decode_tokens_per_s);
  raw.kv_bytes_per_token = std::to_string(defaults.kv_bytes_per_token);
  raw.onboard_gbps = format_double(defaults.onboard_gb_per_s);
  raw.copy_bytes_per_block = std::to_string(defaults.copy_bytes_per_block);
  raw.max_requests = "0";
  for (const std::size_t blocks : o.sweep_blocks) {
    raw.sweep_blocks.push_back(std::to_string(blocks));
  }
  for (const Policy policy : all_eviction_backends()) {
    raw.sweep_policies.emplace_back(to_string(policy));
  }

  app.add_option("--trace", o.trace_path, "Mooncake JSON Lines trace")->capture_default_str();
  app.add_option("--mode", o.mode, "cache: sequential, exact; serve: serving-engine model")
      ->capture_default_str();
  app.add_option("--blocks", raw.blocks, "G1 capacity in blocks")->capture_default_str();
  app.add_option("--policy", raw.policy, "eviction backend: lru, fifo, multi-lru, lineage")
      ->capture_default_str();
  app.add_option("--g2-blocks", raw.g2_blocks, "G2 (host) capacity in blocks; 0: no G2 (serve)")
      ->capture_default_str();
  app.add_option("--g2-policy", raw.g2_policy, "G2's eviction backend (default: --policy)");
  app.add_option("--block-size", raw.block_size,
                 "tokens per kvbm block; a power of two dividing 512 (each trace block becomes "
                 "512/block-size kvbm blocks)")
      ->capture_default_str();
  app.add_option("--salt", raw.salt, "salt of the block hashes")->capture_default_str();
  app.add_option("--prefill-rate", raw.prefill_rate,
                 "serve: prefill tokens per second per request")
      ->capture_default_str();
  app.add_option("--decode-rate", raw.decode_rate, "serve: decode tokens per second per request")
      ->capture_default_str();
  app.add_option("--kv-bytes-per-token", raw.kv_bytes_per_token,
                 "serve: KV bytes per token, for offload/onboard bytes")
      ->capture_default_str();
  app.add_option("--onboard-gbps", raw.onboard_gbps,
                 "serve: G2->G1 bandwidth in GB/s, charged to prefill (0: free)")
      ->capture_default_str();
  app.add_option("--copy-bytes-per-block", raw.copy_bytes_per_block,
                 "serve with G2: real bytes per block moved through kvbm::TransferEngine (host "
                 "backend); 0: count only")
      ->capture_default_str();
  app.add_option("--max-prefill-tokens", raw.max_prefill_tokens,
                 "serve: prefill tokens per chunk (step) of a request; 0: unlimited")
      ->capture_default_str();
  app.add_option("--match-cap", raw.match_cap,
                 "cache: last-token never serves the last prompt token's block from cache (serve "
                 "mode always does so); none: every cached block")
      ->capture_default_str();
  app.add_flag("--no-decode-reserve", raw.no_decode_reserve,
               "serve: admit on the prompt alone; decode that cannot get a block preempts");
  app.add_option("--max-requests", raw.max_requests, "replay only the first N requests (0: all)");
  app.add_flag("--skip-bad-lines", o.skip_bad_lines,
               "skip malformed trace lines (counted in the report) instead of failing");
  app.add_flag("--json", o.json, "print one JSON object instead of the table");
  app.add_flag("--no-progress", o.no_progress,
               "no progress bar (it is off anyway off a terminal)");
  app.add_flag("--sweep", o.sweep, "replay every (policy, capacity) pair and write CSV");
  auto* sweep_blocks = app.add_option("--sweep-blocks", raw.sweep_blocks, "capacities for --sweep")
                           ->delimiter(',')
                           ->capture_default_str();
  auto* sweep_policies =
      app.add_option("--sweep-policies", raw.sweep_policies, "policies for --sweep")
          ->delimiter(',')
          ->capture_default_str();
  auto* csv = app.add_option("--csv", o.csv_path,
                             "sweep CSV output file, written whole or not at all (default: "
                             "stdout)");
  auto* profile = app.add_option(
      "--profile", o.profile_path,
      "record kvbm's NVTX ranges into a Chrome trace-event JSON file (Perfetto, "
      "chrome://tracing) and print per-range totals on stderr");

  // Names for --help and CLI11's messages (the values are text until parsed below).
  constexpr std::pair<const char*, const char*> kTypeNames[] = {
      {"--trace", "FILE"}, {"--mode", "MODE"}, {"--blocks", "N"}, {"--policy", "POLICY"},
      {"--g2-blocks", "N"}, {"--g2-policy", "POLICY"}, {"--block-size", "N"}, {"--salt", "N"},
      {"--prefill-rate", "TOKENS/S"}, {"--decode-rate", "TOKENS/S"},
      {"--kv-bytes-per-token", "BYTES"}, {"--onboard-gbps", "GB/S"},
      {"--copy-bytes-per-block", "BYTES"}, {"--max-prefill-tokens", "TOKENS"},
      {"--match-cap", "last-token|none"}, {"--max-requests", "N"}, {"--sweep-blocks", "N,..."},
      {"--sweep-policies", "POLICY,..."}, {"--csv", "FILE"}, {"--profile", "FILE"}};
  for (const auto& [flag, type] : kTypeNames) app.get_option(flag)->type_name(type);

  std::vector<const char*> argv;
  argv.reserve(args.size() + 1);
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  if (argv.empty()) argv.push_back("kvbm-replay");
  add_kv_events_flags(app, o.kv_events);
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp&) {
    parsed.help = true;
    parsed.help_text = app.help();
    return parsed;
  } catch (const CLI::CallForAllHelp&) {
    parsed.help = true;
    parsed.help_text = app.help("", CLI::AppFormatMode::All);
    return parsed;
  } catch (const CLI::ParseError& e) {
    // CLI11's own exit codes (104, 105, ...) are not ours: every parse error is a usage error.
    throw UsageError(e.what());
  }

  o.config.g1_blocks = parse_unsigned("--blocks", raw.blocks, 0, UINT64_MAX);
  o.config.policy = parse_policy("--policy", raw.policy);
  o.config.g2_blocks = parse_unsigned("--g2-blocks", raw.g2_blocks, 0, UINT64_MAX);
  if (!raw.g2_policy.empty()) o.config.g2_policy = parse_policy("--g2-policy", raw.g2_policy);
  o.config.block_size = static_cast<std::uint32_t>(
      parse_unsigned("--block-size", raw.block_size, 1, kTraceBlockSize));
  o.config.salt = parse_unsigned("--salt", raw.salt, 0, UINT64_MAX);
  o.config.prefill_tokens_per_s =
      parse_double("--prefill-rate", raw.prefill_rate, kMinRate, kMaxRate);
  o.config.decode_tokens_per_s = parse_double("--decode-rate", raw.decode_rate, kMinRate, kMaxRate);
  o.config.kv_bytes_per_token =
      parse_unsigned("--kv-bytes-per-token", raw.kv_bytes_per_token, 0, kMaxKvBytesPerToken);
  o.config.onboard_gb_per_s =
      parse_double("--onboard-gbps", raw.onboard_gbps, kMinGbps, kMaxGbps, /*allow_zero=*/true);
  o.config.copy_bytes_per_block =
      parse_unsigned("--copy-bytes-per-block", raw.copy_bytes_per_block, 0, kMaxPayloadBytes);
  o.max_requests = parse_unsigned("--max-requests", raw.max_requests, 0, UINT64_MAX);
  o.config.max_prefill_tokens =
      parse_unsigned("--max-prefill-tokens", raw.max_prefill_tokens, 0, UINT64_MAX);
  if (raw.match_cap != "last-token" && raw.match_cap != "none") {
    throw UsageError("--match-cap: '" + raw.match_cap + "' is not last-token or none");
  }
  o.config.match_cap = raw.match_cap == "last-token" ? MatchCap::LastToken : MatchCap::None;
  o.config.reserve_decode = !raw.no_decode_reserve;
  o.sweep_blocks.clear();
  for (const std::string& text : raw.sweep_blocks) {
    o.sweep_blocks.push_back(parse_unsigned("--sweep-blocks", text, 1, kMaxPoolBlocks));
  }
  for (const std::string& text : raw.sweep_policies) {
    o.sweep_policies.push_back(parse_policy("--sweep-policies", text));
  }
  o.sweep_policies_given = sweep_policies->count() != 0;

  if (!o.sweep) {
    for (const auto* option : {sweep_blocks, sweep_policies, csv}) {
      if (option->count() != 0) throw UsageError(option->get_name() + " needs --sweep");
    }
  }
  if (o.sweep && csv->count() != 0 && o.csv_path.empty()) throw UsageError("--csv: empty path");
  if (profile->count() != 0 && o.profile_path.empty()) throw UsageError("--profile: empty path");
  if (o.mode == "cache" && o.config.g2_blocks != 0) {
    o.notes.emplace_back("--g2-blocks only applies to --mode serve; ignored");
  }
  if (o.config.g2_policy && (o.mode == "cache" || o.config.g2_blocks == 0)) {
    o.notes.emplace_back("--g2-policy needs --mode serve and --g2-blocks; ignored");
  }
  validate(o);
  return parsed;
}

}  // namespace kvbm::replay
