// The replay library under hostile sizes: checked arithmetic, the position limit, 32-bit output
// lengths, non-finite rates from library callers, and AtomicFile's all-or-nothing output.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>

#include "kvbm/errors.hpp"
#include "replay/atomic_file.hpp"
#include "replay/checked.hpp"
#include "replay/cli_options.hpp"
#include "replay/hash_mapping.hpp"
#include "replay/simulate.hpp"

namespace kvbm::replay {
namespace {

namespace fs = std::filesystem;

constexpr auto kMax64 = std::numeric_limits<std::uint64_t>::max();
constexpr auto kMax32 = std::numeric_limits<std::uint32_t>::max();

TEST(Checked, MulAndAddReportOverflowInsteadOfWrapping) {
  EXPECT_EQ(checked_mul<std::uint64_t>(1ull << 32, 1ull << 31), 1ull << 63);
  EXPECT_FALSE(checked_mul<std::uint64_t>(1ull << 32, 1ull << 32));
  EXPECT_FALSE(checked_mul<std::uint64_t>(kMax64 / 2 + 1, 2));  // the 2^63 x 2 case
  EXPECT_EQ(checked_mul<std::uint64_t>(0, kMax64), 0u);
  EXPECT_EQ(checked_add<std::uint64_t>(kMax64 - 1, 1), kMax64);
  EXPECT_FALSE(checked_add<std::uint64_t>(kMax64, 1));
  EXPECT_FALSE(checked_add<std::uint32_t>(kMax32, 1));
}

TEST(Checked, ThrowingFormsNameTheQuantity) {
  try {
    (void)mul_or_throw<std::uint64_t>(1ull << 40, 1ull << 40, "--kv-bytes-per-token");
    FAIL() << "no OverflowError";
  } catch (const OverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("--kv-bytes-per-token"), std::string::npos);
  }
  std::uint64_t total = kMax64 - 5;
  accumulate<std::uint64_t>(total, 5, "bytes");
  EXPECT_EQ(total, kMax64);
  EXPECT_THROW(accumulate<std::uint64_t>(total, 1, "bytes"), OverflowError);
  EXPECT_EQ(total, kMax64);  // unchanged by the failed add
}

TEST(HashMapping, BlockCountStopsAtThePositionLimit) {
  const HashMapper full(512);
  EXPECT_EQ(full.block_count(3), 3u);
  EXPECT_EQ(full.block_count(SequenceHash::kMaxPosition), SequenceHash::kMaxPosition);
  EXPECT_FALSE(full.block_count(SequenceHash::kMaxPosition + 1));
  const HashMapper split(1);  // 512 kvbm blocks per trace block
  EXPECT_EQ(split.block_count(32768), 32768u * 512u);
  EXPECT_FALSE(split.block_count(32769));
  EXPECT_FALSE(split.block_count(std::numeric_limits<std::size_t>::max()));  // product overflows
  std::vector<SequenceHash> out;
  const std::vector<std::uint64_t> ids(32769, 7);
  EXPECT_THROW(split.map_into(ids, out), PositionOutOfRange);
}

Trace one_request(std::uint32_t output_length, std::size_t trace_blocks = 1) {
  Trace trace;
  TraceRequest request;
  request.input_length = 512 * static_cast<std::uint32_t>(trace_blocks);
  request.output_length = output_length;
  for (std::size_t i = 0; i < trace_blocks; ++i) request.hash_ids.push_back(i);
  request.line = 1;
  trace.requests.push_back(request);
  return trace;
}

// (2^32 - 1 + 511) used to wrap in 32 bits to 510, i.e. zero decode blocks: the request was
// admitted with no decode footprint. It needs 8,388,608 decode blocks, more than the pool.
TEST(ServeMode, AnOutputLengthNear2To32IsRejectedNotWrapped) {
  ReplayConfig config;
  config.g1_blocks = 1024;
  const ReplayReport report = run_serve_mode(one_request(kMax32), config);
  EXPECT_EQ(report.requests, 1u);
  EXPECT_EQ(report.rejected, 1u);
  EXPECT_EQ(report.decode_blocks, 0u);
}

TEST(ServeMode, ADecodeFootprintThatFitsIsAdmitted) {
  ReplayConfig config;
  config.g1_blocks = 1024;
  config.decode_tokens_per_s = 1e9;
  const ReplayReport report = run_serve_mode(one_request(512 * 1000), config);
  EXPECT_EQ(report.rejected, 0u);
  EXPECT_EQ(report.decode_blocks, 1000u);
}

TEST(ReplayModes, APromptBeyondThePositionLimitIsRejected) {
  ReplayConfig config;
  config.block_size = 1;
  config.g1_blocks = 2048;  // room for the short request (1,024 blocks), not for the long one
  Trace trace = one_request(1, 32769);
  trace.requests.push_back(one_request(1, 2).requests.front());
  for (const bool serve : {false, true}) {
    const ReplayReport report =
        serve ? run_serve_mode(trace, config) : run_cache_mode(trace, config);
    EXPECT_EQ(report.requests, 2u);
    EXPECT_EQ(report.rejected, 1u);
    EXPECT_EQ(report.blocks_requested, 2u * 512u);
  }
}

TEST(ServeMode, LibraryCallersCannotPassNonFiniteRates) {
  const Trace trace = one_request(10);
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(), 0.0, -1.0}) {
    ReplayConfig config;
    config.prefill_tokens_per_s = bad;
    EXPECT_THROW((void)run_serve_mode(trace, config), std::invalid_argument) << bad;
    config = ReplayConfig{};
    config.decode_tokens_per_s = bad;
    EXPECT_THROW((void)run_serve_mode(trace, config), std::invalid_argument) << bad;
  }
  ReplayConfig config;
  config.onboard_gb_per_s = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW((void)run_serve_mode(trace, config), std::invalid_argument);
}

