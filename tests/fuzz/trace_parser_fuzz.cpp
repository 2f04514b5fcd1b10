// libFuzzer entry point for the trace parser; see trace_parser_check.hpp for what is checked
// and scripts/fuzz.sh for how to build and run it.
#include <cstddef>
#include <cstdint>

#include "trace_parser_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  kvbm::replay::fuzz::check_trace_input(data, size);
  return 0;
}
