#include "replay/trace.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

namespace kvbm::replay {

namespace {

std::uint64_t unsigned_field(const nlohmann::json& obj, const char* key, std::uint64_t max,
                             std::size_t line) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw TraceError(line, std::string("missing field \"") + key + '"');
  if (!it->is_number_unsigned()) {
    throw TraceError(line, std::string("field \"") + key + "\" is not a non-negative integer");
  }
  const auto value = it->get<std::uint64_t>();
  if (value > max) throw TraceError(line, std::string("field \"") + key + "\" is too large");
  return value;
}

}  // namespace

TraceRequest parse_trace_line(const std::string& text, std::size_t line_number) {
  nlohmann::json obj;
  try {
    obj = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // parse_error and also out_of_range (a number such as 1e999 that overflows a double).
    throw TraceError(line_number, std::string("invalid JSON: ") + e.what());
  }
  if (!obj.is_object()) throw TraceError(line_number, "not a JSON object");

  TraceRequest request;
  request.line = line_number;
  const auto ts = obj.find("timestamp");
  if (ts == obj.end()) throw TraceError(line_number, "missing field \"timestamp\"");
  if (!ts->is_number()) throw TraceError(line_number, "field \"timestamp\" is not a number");
  request.timestamp_ms = ts->get<double>();
  if (!std::isfinite(request.timestamp_ms) || request.timestamp_ms < 0 ||
      request.timestamp_ms > kMaxTimestampMs) {
    throw TraceError(line_number, "field \"timestamp\" is negative, not finite or above 2^53");
  }
  constexpr auto kMaxLength = std::numeric_limits<std::uint32_t>::max();
  request.input_length =
      static_cast<std::uint32_t>(unsigned_field(obj, "input_length", kMaxLength, line_number));
  request.output_length =
      static_cast<std::uint32_t>(unsigned_field(obj, "output_length", kMaxLength, line_number));

  const auto ids = obj.find("hash_ids");
  if (ids == obj.end()) throw TraceError(line_number, "missing field \"hash_ids\"");
  if (!ids->is_array()) throw TraceError(line_number, "field \"hash_ids\" is not an array");
  request.hash_ids.reserve(ids->size());
  for (const auto& id : *ids) {
    if (!id.is_number_unsigned()) {
      throw TraceError(line_number,
                       "field \"hash_ids\" holds a value that is not a "
                       "non-negative integer");
    }
    request.hash_ids.push_back(id.get<std::uint64_t>());
  }
  return request;
}

Trace parse_trace(std::istream& in, const TraceOptions& options) {
  Trace trace;
  std::string text;
  std::size_t line_number = 0;
  while (std::getline(in, text)) {
    ++line_number;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    try {
      trace.requests.push_back(parse_trace_line(text, line_number));
    } catch (const TraceError& e) {
      if (!options.skip_bad_lines) throw;
      if (trace.bad_lines++ == 0) {
        trace.first_bad_line = line_number;
        trace.first_bad_line_error = e.what();
      }
    }
    if (options.max_requests != 0 && trace.requests.size() >= options.max_requests) break;
  }
  if (in.bad()) throw TraceError(line_number + 1, "read error");
  return trace;
}

Trace load_trace(const std::string& path, const TraceOptions& options) {
  std::ifstream in(path);
  if (!in) throw TraceError(0, "cannot open trace file '" + path + "'");
  return parse_trace(in, options);
}

}  // namespace kvbm::replay
