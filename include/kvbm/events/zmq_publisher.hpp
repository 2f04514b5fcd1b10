// kvbm/events/zmq_publisher.hpp — a KvEventSink that publishes vLLM-format KV events over ZeroMQ
// (target kvbm::events; needs libzmq, built only when ZeroMQ, cppzmq and msgpack-cxx are found).
//
// Wire (vLLM's, decodable unchanged by vLLM/Dynamo/SGLang subscribers). One batch = three frames
// on the PUB socket: topic (utf-8; an empty frame when the topic is ""), the sequence number as
// 8 bytes big-endian unsigned (from 0), and the msgpack payload
//   [ts: float64 seconds since the epoch, [event, ...], data_parallel_rank: int]
// Each event is a msgpack map tagged under "type":
//   {"type": "BlockStored", "block_hashes": [u64], "parent_block_hash": u64|nil,
//    "token_ids": [int...], "block_size": int, "lora_id": nil, "medium": str|nil,
//    "lora_name": str|nil[, "extra_keys": [tuple|nil]][, "cache_salt": str]}
//   {"type": "BlockRemoved", "block_hashes": [u64...], "medium": str|nil}
//   {"type": "AllBlocksCleared"}
// Fields without a default in vLLM are always present (nil when unset); defaulted ones
// (group_idx, ...) are omitted. A block staged with HashKeys (see kvbm/kv_events.hpp) names its
// LoRA in lora_name and gets vLLM's extra_keys entry: a tuple of the multimodal hashes overlapping
// it (u64), then the LoRA name, then the cache salt on position 0 (nil when all are absent); a
// salted block also carries "cache_salt" (a field Dynamo's router reads by name and vLLM's
// decoder ignores). Without keys both are omitted. One BlockStored per block; consecutive removals of one
// pool share a BlockRemoved. A pool whose cache is cleared while another pool sharing the
// publisher still holds blocks is reported as BlockRemoved of that pool's blocks (a router's
// AllBlocksCleared would drop the other tiers too).
//
// Replay (ROUTER socket at replay_endpoint). A request is [identity, "", body]; body is
//   8 bytes big-endian start sequence: every buffered batch with seq >= start is answered as
//     [identity, "", seq (8B BE), payload], then the end marker [identity, "", -1 (8B BE), ""];
//   the 8 ASCII bytes "snapshot" (checked first; as a start sequence it would be ~8.3e18, a
//     number no stream reaches): one reply [identity, "", S (8B BE), payload] whose payload is a
//     batch [ts, [AllBlocksCleared, BlockStored...], rank] holding every block matchable now
//     (parents before children), then the end marker. The snapshot is the state after every
//     batch with seq < S: apply it, then the live batches with seq >= S.
//   Anything else gets only the end marker. The buffer keeps the last buffer_steps batches.
//
// Ownership and threads: a pulling sink. Managers built with it only record, under their own
// locks (no handoff, no copy, no sink call on the caller's thread); an internal
// BatchingEventSink's thread drains them (window and max_events from KvEventBatching, early at
// its drain_threshold) and hands each batch to a bounded queue (max_queue_size deliveries;
// beyond it the batch is dropped and counted, never blocking anyone); the publisher thread
// encodes, sends and answers the replay socket. on_events called directly (not by a manager)
// queues the view itself, batched by the same window. flush() returns once everything recorded
// before it was sent. Destruction flushes, then joins both threads. All methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kvbm/errors.hpp"
#include "kvbm/kv_events.hpp"

namespace kvbm {

/// vLLM's KVEventsConfig fields and defaults (plus batching and socket linger).
struct KvEventsConfig {
  std::string endpoint = "tcp://*:5557";
  std::string replay_endpoint;  ///< empty: no replay socket
  std::size_t buffer_steps = 10'000;
  int hwm = 100'000;
  std::size_t max_queue_size = 100'000;
  std::string topic;
  int data_parallel_rank = 0;
  KvEventBatching batching{};
  int linger_ms = 1000;  ///< how long close waits for queued messages to go out
};

/// A publisher could not be set up (bad endpoint, address in use); the message names it.
class KvEventsError : public Error {
 public:
  using Error::Error;
};

/// vLLM's rule: an endpoint is bound if it contains "*" or "::", or starts with ipc:// or
/// inproc://; otherwise it is connected to.
[[nodiscard]] bool kv_events_binds(const std::string& endpoint);
/// vLLM's data-parallel offset: inproc endpoints get "_dp<rank>", tcp ports are offset by the
/// rank; others are returned unchanged.
[[nodiscard]] std::string kv_events_offset_endpoint(const std::string& endpoint, int rank);

class ZmqEventPublisher final : public KvEventSink {
 public:
  struct Stats {
    std::uint64_t events_published = 0;   ///< records sent in batches
    std::uint64_t batches_published = 0;  ///< wire batches (sequence numbers used)
    std::uint64_t batches_dropped = 0;    ///< deliveries refused because the queue was full
    std::uint64_t events_dropped = 0;     ///< records in them
  };

  /// Binds or connects both sockets now; throws KvEventsError naming the endpoint.
  explicit ZmqEventPublisher(KvEventsConfig config);
  ~ZmqEventPublisher() override;
  ZmqEventPublisher(const ZmqEventPublisher&) = delete;
  ZmqEventPublisher& operator=(const ZmqEventPublisher&) = delete;

  void on_events(const KvEventView& view) override;
  // The pull protocol, served by the internal batching sink (see the top of this file).
  [[nodiscard]] bool pulls() const noexcept override { return true; }
  [[nodiscard]] std::size_t pull_threshold() const noexcept override;
  void attach(detail::EventPullSource& source) override;
  void detach(detail::EventPullSource& source) noexcept override;
  void pull_requested(bool full) noexcept override;
  /// Returns once everything recorded (by attached managers) or queued before the call has
  /// been sent.
  void flush();
  [[nodiscard]] Stats stats() const;
  /// The endpoints after the rank offset (for tcp port 0: the port actually bound).
  [[nodiscard]] std::string endpoint() const;
  [[nodiscard]] std::string replay_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvbm
