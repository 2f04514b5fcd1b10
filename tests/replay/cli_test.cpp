// kvbm-replay's command line, run in-process through run_replay_cli: exit codes, that every
// bad flag is refused before any work with a message naming it, and that outputs are whole.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "replay/cli_options.hpp"
#include "replay/cli_run.hpp"

namespace kvbm::replay {
namespace {

namespace fs = std::filesystem;

constexpr int kSuccess = static_cast<int>(ExitCode::Success);
constexpr int kUsage = static_cast<int>(ExitCode::Usage);
constexpr int kBadInput = static_cast<int>(ExitCode::BadInput);

constexpr const char* kOverflowLine =
    R"({"timestamp": 1e999, "input_length": 1, "output_length": 1, "hash_ids": [0]})"
    "\n";

constexpr const char* kGoodLines =
    R"({"timestamp": 0, "input_length": 1000, "output_length": 20, "hash_ids": [1, 2]})"
    "\n"
    R"({"timestamp": 5, "input_length": 1500, "output_length": 20, "hash_ids": [1, 2, 3]})"
    "\n"
    R"({"timestamp": 9, "input_length": 600, "output_length": 20, "hash_ids": [1, 4]})"
    "\n";

struct Result {
  int code;
  std::string out;
  std::string err;
};

class ReplayCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name) {
      if (c == '/') c = '_';  // parameterised tests: "Suite/Test/3"
    }
    dir_ = fs::temp_directory_path() /
           ("kvbm_replay_cli_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    good_trace_ = write("good.jsonl", kGoodLines);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  // Runs kvbm-replay with `args` (the default trace is the small good one).
  Result run(std::vector<std::string> args) {
    args.insert(args.begin(), "kvbm-replay");
    std::ostringstream out, err;
    CliEnvironment environment;
    environment.default_trace = good_trace_;
    const int code = run_replay_cli(args, out, err, environment);
    return {code, out.str(), err.str()};
  }

  // Files in the test directory other than the inputs.
  std::vector<std::string> outputs() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".jsonl") == std::string::npos) names.push_back(name);
    }
    return names;
  }

  fs::path dir_;
  std::string good_trace_;
};

TEST_F(ReplayCli, ASmallReplaySucceedsInBothModes) {
  for (const char* mode : {"cache", "serve"}) {
    const Result r = run({"--mode", mode, "--json", "--blocks", "64"});
    EXPECT_EQ(r.code, kSuccess) << mode << ": " << r.err;
    EXPECT_NE(r.out.find("\"requests\": 3"), std::string::npos) << r.out;
  }
}

TEST_F(ReplayCli, HelpExitsZeroAndDocumentsExitCodes) {
  const Result r = run({"--help"});
  EXPECT_EQ(r.code, kSuccess);
  EXPECT_NE(r.out.find("--copy-bytes-per-block"), std::string::npos);
  EXPECT_NE(r.out.find("Exit status"), std::string::npos);
}

// CLI11's own failures (its exit codes are 104, 105, ...) all become the usage code.
TEST_F(ReplayCli, ParserErrorsAreUsageErrors) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--no-such-flag"}, {"--blocks"}, {"stray-positional"}, {"--json=maybe"},
           {"--blocks", "5", "--blocks", "6"}}) {
    const Result r = run(args);
    EXPECT_EQ(r.code, kUsage) << args.front() << ": " << r.err;
    EXPECT_TRUE(r.out.empty());
    EXPECT_NE(r.err.find("kvbm-replay: "), std::string::npos);
  }
}

// One bad value per flag and per class of mistake; each must exit 1 naming its flag, before
// the trace is even opened (the trace here does not exist).
struct BadFlag {
  std::vector<std::string> args;
  std::string flag;  // must appear in the message
};

void PrintTo(const BadFlag& bad, std::ostream* os) {
  for (const std::string& arg : bad.args) *os << '\'' << arg << "' ";
}

class ReplayCliBadFlag : public ReplayCli, public ::testing::WithParamInterface<BadFlag> {};

TEST_P(ReplayCliBadFlag, IsAUsageErrorNamingTheFlag) {
  std::vector<std::string> args = GetParam().args;
  args.insert(args.end(), {"--trace", (dir_ / "never-opened.jsonl").string()});
  const Result r = run(args);
  EXPECT_EQ(r.code, kUsage) << r.err;
  EXPECT_NE(r.err.find(GetParam().flag), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("cannot open trace"), std::string::npos) << "did work first: " << r.err;
  // The message is a sentence, not CLI11's 300-digit double range.
  EXPECT_LT(r.err.size(), 300u) << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_TRUE(outputs().empty());
}