// The old segfault: (blocks x 2^63) wrapped to a small buffer the copies then overran.
TEST(ServeMode, LibraryCallersGetOverflowErrorsForHugeByteCounts) {
  const Trace trace = one_request(10);
  ReplayConfig config;
  config.g2_blocks = 16;
  config.copy_bytes_per_block = std::size_t{1} << 63;
  EXPECT_THROW((void)run_serve_mode(trace, config), OverflowError);
  config = ReplayConfig{};
  config.kv_bytes_per_token = std::uint64_t{1} << 60;  // x 512 tokens per block
  EXPECT_THROW((void)run_serve_mode(trace, config), OverflowError);
}

TEST(CliValidate, CatchesValuesSetDirectlyOnTheOptions) {
  CliOptions options;
  options.trace_path = "t.jsonl";
  validate(options);  // the defaults are valid
  options.config.prefill_tokens_per_s = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(validate(options), UsageError);
  options = CliOptions{};
  options.trace_path = "t.jsonl";
  options.config.g2_blocks = 16;
  options.config.copy_bytes_per_block = std::size_t{1} << 63;
  try {
    validate(options);
    FAIL() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--copy-bytes-per-block"), std::string::npos);
  }
}

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kvbm_atomic_file_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::size_t entries() const {
    return static_cast<std::size_t>(
        std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}));
  }
  static std::string read(const fs::path& path) {
    std::ifstream in(path);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  fs::path dir_;
};

TEST_F(AtomicFileTest, NothingAppearsUntilCommit) {
  const fs::path path = dir_ / "out.csv";
  {
    AtomicFile file(path.string());
    file.stream() << "a,b\n1,2\n";
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::exists(file.temporary_path()));
    file.commit();
  }
  EXPECT_EQ(read(path), "a,b\n1,2\n");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, AnUncommittedFileLeavesThePreviousOneAndNoTemporary) {
  const fs::path path = dir_ / "out.csv";
  std::ofstream(path) << "old\n";
  {
    AtomicFile file(path.string());
    file.stream() << "half a sweep";
  }  // e.g. an exception unwound past it
  EXPECT_EQ(read(path), "old\n");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, AnUnwritableDirectoryFailsAtOnce) {
  EXPECT_THROW(AtomicFile((dir_ / "missing" / "out.csv").string()), OutputError);
  EXPECT_THROW(AtomicFile(""), OutputError);
}

}  // namespace
}  // namespace kvbm::replay
