// tools/replay/kv_events_cli.hpp — kvbm-replay's KV events flags and their publisher.
//
// --kv-events ENDPOINT          publish G1 (and G2) events with kvbm::ZmqEventPublisher
// --kv-events-replay ENDPOINT   its replay ROUTER socket (replay and snapshot requests)
// --kv-events-topic TOPIC       the first frame of every batch (default "")
// --kv-events-linger-ms N       keep both sockets serving N ms after the report is printed
// --kv-events-wait-ms N         wait N ms after binding before the replay starts, so subscribers
//                               that connect at startup see its first batch
// --cache-dump FILE             at the end, the wire hash of every block matchable in G1,
//                               decimal, one per line, ascending (works without --kv-events)
// Built into the kvbm-replay executable only: the publisher needs kvbm::events, which a build
// without ZeroMQ lacks (then --kv-events fails with a message; --cache-dump still works).
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "replay/report.hpp"
#include "replay/simulate.hpp"

namespace kvbm::replay {

struct KvEventsOptions {
  std::string endpoint;
  std::string replay_endpoint;
  std::string topic;
  int linger_ms = 0;
  int wait_ms = 0;
  std::string cache_dump;
  [[nodiscard]] bool any() const { return !endpoint.empty() || !cache_dump.empty(); }
};

void add_kv_events_flags(CLI::App& app, KvEventsOptions& options);

/// Owns the publisher for one replay. Throws std::runtime_error for an unusable setting.
class ReplayKvEvents {
 public:
  ReplayKvEvents(const KvEventsOptions& options, ReplayConfig& config);
  ~ReplayKvEvents();
  /// After the replay: flushes, fills the report's event counts, writes the cache dump.
  void finish(ReplayReport& report);
  /// After the report is printed: serves late subscribers for linger_ms, then closes.
  void linger();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm::replay
