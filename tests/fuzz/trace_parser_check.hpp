// tests/fuzz/trace_parser_check.hpp — the trace parser's contract, checked on arbitrary bytes.
//
// Shared by the libFuzzer target (trace_parser_fuzz.cpp, clang) and the corpus regression test
// (tests/replay/fuzz_corpus_test.cpp, the normal gcc and sanitizer builds). For any input:
// parse_trace either returns or throws TraceError (nothing else escapes: no other exception, no
// crash), every request it returns satisfies the documented field rules and carries an
// increasing line number, and with skip_bad_lines it never throws for a malformed line.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "replay/trace.hpp"

namespace kvbm::replay::fuzz {

inline void require(bool ok) {
  if (!ok) std::abort();  // libFuzzer and the test both report an abort with the input
}

inline void check_requests(const Trace& trace) {
  std::size_t previous_line = 0;
  for (const TraceRequest& request : trace.requests) {
    require(request.line > previous_line);
    previous_line = request.line;
    require(std::isfinite(request.timestamp_ms));
    require(request.timestamp_ms >= 0 && request.timestamp_ms <= kMaxTimestampMs);
  }
  require((trace.bad_lines == 0) == (trace.first_bad_line == 0));
  require((trace.bad_lines == 0) == trace.first_bad_line_error.empty());
}

// The first byte picks the options, the rest is the trace text.
inline void check_trace_input(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::uint8_t mode = data[0];
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);

  TraceOptions options;
  options.skip_bad_lines = (mode & 1) != 0;
  options.max_requests = (mode >> 1) & 7;  // 0 (all) .. 7
  std::istringstream in(text);
  try {
    const Trace trace = parse_trace(in, options);
    check_requests(trace);
    if (options.max_requests != 0) require(trace.requests.size() <= options.max_requests);
  } catch (const TraceError& e) {
    require(!options.skip_bad_lines);  // skipping never throws for a malformed line
    require(e.line() >= 1);            // and a strict failure always names its line
  }

  // One line parsed on its own: a request or a TraceError naming line 7.
  try {
    const TraceRequest request = parse_trace_line(text, 7);
    require(request.line == 7);
    require(std::isfinite(request.timestamp_ms));
  } catch (const TraceError& e) {
    require(e.line() == 7);
  }
}

}  // namespace kvbm::replay::fuzz
