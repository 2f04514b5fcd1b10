#include "replay/kv_events_cli.hpp"

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#ifdef KVBM_REPLAY_HAS_EVENTS
#include "kvbm/events/zmq_publisher.hpp"
#endif

namespace kvbm::replay {

void add_kv_events_flags(CLI::App& app, KvEventsOptions& options) {
  app.add_option("--kv-events", options.endpoint,
                 "publish KV events (vLLM wire format) on this ZeroMQ endpoint, e.g. tcp://*:5557");
  app.add_option("--kv-events-replay", options.replay_endpoint,
                 "the events' replay/snapshot ROUTER endpoint, e.g. tcp://*:5558");
  app.add_option("--kv-events-topic", options.topic, "topic frame of every event batch");
  app.add_option("--kv-events-linger-ms", options.linger_ms,
                 "keep the event sockets serving this long after the replay ends")
      ->check(CLI::NonNegativeNumber);
  // A PUB socket drops what it sends before a subscriber has joined, and a subscriber that
  // connected first still needs a reconnect round (100 ms by default) once the endpoint is bound:
  // a short replay can publish everything before then.
  app.add_option("--kv-events-wait-ms", options.wait_ms,
                 "after binding the event sockets, wait this long before the replay starts, so "
                 "subscribers that connect at startup see the first batch")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--cache-dump", options.cache_dump,
                 "write the wire hash of every block matchable in G1 at the end (decimal, one "
                 "per line, ascending)");
}

struct ReplayKvEvents::Impl {
  KvEventsOptions options;
#ifdef KVBM_REPLAY_HAS_EVENTS
  std::shared_ptr<ZmqEventPublisher> publisher;
#endif
};

ReplayKvEvents::ReplayKvEvents(const KvEventsOptions& options, ReplayConfig& config)
    : impl_{std::make_unique<Impl>()} {
  impl_->options = options;
  config.cache_dump = !options.cache_dump.empty();
  if (options.endpoint.empty()) {
    if (!options.replay_endpoint.empty()) {
      throw std::runtime_error("--kv-events-replay needs --kv-events");
    }
    return;
  }
#ifdef KVBM_REPLAY_HAS_EVENTS
  KvEventsConfig events;
  events.endpoint = options.endpoint;
  events.replay_endpoint = options.replay_endpoint;
  events.topic = options.topic;
  impl_->publisher = std::make_shared<ZmqEventPublisher>(events);
  config.event_sink = impl_->publisher;
  if (options.wait_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options.wait_ms));
#else
  throw std::runtime_error("--kv-events: this kvbm-replay was built without kvbm::events "
                           "(ZeroMQ/msgpack not found at configure time)");
#endif
}

ReplayKvEvents::~ReplayKvEvents() = default;

void ReplayKvEvents::finish(ReplayReport& report) {
#ifdef KVBM_REPLAY_HAS_EVENTS
  if (impl_->publisher) {
    impl_->publisher->flush();
    const auto stats = impl_->publisher->stats();
    report.kv_events = true;
    report.events_published = stats.events_published;
    report.event_batches_dropped = stats.batches_dropped;
  }
#endif
  if (!impl_->options.cache_dump.empty()) {
    std::ofstream out(impl_->options.cache_dump);
    if (!out) throw std::runtime_error("cannot write --cache-dump " + impl_->options.cache_dump);
    for (const auto hash : report.cache_dump) out << hash << '\n';
    if (!out.flush()) throw std::runtime_error("cannot write --cache-dump " + impl_->options.cache_dump);
  }
}

void ReplayKvEvents::linger() {
#ifdef KVBM_REPLAY_HAS_EVENTS
  if (impl_->publisher && impl_->options.linger_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(impl_->options.linger_ms));
  }
#endif
}

}  // namespace kvbm::replay
