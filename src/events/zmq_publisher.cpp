// The vLLM-compatible ZeroMQ publisher (kvbm/events/zmq_publisher.hpp).
#include "kvbm/events/zmq_publisher.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <msgpack.hpp>
#include <zmq.hpp>

namespace kvbm {

bool kv_events_binds(const std::string& endpoint) {
  return endpoint.find('*') != std::string::npos || endpoint.find("::") != std::string::npos ||
         endpoint.starts_with("ipc://") || endpoint.starts_with("inproc://");
}

std::string kv_events_offset_endpoint(const std::string& endpoint, int rank) {
  if (endpoint.find("inproc") != std::string::npos) {
    return endpoint + "_dp" + std::to_string(rank);
  }
  if (endpoint.find("tcp") != std::string::npos) {
    const auto colon = endpoint.rfind(':');
    if (colon == std::string::npos || colon + 1 >= endpoint.size()) return endpoint;
    int port = 0;
    try {
      port = std::stoi(endpoint.substr(colon + 1));
    } catch (const std::exception&) {
      throw KvEventsError("kv events: endpoint '" + endpoint + "' has no numeric port");
    }
    return endpoint.substr(0, colon + 1) + std::to_string(port + rank);
  }
  return endpoint;
}

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}
void pack_opt_str(Packer& pk, const std::optional<std::string>& s) {
  if (s) {
    pack_str(pk, *s);
  } else {
    pk.pack_nil();
  }
}

std::array<char, 8> big_endian(std::uint64_t v) {
  std::array<char, 8> out{};
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  return out;
}

/// The msgpack bytes `fn` packs, packed once by msgpack-cxx: the encoder copies runs of constant
/// fields (keys, and values fixed per source) instead of packing each again for every event.
template <class Fn>
std::string packed(Fn fn) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  fn(pk);
  return std::string(buf.data(), buf.size());
}

/// The constant runs of vLLM's event maps.
struct PackedKeys {
  std::string stored_head = packed([](Packer& pk) {  // then the hash
    pack_str(pk, "type");
    pack_str(pk, "BlockStored");
    pack_str(pk, "block_hashes");
    pk.pack_array(1);
  });
  std::string parent = packed([](Packer& pk) { pack_str(pk, "parent_block_hash"); });
  std::string token_ids = packed([](Packer& pk) { pack_str(pk, "token_ids"); });
  std::string extra_keys = packed([](Packer& pk) {  // then vLLM's one-tuple
    pack_str(pk, "extra_keys");
    pk.pack_array(1);
  });
  std::string cache_salt = packed([](Packer& pk) { pack_str(pk, "cache_salt"); });
  std::string removed_head = packed([](Packer& pk) {  // then the hashes
    pk.pack_map(3);
    pack_str(pk, "type");
    pack_str(pk, "BlockRemoved");
    pack_str(pk, "block_hashes");
  });
  std::string cleared = packed([](Packer& pk) {
    pk.pack_map(1);
    pack_str(pk, "type");
    pack_str(pk, "AllBlocksCleared");
  });
};
const PackedKeys& packed_keys() {
  static const PackedKeys keys;
  return keys;
}

/// The runs fixed per source: a BlockStored's block_size, lora_id and medium fields and the
/// lora_name key; a BlockRemoved's medium field.
struct PackedSource {
  std::string stored_tail;
  std::string removed_tail;
  explicit PackedSource(const KvEventSource& source)
      : stored_tail{packed([&](Packer& pk) {
          pack_str(pk, "block_size");
          pk.pack_uint32(source.block_size);
          pack_str(pk, "lora_id");
          pk.pack_nil();
          pack_str(pk, "medium");
          pack_opt_str(pk, source.medium);
          pack_str(pk, "lora_name");
        })},
        removed_tail{packed([&](Packer& pk) {
          pack_str(pk, "medium");
          pack_opt_str(pk, source.medium);
        })} {}
};

void write(msgpack::sbuffer& buf, const std::string& bytes) { buf.write(bytes.data(), bytes.size()); }

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A matchable block as a snapshot needs it (tokens and keys only where snapshots can be asked
/// for: with a replay socket; otherwise the mirror only tells whose blocks a Cleared drops).
struct MirrorBlock {
  std::optional<std::uint64_t> parent;
  std::uint32_t position = 0;
  std::vector<Token> tokens;
  std::shared_ptr<const HashKeys> keys;
};
struct Mirror {
  std::shared_ptr<const KvEventSource> source;
  std::optional<PackedSource> packed;
  absl::flat_hash_map<std::uint64_t, MirrorBlock> blocks;
};

/// Room left before a batch's events for the payload's head (fixarray 3, float64 timestamp,
/// array header of at most 5 bytes), so the payload is packed in place, not copied behind it.
constexpr std::size_t kHeadRoom = 16;

}  // namespace

struct ZmqEventPublisher::Impl {
  KvEventsConfig config;
  std::string endpoint, replay_endpoint;
  zmq::context_t context{1};
  zmq::socket_t pub{context, zmq::socket_type::pub};
  std::optional<zmq::socket_t> router;

  // Shared with the callers of on_events and the batching thread.
  mutable std::mutex mutex;
  std::condition_variable wake, done;
  KvEventBuffer incoming;
  std::chrono::steady_clock::time_point oldest{};
  std::uint64_t received = 0, delivered = 0;
  bool flush_requested = false, stop = false;
  bool send_now = false;  // a batch the batching thread already windowed: no second window
  Stats stats;
  /// Drains the managers attached to the publisher; declared last so that it is destroyed
  /// first, delivering its last batches into `incoming` while everything else still lives.
  std::shared_ptr<BatchingEventSink> batcher;

  // Publisher thread only.
  std::uint64_t next_seq = 0;
  std::deque<std::pair<std::uint64_t, std::string>> replay_buffer;
  std::unordered_map<const KvEventSource*, Mirror> mirrors;  // node-stable: publish() holds one
  msgpack::sbuffer events_buf;
  std::size_t events_in_batch = 0;
  std::size_t records_in_batch = 0;
  std::vector<std::uint64_t> removed_run;
  std::shared_ptr<const KvEventSource> removed_source;
  std::thread thread;

  explicit Impl(KvEventsConfig c) : config{std::move(c)} {
    endpoint = kv_events_offset_endpoint(config.endpoint, config.data_parallel_rank);
    pub.set(zmq::sockopt::sndhwm, config.hwm);
    pub.set(zmq::sockopt::linger, config.linger_ms);
    attach(pub, endpoint);
    if (endpoint.find(":0") != std::string::npos || endpoint.find('*') != std::string::npos) {
      endpoint = pub.get(zmq::sockopt::last_endpoint);
    }
    if (!config.replay_endpoint.empty()) {
      replay_endpoint = kv_events_offset_endpoint(config.replay_endpoint, config.data_parallel_rank);
      router.emplace(context, zmq::socket_type::router);
      router->set(zmq::sockopt::linger, 0);
      attach(*router, replay_endpoint);
      if (replay_endpoint.find('*') != std::string::npos) {
        replay_endpoint = router->get(zmq::sockopt::last_endpoint);
      }
    }
    if (config.batching.max_events == 0) config.batching.max_events = 1;
    begin_payload(events_buf);
  }

  static void attach(zmq::socket_t& socket, const std::string& where) {
    try {
      if (kv_events_binds(where)) {
        socket.bind(where);
      } else {
        socket.connect(where);
      }
    } catch (const zmq::error_t& e) {
      throw KvEventsError("kv events: cannot " + std::string(kv_events_binds(where) ? "bind" : "connect") +
                          " '" + where + "': " + e.what());
    }
  }