std::vector<BadFlag> bad_flags() {
  std::vector<BadFlag> cases;
  const auto add = [&](std::vector<std::string> args, std::string flag) {
    cases.push_back({std::move(args), std::move(flag)});
  };
  // Integer flags: not a number, signs, exponents, trailing text, overflow, out of range.
  for (const char* flag : {"--blocks", "--g2-blocks", "--block-size", "--salt",
                           "--kv-bytes-per-token", "--copy-bytes-per-block", "--max-requests"}) {
    for (const char* value : {"abc", "-1", "+1", "1e3", "12x", " 1", "1.5", "",
                              "18446744073709551616", "99999999999999999999999"}) {
      add({flag, value}, flag);
    }
  }
  add({"--blocks", "0"}, "--blocks");
  add({"--blocks", "67108865"}, "--blocks");
  add({"--g2-blocks", "67108865"}, "--g2-blocks");
  for (const char* size : {"0", "3", "1024", "768"}) add({"--block-size", size}, "--block-size");
  add({"--kv-bytes-per-token", "1073741825"}, "--kv-bytes-per-token");
  // Byte counts that overflow or exceed the payload limit (the old segfault near 2^63).
  add({"--copy-bytes-per-block", "9223372036854775807", "--g2-blocks", "16"},
      "--copy-bytes-per-block");
  add({"--copy-bytes-per-block", "1073741824", "--g2-blocks", "64", "--blocks", "64"},
      "--copy-bytes-per-block");
  add({"--sweep", "--copy-bytes-per-block", "1048576", "--g2-blocks", "16", "--sweep-blocks",
       "16,65536"},
      "--copy-bytes-per-block");
  // Float flags: NaN, infinities, overflow, zero, negative, out of range, junk.
  for (const char* flag : {"--prefill-rate", "--decode-rate", "--onboard-gbps"}) {
    for (const char* value :
         {"nan", "NaN", "inf", "-inf", "infinity", "1e999", "-1", "-0.5", "1e13", "x", "", "1,5"}) {
      add({flag, value}, flag);
    }
  }
  add({"--prefill-rate", "0"}, "--prefill-rate");
  add({"--decode-rate", "0"}, "--decode-rate");
  add({"--decode-rate", "1e-300"}, "--decode-rate");
  add({"--onboard-gbps", "1e-9"}, "--onboard-gbps");
  // Choices.
  add({"--mode", "batch"}, "--mode");
  add({"--policy", "LRU"}, "--policy");
  add({"--g2-policy", "mru"}, "--g2-policy");
  add({"--trace", ""}, "--trace");
  // Sweep lists and sweep-only flags.
  add({"--sweep", "--sweep-blocks", "0"}, "--sweep-blocks");
  add({"--sweep-blocks", "0"}, "--sweep-blocks");
  add({"--sweep", "--sweep-blocks", "1024,0"}, "--sweep-blocks");
  add({"--sweep", "--sweep-blocks", "1024,1024"}, "--sweep-blocks");
  add({"--sweep", "--sweep-blocks", "-5"}, "--sweep-blocks");
  add({"--sweep", "--sweep-policies", "lru,bogus"}, "--sweep-policies");
  add({"--sweep", "--sweep-policies", "lru,lru"}, "--sweep-policies");
  add({"--sweep-blocks", "1024"}, "--sweep-blocks");
  add({"--sweep-policies", "lru"}, "--sweep-policies");
  add({"--csv", "out.csv"}, "--csv");
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Replay, ReplayCliBadFlag, ::testing::ValuesIn(bad_flags()));

TEST_F(ReplayCli, GoodValuesAtTheEdgesOfTheirRangesAreAccepted) {
  const Result r = run({"--mode", "serve", "--blocks", "64", "--block-size", "1", "--salt",
                        "18446744073709551615", "--prefill-rate", "1e12", "--decode-rate", "0.001",
                        "--onboard-gbps", "0", "--kv-bytes-per-token", "1073741824",
                        "--copy-bytes-per-block", "0", "--g2-blocks", "64", "--json"});
  EXPECT_EQ(r.code, kSuccess) << r.err;
}

TEST_F(ReplayCli, MissingOrUnreadableTraceIsBadInput) {
  Result r = run({"--trace", (dir_ / "missing.jsonl").string()});
  EXPECT_EQ(r.code, kBadInput);
  EXPECT_NE(r.err.find("missing.jsonl"), std::string::npos) << r.err;
  r = run({"--trace", dir_.string()});
  EXPECT_EQ(r.code, kBadInput);
  EXPECT_NE(r.err.find("directory"), std::string::npos) << r.err;
}

TEST_F(ReplayCli, MalformedLineIsBadInputNamingTheLine) {
  const std::string trace = write("bad.jsonl", std::string(kGoodLines) + kOverflowLine);
  const Result r = run({"--trace", trace});
  EXPECT_EQ(r.code, kBadInput);
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(ReplayCli, SkipBadLinesCountsTheOverflowingNumber) {
  const std::string trace = write("bad.jsonl", std::string(kGoodLines) + kOverflowLine);
  const Result r = run({"--trace", trace, "--skip-bad-lines", "--json"});
  EXPECT_EQ(r.code, kSuccess) << r.err;
  EXPECT_NE(r.out.find("\"bad_lines\": 1"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;
}

// A request whose chain exceeds the 2^24 SequenceHash positions (here 32,769 trace blocks at
// block size 1) is counted as rejected; the others still replay.
TEST_F(ReplayCli, ARequestBeyondThePositionLimitIsRejectedNotFatal) {
  std::string ids;
  for (int i = 0; i < 32769; ++i) ids += (i ? "," : "") + std::to_string(i + 100);
  const std::string trace =
      write("long.jsonl", std::string(kGoodLines) +
                              R"({"timestamp": 20, "input_length": 1, "output_length": 1, )" +
                              R"("hash_ids": [)" + ids + "]}\n");
  for (const char* mode : {"cache", "serve"}) {
    const Result r = run(
        {"--trace", trace, "--mode", mode, "--block-size", "1", "--blocks", "4096", "--json"});
    EXPECT_EQ(r.code, kSuccess) << mode << ": " << r.err;
    EXPECT_NE(r.out.find("\"rejected\": 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"requests\": 4"), std::string::npos) << r.out;
  }
}

TEST_F(ReplayCli, SweepCsvIsWrittenWholeWithNoTemporaryLeft) {
  const std::string csv = (dir_ / "sweep.csv").string();
  const Result r = run({"--sweep", "--mode", "cache", "--sweep-blocks", "4,64",
                        "--sweep-policies", "lru,lineage", "--csv", csv});
  ASSERT_EQ(r.code, kSuccess) << r.err;
  std::ifstream in(csv);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 1 + 4);  // header + 2 policies x 2 capacities
  EXPECT_EQ(outputs(), std::vector<std::string>{"sweep.csv"});
}

TEST_F(ReplayCli, SweepWithAnUnwritableCsvFailsBeforeReplaying) {
  const std::string csv = (dir_ / "no-such-dir" / "sweep.csv").string();
  const Result r = run({"--sweep", "--csv", csv, "--trace", (dir_ / "missing.jsonl").string()});
  EXPECT_EQ(r.code, kUsage) << r.err;
  EXPECT_NE(r.err.find("--csv"), std::string::npos) << r.err;
}

TEST_F(ReplayCli, SweepRefusesToWriteItsCsvOverTheTrace) {
  const Result r = run({"--sweep", "--csv", good_trace_});
  EXPECT_EQ(r.code, kUsage) << r.err;
  EXPECT_NE(r.err.find("--csv"), std::string::npos) << r.err;
  std::ifstream in(good_trace_);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  EXPECT_EQ(text, kGoodLines);
}

// A failing run leaves a previous CSV untouched and no temporary behind.
TEST_F(ReplayCli, AFailedSweepLeavesNoPartialCsv) {
  const std::string csv = write("sweep.csv", "previous contents\n");
  const std::string trace = write("bad.jsonl", "{\"timestamp\": 0}\n");
  const Result r = run({"--sweep", "--csv", csv, "--trace", trace});
  EXPECT_EQ(r.code, kBadInput) << r.err;
  std::ifstream in(csv);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "previous contents\n");
  EXPECT_EQ(outputs(), std::vector<std::string>{"sweep.csv"});
}

TEST_F(ReplayCli, SweepToStdoutPrintsNothingOnFailure) {
  const std::string trace = write("bad.jsonl", "{}\n");
  const Result r = run({"--sweep", "--trace", trace});
  EXPECT_EQ(r.code, kBadInput);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// stdout that cannot be written (a full disk, a closed pipe) is a failure, not exit 0.
TEST_F(ReplayCli, AnUnwritableStdoutIsAFailure) {
  std::ostream broken(nullptr);  // every write sets badbit
  std::ostringstream err;
  CliEnvironment environment;
  environment.default_trace = good_trace_;
  const std::vector<std::string> args{"kvbm-replay", "--blocks", "64"};
  EXPECT_EQ(run_replay_cli(args, broken, err, environment), static_cast<int>(ExitCode::Failure));
  EXPECT_NE(err.str().find("standard output"), std::string::npos) << err.str();
}

TEST_F(ReplayCli, CacheModeNotesThatG2IsIgnored) {
  const Result r = run({"--mode", "cache", "--g2-blocks", "16"});
  EXPECT_EQ(r.code, kSuccess) << r.err;
  EXPECT_NE(r.err.find("--g2-blocks"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kvbm::replay
