// bench/kv_publisher_bench.cpp — kvbm::ZmqEventPublisher throughput: events/s from on_events
// (32-record views of Stored blocks with 16 token ids, as a batch-32 register delivers) to
// encoded, sent batches (ipc PUB, no subscriber: ZeroMQ drops at the socket, the encoding is the
// work). publish/32/1 adds a replay socket, so each batch is also kept for replay and each
// stored block's tokens for snapshots. items_per_second = events published.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "kvbm/events/zmq_publisher.hpp"

namespace {

void publish(benchmark::State& state) {
  const auto view_size = static_cast<std::size_t>(state.range(0));
  kvbm::KvEventsConfig config;
  config.endpoint = "ipc:///tmp/kvbm-publisher-bench-" + std::to_string(::getpid());
  if (state.range(1) != 0) {
    config.replay_endpoint = "ipc:///tmp/kvbm-publisher-bench-replay-" + std::to_string(::getpid());
  }
  config.max_queue_size = 1u << 30;  // measure sending, not dropping
  kvbm::ZmqEventPublisher publisher(config);
  auto source = std::make_shared<kvbm::KvEventSource>();
  source->block_size = 16;
  source->medium = "GPU";
  std::shared_ptr<const kvbm::KvEventSource> shared = source;
  std::vector<kvbm::Token> tokens(view_size * 16);
  std::iota(tokens.begin(), tokens.end(), 0u);
  std::vector<kvbm::KvEventRecord> records(view_size);
  std::uint64_t counter = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < view_size; ++i) {
      auto& r = records[i];
      r.kind = kvbm::KvEventKind::Stored;
      r.hash = kvbm::SequenceHash::from_parts(++counter, std::nullopt, 0);
      r.block_hash = counter;
      r.token_offset = static_cast<std::uint32_t>(i * 16);
      r.token_count = 16;
    }
    publisher.on_events(kvbm::KvEventView{shared, records, tokens});
    // Stored blocks stay in the snapshot mirror; remove them so memory stays flat.
    for (auto& r : records) {
      r.kind = kvbm::KvEventKind::Removed;
      r.token_count = 0;
    }
    publisher.on_events(kvbm::KvEventView{shared, records, tokens});
  }
  publisher.flush();
  const auto stats = publisher.stats();
  state.counters["batches"] = static_cast<double>(stats.batches_published);
  state.SetItemsProcessed(static_cast<std::int64_t>(stats.events_published));
}

BENCHMARK(publish)->Args({32, 0})->Args({32, 1})->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
