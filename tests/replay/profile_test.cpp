// kvbm-replay --profile: the totals and the Chrome trace writer on known events, and the
// executable itself (a child process, because NVTX attaches a tool once per process) writing a
// trace that parses and holds kvbm's ranges.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "replay/profile.hpp"

namespace kvbm::replay {
namespace {

namespace fs = std::filesystem;

ProfileEvent event(std::string name, std::uint64_t start, std::uint64_t duration,
                   std::uint32_t thread = 1) {
  return ProfileEvent{std::move(name), thread, start, duration, false, 0};
}

TEST(ProfileTotals, NearestRankPercentilesAndLargestTotalFirst) {
  std::vector<ProfileEvent> events;
  for (std::uint64_t i = 1; i <= 100; ++i) events.push_back(event("a", i * 1000, i));
  events.push_back(event("b", 0, 100000));
  const auto totals = range_totals(events);
  ASSERT_EQ(totals.size(), 2u);
  EXPECT_EQ(totals[0].name, "b");
  EXPECT_EQ(totals[0].calls, 1u);
  EXPECT_EQ(totals[0].p50_ns, 100000u);
  EXPECT_EQ(totals[0].p99_ns, 100000u);
  EXPECT_EQ(totals[1].name, "a");
  EXPECT_EQ(totals[1].calls, 100u);
  EXPECT_EQ(totals[1].total_ns, 5050u);
  EXPECT_EQ(totals[1].p50_ns, 50u);
  EXPECT_EQ(totals[1].p99_ns, 99u);
}

TEST(ProfileChromeTrace, CompleteEventsInMicrosecondsWithCountsAndThreadNames) {
  std::vector<ProfileEvent> events{event("match_blocks", 1500, 250, 1),
                                   event("quote\"name", 2000, 1, 2)};
  events[0].has_count = true;
  events[0].count = 7;
  std::ostringstream text;
  write_chrome_trace(text, events);
  const auto trace = nlohmann::json::parse(text.str());
  std::vector<nlohmann::json> complete;
  std::set<std::uint32_t> named_threads;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == "X") complete.push_back(e);
    if (e.at("name") == "thread_name") named_threads.insert(e.at("tid").get<std::uint32_t>());
  }
  ASSERT_EQ(complete.size(), 2u);
  EXPECT_EQ(complete[0].at("name"), "match_blocks");
  EXPECT_DOUBLE_EQ(complete[0].at("ts").get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(complete[0].at("dur").get<double>(), 0.25);
  EXPECT_EQ(complete[0].at("args").at("count"), 7);
  EXPECT_EQ(complete[1].at("name"), "quote\"name");
  EXPECT_FALSE(complete[1].contains("args"));
  EXPECT_EQ(named_threads, (std::set<std::uint32_t>{1, 2}));
}

struct ChildRun {
  int status;
  std::string err;
};

ChildRun run_replay(const std::string& env, const std::string& args, const fs::path& dir) {
  const fs::path err = dir / "stderr.txt";
  const std::string command = env + " '" KVBM_REPLAY_EXE "' --trace '" KVBM_REPLAY_SAMPLE "' " +
                              args + " >/dev/null 2>'" + err.string() + "'";
  const int raw = std::system(command.c_str());
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, text.str()};
}

class ProfileExecutable : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!profile_available()) GTEST_SKIP() << "built without NVTX ranges";
    dir_ = fs::temp_directory_path() / ("kvbm_profile_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(ProfileExecutable, WritesKvbmRangesAndPrintsTotals) {
  const fs::path profile = dir_ / "profile.json";
  // Both modes' ranges: serve with a G2 tier exercises eviction as well.
  const ChildRun run = run_replay("env -u NVTX_INJECTION64_PATH",
                             "--max-requests 300 --blocks 256 --g2-blocks 1024 --no-progress "
                             "--profile '" + profile.string() + "'",
                             dir_);
  ASSERT_EQ(run.status, 0) << run.err;
  std::ifstream in(profile);
  const auto trace = nlohmann::json::parse(in);
  std::set<std::string> names;
  std::size_t complete = 0;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    ++complete;
    names.insert(e.at("name").get<std::string>());
    EXPECT_EQ(e.at("cat"), "kvbm");
    EXPECT_GE(e.at("dur").get<double>(), 0.0);
  }
  EXPECT_GT(complete, 300u);
  for (const char* expected :
       {"match_blocks", "allocate_blocks", "register_blocks", "evict_inactive",
        "TransferEngine::copy_blocks"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
    EXPECT_NE(run.err.find(expected), std::string::npos) << "totals lack " << expected;
  }
  EXPECT_NE(run.err.find("p99 us"), std::string::npos) << run.err;
}

TEST_F(ProfileExecutable, RefusesWhenAnotherNvtxToolIsNamed) {
  const fs::path profile = dir_ / "profile.json";
  const ChildRun run = run_replay("env NVTX_INJECTION64_PATH=/nonexistent/libtool.so",
                             "--max-requests 10 --profile '" + profile.string() + "'", dir_);
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("--profile: another NVTX tool"), std::string::npos) << run.err;
  EXPECT_FALSE(fs::exists(profile));
}

TEST_F(ProfileExecutable, RefusesTheTraceFileAsOutput) {
  const ChildRun run = run_replay("", "--profile '" KVBM_REPLAY_SAMPLE "'", dir_);
  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("--profile"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace kvbm::replay
