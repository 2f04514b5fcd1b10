#include "replay/profile.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

#include <nlohmann/json.hpp>

#if defined(KVBM_NVTX_ENABLED)
#include <nvtx3/nvToolsExt.h>

#include "replay/profile_collector.hpp"
#endif

namespace kvbm::replay {

#if defined(KVBM_NVTX_ENABLED)

bool profile_available() noexcept { return true; }

ProfileSession::ProfileSession() {
  if (!detail::collector_claim_session()) {
    throw ProfileError("--profile: a profile session is already running in this process");
  }
  detail::collector_set_want_attach(true);
  nvtxInitialize(nullptr);  // NVTX initialises once per process; it does so now at the latest
  detail::collector_set_want_attach(false);
  const detail::CollectorState state = detail::collector_state();
  if (state != detail::CollectorState::Attached) {
    detail::collector_release_session();
    throw ProfileError(
        state == detail::CollectorState::Declined
            ? "--profile: NVTX was initialised before the profile started; nothing can be recorded"
            : "--profile: another NVTX tool is attached (NVTX_INJECTION64_PATH is set, e.g. by "
              "nsys); use that tool's profile instead");
  }
  detail::collector_start_recording();
}

ProfileSession::~ProfileSession() { detail::collector_release_session(); }

std::vector<ProfileEvent> ProfileSession::take_events() { return detail::collector_take_events(); }

#else  // KVBM_NVTX_ENABLED

bool profile_available() noexcept { return false; }

ProfileSession::ProfileSession() {
  throw ProfileError(
      "--profile: this build has no NVTX ranges (KVBM_NVTX is off or NVTX3's headers were not "
      "found)");
}
ProfileSession::~ProfileSession() = default;
std::vector<ProfileEvent> ProfileSession::take_events() { return {}; }

#endif  // KVBM_NVTX_ENABLED

namespace {

// Microseconds with nanosecond precision, as Chrome's "ts"/"dur" expect.
void write_us(std::ostream& out, std::uint64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%llu.%03llu", static_cast<unsigned long long>(ns / 1000),
                static_cast<unsigned long long>(ns % 1000));
  out << text;
}

}  // namespace

void write_chrome_trace(std::ostream& out, const std::vector<ProfileEvent>& events) {
  out << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"producer\":\"kvbm-replay --profile\"},"
         "\"traceEvents\":[\n";
  out << R"({"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"kvbm-replay"}})";
  std::map<std::uint32_t, bool> threads;
  for (const auto& event : events) threads[event.thread] = true;
  for (const auto& [thread, unused] : threads) {
    out << ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" << thread
        << R"(,"args":{"name":"kvbm thread )" << thread << "\"}}";
  }
  for (const auto& event : events) {
    out << ",\n{\"name\":" << nlohmann::json(event.name).dump()
        << R"(,"cat":"kvbm","ph":"X","pid":1,"tid":)" << event.thread << ",\"ts\":";
    write_us(out, event.start_ns);
    out << ",\"dur\":";
    write_us(out, event.duration_ns);
    if (event.has_count) out << ",\"args\":{\"count\":" << event.count << '}';
    out << '}';
  }
  out << "\n]}\n";
}

std::vector<RangeTotals> range_totals(const std::vector<ProfileEvent>& events) {
  std::map<std::string, std::vector<std::uint64_t>> durations;
  for (const auto& event : events) durations[event.name].push_back(event.duration_ns);
  std::vector<RangeTotals> totals;
  for (auto& [name, values] : durations) {
    std::sort(values.begin(), values.end());
    const auto rank = [&](double q) {  // nearest rank: the ceil(q n)-th smallest
      const auto n = values.size();
      auto k = static_cast<std::size_t>(q * static_cast<double>(n) + 0.999999999);
      return values[std::clamp<std::size_t>(k, 1, n) - 1];
    };
    RangeTotals t;
    t.name = name;
    t.calls = values.size();
    for (const std::uint64_t v : values) t.total_ns += v;
    t.p50_ns = rank(0.50);
    t.p99_ns = rank(0.99);
    totals.push_back(std::move(t));
  }
  std::stable_sort(totals.begin(), totals.end(), [](const RangeTotals& a, const RangeTotals& b) {
    return a.total_ns > b.total_ns;
  });
  return totals;
}

void print_range_totals(std::ostream& out, const std::vector<RangeTotals>& totals) {
  char line[160];
  std::snprintf(line, sizeof line, "%-32s %10s %12s %10s %10s\n", "range (inclusive)", "calls",
                "total ms", "p50 us", "p99 us");
  out << line;
  for (const auto& t : totals) {
    std::snprintf(line, sizeof line, "%-32s %10llu %12.3f %10.3f %10.3f\n", t.name.c_str(),
                  static_cast<unsigned long long>(t.calls), static_cast<double>(t.total_ns) / 1e6,
                  static_cast<double>(t.p50_ns) / 1e3, static_cast<double>(t.p99_ns) / 1e3);
    out << line;
  }
}

}  // namespace kvbm::replay
