// The trace-parser fuzz target's checks over its checked-in seed corpus (tests/fuzz/corpus), in
// the normal builds: a regression found by scripts/fuzz.sh is added there and stays tested.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "trace_parser_check.hpp"

namespace kvbm::replay {
namespace {

TEST(TraceFuzzCorpus, EverySeedSatisfiesTheParserContract) {
  std::size_t seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(KVBM_FUZZ_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
    SCOPED_TRACE(entry.path().string());
    // Both option sets, whatever the seed's first byte says.
    for (const std::uint8_t mode : {std::uint8_t{0}, std::uint8_t{1}}) {
      std::vector<std::uint8_t> input{mode};
      input.insert(input.end(), bytes.begin() + (bytes.empty() ? 0 : 1), bytes.end());
      fuzz::check_trace_input(input.data(), input.size());
    }
    ++seeds;
  }
  EXPECT_GE(seeds, 10u);
}

}  // namespace
}  // namespace kvbm::replay