  // ---- encoding (publisher thread) ----
  // vLLM's BlockStored, plus `extra_keys` (vLLM's per-block tuple: multimodal hashes, LoRA name,
  // cache salt on the first block) and `cache_salt` (read by name by Dynamo's router) when the
  // block was staged with HashKeys; both are omitted otherwise (defaulted / not vLLM's).
  static void pack_stored(msgpack::sbuffer& buf, const Mirror& mirror, std::uint64_t hash,
                          const std::optional<std::uint64_t>& parent,
                          std::span<const Token> tokens, const HashKeys* keys,
                          std::uint32_t position) {
    Packer pk(&buf);
    const PackedKeys& k = packed_keys();
    const bool has_keys = keys != nullptr && !keys->empty();
    const bool has_lora = has_keys && !keys->lora_name().empty();
    const bool has_salt = has_keys && !keys->cache_salt().empty();
    pk.pack_map(8 + (has_keys ? 1 : 0) + (has_salt ? 1 : 0));
    write(buf, k.stored_head);
    pk.pack_uint64(hash);
    write(buf, k.parent);
    if (parent) {
      pk.pack_uint64(*parent);
    } else {
      pk.pack_nil();
    }
    write(buf, k.token_ids);
    pk.pack_array(static_cast<std::uint32_t>(tokens.size()));
    for (const Token t : tokens) pk.pack_uint32(t);
    write(buf, mirror.packed->stored_tail);  // block_size, lora_id, medium, the lora_name key
    if (has_lora) {
      pack_str(pk, keys->lora_name());
    } else {
      pk.pack_nil();
    }
    if (has_keys) {
      const std::vector<std::uint64_t> items =
          keys->block_extra_keys(position, mirror.source->block_size);
      const bool salt_here = has_salt && position == 0;
      const std::size_t n = items.size() + (has_lora ? 1 : 0) + (salt_here ? 1 : 0);
      write(buf, k.extra_keys);
      if (n == 0) {
        pk.pack_nil();
      } else {
        pk.pack_array(static_cast<std::uint32_t>(n));
        for (const std::uint64_t item : items) pk.pack_uint64(item);
        if (has_lora) pack_str(pk, keys->lora_name());
        if (salt_here) pack_str(pk, keys->cache_salt());
      }
    }
    if (has_salt) {
      write(buf, k.cache_salt);
      pack_str(pk, keys->cache_salt());
    }
  }
  static void pack_removed(msgpack::sbuffer& buf, const Mirror& mirror,
                           std::span<const std::uint64_t> hashes) {
    Packer pk(&buf);
    write(buf, packed_keys().removed_head);
    pk.pack_array(static_cast<std::uint32_t>(hashes.size()));
    for (const auto h : hashes) pk.pack_uint64(h);
    write(buf, mirror.packed->removed_tail);
  }
  static void pack_cleared(msgpack::sbuffer& buf) { write(buf, packed_keys().cleared); }

  /// A source's mirror, with its packed runs made on first sight.
  Mirror& mirror_of(const std::shared_ptr<const KvEventSource>& source) {
    Mirror& mirror = mirrors[source.get()];
    if (!mirror.source) {
      mirror.source = source;
      mirror.packed.emplace(*source);
    }
    return mirror;
  }

  /// Starts a batch's buffer: kHeadRoom bytes for the head that finish_payload() packs.
  static void begin_payload(msgpack::sbuffer& events) {
    events.clear();
    static constexpr char zeros[kHeadRoom] = {};
    events.write(zeros, kHeadRoom);
  }
  /// The payload [ts, [events...], data_parallel_rank] around the `count` events packed after
  /// begin_payload(): its head packed into the room before them, the rank after. Valid until
  /// `events` changes.
  std::string_view finish_payload(msgpack::sbuffer& events, std::size_t count) const {
    msgpack::sbuffer head;
    Packer hp(&head);
    hp.pack_array(3);
    hp.pack_double(now_seconds());
    hp.pack_array(static_cast<std::uint32_t>(count));
    Packer pk(&events);
    pk.pack_int(config.data_parallel_rank);
    char* start = events.data() + (kHeadRoom - head.size());
    std::memcpy(start, head.data(), head.size());
    return {start, events.size() - (kHeadRoom - head.size())};
  }

  void end_removed_run() {
    if (removed_run.empty()) return;
    pack_removed(events_buf, mirror_of(removed_source), removed_run);
    ++events_in_batch;
    removed_run.clear();
    removed_source.reset();
  }

  void send_batch() {
    end_removed_run();
    if (events_in_batch == 0) return;
    const std::string_view payload = finish_payload(events_buf, events_in_batch);
    const std::uint64_t seq = next_seq++;
    const auto seq_bytes = big_endian(seq);
    try {
      pub.send(zmq::buffer(config.topic), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(seq_bytes), zmq::send_flags::sndmore);
      pub.send(zmq::buffer(payload), zmq::send_flags::none);
    } catch (const zmq::error_t&) {  // a PUB socket drops on HWM; a send error loses one batch
    }
    if (router) {  // without a replay socket nobody can ask for a batch again
      replay_buffer.emplace_back(seq, std::string(payload));
      while (replay_buffer.size() > config.buffer_steps) replay_buffer.pop_front();
    }
    {
      std::lock_guard lock{mutex};
      stats.batches_published += 1;
      stats.events_published += records_in_batch;
    }
    begin_payload(events_buf);
    events_in_batch = 0;
    records_in_batch = 0;
  }

  void publish(const KvEventView& view) {
    Mirror& mirror = mirror_of(view.source);
    for (const KvEventRecord& r : view.records) {
      if (records_in_batch >= config.batching.max_events) send_batch();
      ++records_in_batch;
      if (r.kind != KvEventKind::Removed || removed_source.get() != view.source.get()) end_removed_run();
      switch (r.kind) {
        case KvEventKind::Stored: {
          const auto tokens = view.token_ids(r);
          pack_stored(events_buf, mirror, r.block_hash, r.parent(), tokens, view.hash_keys(r),
                      r.position());
          ++events_in_batch;
          MirrorBlock& block = mirror.blocks[r.block_hash];
          block.parent = r.parent();
          block.position = r.position();
          if (router) {
            block.tokens.assign(tokens.begin(), tokens.end());
            block.keys = view.shared_keys(r);
          }
          break;
        }
        case KvEventKind::Removed:
          removed_source = view.source;
          removed_run.push_back(r.block_hash);
          mirror.blocks.erase(r.block_hash);
          break;
        case KvEventKind::Cleared: {
          const bool others_hold = std::any_of(mirrors.begin(), mirrors.end(), [&](const auto& m) {
            return m.first != view.source.get() && !m.second.blocks.empty();
          });
          if (others_hold) {
            std::vector<std::uint64_t> hashes;
            for (const auto& [h, b] : mirror.blocks) hashes.push_back(h);
            std::sort(hashes.begin(), hashes.end());
            if (!hashes.empty()) {
              pack_removed(events_buf, mirror, hashes);
              ++events_in_batch;
            }
          } else {
            pack_cleared(events_buf);
            ++events_in_batch;
          }
          mirror.blocks.clear();
          break;
        }
      }
    }
  }

  // ---- replay (publisher thread) ----
  std::string snapshot_payload() const {
    struct Entry {
      std::uint32_t position;
      std::uint64_t hash;
      const MirrorBlock* block;
      const Mirror* mirror;
    };
    std::vector<Entry> entries;
    for (const auto& [key, mirror] : mirrors) {
      for (const auto& [h, b] : mirror.blocks) entries.push_back({b.position, h, &b, &mirror});
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.position != b.position ? a.position < b.position : a.hash < b.hash;
    });
    msgpack::sbuffer events;
    begin_payload(events);
    pack_cleared(events);
    for (const Entry& e : entries) {
      pack_stored(events, *e.mirror, e.hash, e.block->parent, e.block->tokens, e.block->keys.get(),
                  e.block->position);
    }
    return std::string(finish_payload(events, entries.size() + 1));
  }

  void answer_replays() {
    if (!router) return;
    for (;;) {
      std::vector<zmq::message_t> parts;
      zmq::message_t part;
      if (!router->recv(part, zmq::recv_flags::dontwait)) return;
      parts.push_back(std::move(part));
      while (parts.back().more()) {
        zmq::message_t next;
        (void)router->recv(next, zmq::recv_flags::none);
        parts.push_back(std::move(next));
      }
      if (parts.size() < 2) continue;
      const zmq::message_t& identity = parts.front();
      const zmq::message_t& body = parts.back();
      auto reply = [&](const std::array<char, 8>& seq, std::string_view payload) {
        router->send(zmq::buffer(identity.data(), identity.size()), zmq::send_flags::sndmore);
        router->send(zmq::message_t{}, zmq::send_flags::sndmore);
        router->send(zmq::buffer(seq), zmq::send_flags::sndmore);
        router->send(zmq::buffer(payload.data(), payload.size()), zmq::send_flags::none);
      };
      try {
        if (body.to_string_view() == "snapshot") {  // as a start seq: 8.3e18, never reached
          reply(big_endian(next_seq), snapshot_payload());
        } else if (body.size() == 8) {
          std::uint64_t start = 0;
          for (std::size_t i = 0; i < 8; ++i) start = (start << 8) | static_cast<const unsigned char*>(body.data())[i];
          for (const auto& [seq, payload] : replay_buffer) {
            if (seq >= start) reply(big_endian(seq), payload);
          }
        }
        reply(big_endian(~std::uint64_t{0}), {});
      } catch (const zmq::error_t&) {  // the requester went away
      }
    }
  }

  // ---- the queue (callers of on_events, the batching thread) ----
  /// `windowed`: the batching thread already held these records for a window; send them now.
  void enqueue(const KvEventView& view, bool windowed) {
    bool urgent = false;
    {
      std::lock_guard lock{mutex};
      if (incoming.appends() >= config.max_queue_size) {
        stats.batches_dropped += 1;
        stats.events_dropped += view.records.size();
        return;
      }
      if (incoming.empty()) oldest = std::chrono::steady_clock::now();
      incoming.append(view);
      ++received;
      send_now = send_now || windowed;
      urgent = windowed || incoming.size() >= config.batching.max_events;
    }
    if (urgent) wake.notify_one();
  }

  // ---- the thread ----
  /// Under `mutex`: what is queued must go out now, without waiting for its window.
  [[nodiscard]] bool urgent_locked() const {
    return stop || flush_requested || send_now || incoming.size() >= config.batching.max_events;
  }

  void run() {
    KvEventBuffer working;
    const auto idle = std::chrono::milliseconds(10);
    for (;;) {
      std::chrono::steady_clock::duration timeout = idle;
      {
        std::unique_lock lock{mutex};
        if (!incoming.empty()) {
          timeout = std::max<std::chrono::steady_clock::duration>(
              std::chrono::steady_clock::duration::zero(),
              oldest + config.batching.window - std::chrono::steady_clock::now());
        }
        if (!urgent_locked() && !router) {
          wake.wait_for(lock, std::min<std::chrono::steady_clock::duration>(timeout, idle));
        }
      }
      if (router) {
        zmq::pollitem_t item{router->handle(), 0, ZMQ_POLLIN, 0};
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
        bool urgent = false;
        {
          std::lock_guard lock{mutex};
          urgent = urgent_locked();
        }
        zmq::poll(&item, 1, urgent ? std::chrono::milliseconds(0) : std::min(ms, std::chrono::milliseconds(idle)));
        answer_replays();
      }
      std::unique_lock lock{mutex};
      const bool due = urgent_locked() ||
                       (!incoming.empty() &&
                        std::chrono::steady_clock::now() - oldest >= config.batching.window);
      if (!due) continue;
      flush_requested = false;
      send_now = false;
      working.swap(incoming);
      const std::uint64_t taken = received;
      lock.unlock();
      working.for_each_view(config.batching.max_events, [&](const KvEventView& v) { publish(v); });
      send_batch();
      working.clear();
      lock.lock();
      delivered = taken;
      done.notify_all();
      if (stop && incoming.empty()) return;
    }
  }
};

