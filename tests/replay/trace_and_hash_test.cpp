// Trace parsing and hash-id -> SequenceHash mapping.
#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>
#include <string>

#include "replay/hash_mapping.hpp"
#include "replay/trace.hpp"

namespace kvbm::replay {
namespace {

TEST(TraceParse, ReadsEveryField) {
  std::istringstream in(
      R"({"timestamp": 0, "input_length": 1000, "output_length": 7, "hash_ids": [0, 1]})"
      "\n\n"
      R"({"timestamp": 12.5, "input_length": 512, "output_length": 0, "hash_ids": [0]})"
      "\n");
  const Trace trace = parse_trace(in);
  ASSERT_EQ(trace.requests.size(), 2u);
  EXPECT_EQ(trace.bad_lines, 0u);
  const TraceRequest& first = trace.requests[0];
  EXPECT_EQ(first.timestamp_ms, 0.0);
  EXPECT_EQ(first.input_length, 1000u);
  EXPECT_EQ(first.output_length, 7u);
  EXPECT_EQ(first.hash_ids, (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(first.line, 1u);
  EXPECT_EQ(trace.requests[1].timestamp_ms, 12.5);
  EXPECT_EQ(trace.requests[1].line, 3u);  // the blank line 2 is not a request
}

TEST(TraceParse, MaxRequestsStopsEarly) {
  std::istringstream in(
      R"({"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [0]})"
      "\n"
      R"({"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": [1]})"
      "\n"
      "this line is never read\n");
  TraceOptions options;
  options.max_requests = 2;
  EXPECT_EQ(parse_trace(in, options).requests.size(), 2u);
}

class MalformedLine : public ::testing::TestWithParam<std::string> {};

TEST_P(MalformedLine, FailsWithItsLineNumber) {
  std::istringstream in(
      R"({"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [0, 1]})"
      "\n"
      R"({"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": [0, 2]})"
      "\n" +
      GetParam() + "\n" +
      R"({"timestamp": 2, "input_length": 600, "output_length": 1, "hash_ids": [0, 3]})"
      "\n");
  try {
    (void)parse_trace(in);
    FAIL() << "no TraceError for: " << GetParam();
  } catch (const TraceError& e) {
    EXPECT_EQ(e.line(), 3u);
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
  }
}

TEST_P(MalformedLine, IsSkippedAndCountedWhenAsked) {
  std::istringstream in(
      R"({"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [0, 1]})"
      "\n" +
      GetParam() + "\n" +
      R"({"timestamp": 2, "input_length": 600, "output_length": 1, "hash_ids": [0, 3]})"
      "\n");
  TraceOptions options;
  options.skip_bad_lines = true;
  const Trace trace = parse_trace(in, options);
  EXPECT_EQ(trace.requests.size(), 2u);
  EXPECT_EQ(trace.bad_lines, 1u);
  EXPECT_EQ(trace.first_bad_line, 2u);
  EXPECT_EQ(trace.requests[1].line, 3u);
}

INSTANTIATE_TEST_SUITE_P(
    Replay, MalformedLine,
    ::testing::Values(
        R"({"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": [0, 2])",
        "not json at all", R"([1, 2, 3])",
        R"({"input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 600, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 600, "output_length": 1})",
        R"({"timestamp": -1, "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": "0", "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": -5, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 1.5, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": 7})",
        R"({"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": [0, "x"]})",
        R"({"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": [0, -2]})",
        // Numbers the JSON parser itself refuses (out_of_range, not parse_error): still a
        // TraceError with the line number, still skippable.
        R"({"timestamp": 1e999, "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": -1e999, "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 1e999, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 600, "output_length": 1, "hash_ids": [1e999]})",
        // Not JSON numbers at all.
        R"({"timestamp": NaN, "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": Infinity, "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 0x10, "output_length": 1, "hash_ids": [0]})",
        // Integers beyond their field's range.
        R"({"timestamp": 1, "input_length": 4294967296, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 1, "output_length": 4294967296, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 1, "output_length": 1, )"
        R"("hash_ids": [18446744073709551616]})",
        R"({"timestamp": 1e300, "input_length": 600, "output_length": 1, "hash_ids": [0]})",
        R"({"timestamp": 1, "input_length": 1e3, "output_length": 1, "hash_ids": [0]})"));

TEST(TraceParse, MissingFileIsAnError) {
  EXPECT_THROW((void)load_trace("/nonexistent/trace.jsonl"), TraceError);
}

TEST(TraceParse, ShippedSampleLoads) {
  const Trace trace = load_trace(KVBM_REPLAY_SAMPLE);
  EXPECT_EQ(trace.requests.size(), 2000u);
  EXPECT_EQ(trace.bad_lines, 0u);
  for (const auto& request : trace.requests) {
    ASSERT_EQ(request.hash_ids.size(),
              (request.input_length + kTraceBlockSize - 1) / kTraceBlockSize)
        << "line " << request.line;
  }
}

TEST(HashMapping, SharedPrefixesShareHashes) {
  const HashMapper mapper;
  const auto a = mapper.map(std::vector<std::uint64_t>{0, 1, 2, 3});
  const auto b = mapper.map(std::vector<std::uint64_t>{0, 1, 9});
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(a[0], b[0]);
  EXPECT_EQ(a[1], b[1]);
  EXPECT_NE(a[2], b[2]);
  // Same id after a different prefix is a different block.
  const auto c = mapper.map(std::vector<std::uint64_t>{5, 1});
  EXPECT_NE(c[1], a[1]);
  // Deterministic.
  EXPECT_EQ(mapper.map(std::vector<std::uint64_t>{0, 1, 2, 3}), a);
}

TEST(HashMapping, PositionsAndParentsFormAChain) {
  const HashMapper mapper;
  const auto hashes = mapper.map(std::vector<std::uint64_t>{10, 11, 12, 13, 14});
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    EXPECT_EQ(hashes[i].position(), i);
    if (i == 0) {
      EXPECT_EQ(hashes[i].parent_fragment(), 0u);
    } else {
      EXPECT_EQ(hashes[i].parent_fragment(),
                hashes[i - 1].fragment_for_child_position(static_cast<std::uint32_t>(i)));
      EXPECT_EQ(hashes[i], SequenceHash::from_parts(hashes[i].current_fragment(),
                                                    hashes[i - 1].current_fragment(),
                                                    static_cast<std::uint32_t>(i)));
    }
  }
}

TEST(HashMapping, LongChainsCrossTheModeBoundary) {
  const HashMapper mapper;
  std::vector<std::uint64_t> ids(300);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = 1000 + i;
  const auto hashes = mapper.map(ids);
  EXPECT_EQ(hashes[255].mode(), 0u);
  EXPECT_EQ(hashes[256].mode(), 1u);
  EXPECT_EQ(hashes[256].position(), 256u);
  EXPECT_EQ(hashes[256].parent_fragment(), hashes[255].fragment_for_child_position(256));
}

TEST(HashMapping, SmallerBlocksSplitEachTraceBlock) {
  const HashMapper fine(128);
  EXPECT_EQ(fine.blocks_per_trace_block(), 4u);
  const std::vector<std::uint64_t> ids{0, 1};
  const auto hashes = fine.map(ids);
  ASSERT_EQ(hashes.size(), 8u);
  for (std::size_t i = 0; i < hashes.size(); ++i) EXPECT_EQ(hashes[i].position(), i);
  EXPECT_EQ(fine.map(std::vector<std::uint64_t>{0, 2})[3], hashes[3]);  // first trace block shared
  EXPECT_NE(fine.map(std::vector<std::uint64_t>{0, 2})[4], hashes[4]);
}

TEST(HashMapping, SaltChangesEveryHash) {
  const std::vector<std::uint64_t> ids{0, 1, 2};
  const auto unsalted = HashMapper(512, 0).map(ids);
  const auto salted = HashMapper(512, 1337).map(ids);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_NE(unsalted[i], salted[i]);
}

TEST(HashMapping, RejectsBlockSizesThatDoNotDivideTheTraceBlock) {
  EXPECT_THROW(HashMapper(0), std::invalid_argument);
  EXPECT_THROW(HashMapper(48), std::invalid_argument);
  EXPECT_THROW(HashMapper(1024), std::invalid_argument);
  EXPECT_NO_THROW(HashMapper(1));
}

}  // namespace
}  // namespace kvbm::replay