ZmqEventPublisher::ZmqEventPublisher(KvEventsConfig config)
    : impl_{std::make_unique<Impl>(std::move(config))} {
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
  try {
    // The batching thread delivers into the queue, each batch sent without a second window.
    // enqueue() copies what it gets and touches no manager: it may take records straight from
    // the managers' buffers.
    KvEventBatching batching = impl_->config.batching;
    batching.deliver_from_pools = true;
    impl_->batcher = std::make_shared<BatchingEventSink>(
        std::make_shared<CallbackEventSink>(
            [impl = impl_.get()](const KvEventView& view) { impl->enqueue(view, true); }),
        batching);
  } catch (...) {
    {
      std::lock_guard lock{impl_->mutex};
      impl_->stop = true;
    }
    impl_->wake.notify_all();
    impl_->thread.join();
    throw;
  }
}

std::size_t ZmqEventPublisher::pull_threshold() const noexcept {
  return impl_->batcher->pull_threshold();
}
void ZmqEventPublisher::attach(detail::EventPullSource& source) { impl_->batcher->attach(source); }
void ZmqEventPublisher::detach(detail::EventPullSource& source) noexcept {
  impl_->batcher->detach(source);
}
void ZmqEventPublisher::pull_requested(bool full) noexcept { impl_->batcher->pull_requested(full); }

ZmqEventPublisher::~ZmqEventPublisher() {
  impl_->batcher.reset();  // flushes what attached managers recorded into the queue, joins
  {
    std::lock_guard lock{impl_->mutex};
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

void ZmqEventPublisher::on_events(const KvEventView& view) { impl_->enqueue(view, false); }

void ZmqEventPublisher::flush() {
  impl_->batcher->flush();  // what attached managers recorded is queued before `target` is read
  std::unique_lock lock{impl_->mutex};
  const std::uint64_t target = impl_->received;
  impl_->flush_requested = true;
  impl_->wake.notify_one();
  impl_->done.wait(lock, [&] { return impl_->delivered >= target; });
}

ZmqEventPublisher::Stats ZmqEventPublisher::stats() const {
  std::lock_guard lock{impl_->mutex};
  return impl_->stats;
}

std::string ZmqEventPublisher::endpoint() const { return impl_->endpoint; }
std::string ZmqEventPublisher::replay_endpoint() const { return impl_->replay_endpoint; }

}  // namespace kvbm
