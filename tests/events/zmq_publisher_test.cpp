// kvbm::ZmqEventPublisher against real ZeroMQ sockets: framing, sequence numbers, replay, the
// snapshot, the bounded queue, flush on destruction, several managers sharing one publisher.
// Payloads are decoded with msgpack-cxx and applied; the result must equal the pools' sets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <msgpack.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "core/test_helpers.hpp"
#include "kvbm/events/zmq_publisher.hpp"
#include "kvbm/request_sequence.hpp"

namespace kvbm {
namespace {

std::string ipc(const std::string& name) {
  static std::atomic<int> counter{0};
  return "ipc://" KVBM_EVENTS_TEST_DIR "/" + name + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++);
}

std::uint64_t be64(const zmq::message_t& m) {
  EXPECT_EQ(m.size(), 8u);
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < m.size(); ++i) v = (v << 8) | static_cast<const unsigned char*>(m.data())[i];
  return v;
}

std::string be64_bytes(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xFF);
  return s;
}

/// Applies decoded payloads: medium -> set of wire hashes; checks the schema as it goes.
struct WireState {
  /// What a BlockStored said about the keys it was hashed under (lora_name, extra_keys,
  /// cache_salt), printed; "-" for an absent field.
  struct Keys {
    std::string lora_name, extra_keys, cache_salt;
    friend bool operator==(const Keys&, const Keys&) = default;
    friend void PrintTo(const Keys& k, std::ostream* out) {
      *out << "{lora_name " << k.lora_name << ", extra_keys " << k.extra_keys << ", cache_salt "
           << k.cache_salt << "}";
    }
  };
  std::map<std::string, std::set<std::uint64_t>> by_medium;
  std::map<std::uint64_t, Keys> keys;
  std::size_t events = 0;

  static std::string print(const std::map<std::string, msgpack::object>& fields, const char* key) {
    const auto it = fields.find(key);
    if (it == fields.end()) return "-";
    std::ostringstream out;
    out << it->second;
    return out.str();
  }

  static std::string medium_of(const msgpack::object& v) {
    return v.type == msgpack::type::NIL ? std::string("<nil>") : v.as<std::string>();
  }
  void apply(const std::string& payload, int expect_rank = 0) {
    auto handle = msgpack::unpack(payload.data(), payload.size());
    const msgpack::object& batch = handle.get();
    ASSERT_EQ(batch.type, msgpack::type::ARRAY);
    ASSERT_EQ(batch.via.array.size, 3u);
    ASSERT_EQ(batch.via.array.ptr[0].type, msgpack::type::FLOAT64);
    EXPECT_EQ(batch.via.array.ptr[2].as<int>(), expect_rank);
    const msgpack::object& list = batch.via.array.ptr[1];
    ASSERT_EQ(list.type, msgpack::type::ARRAY);
    for (std::uint32_t i = 0; i < list.via.array.size; ++i) {
      ++events;
      std::map<std::string, msgpack::object> fields;
      const msgpack::object& event = list.via.array.ptr[i];
      ASSERT_EQ(event.type, msgpack::type::MAP);
      for (std::uint32_t k = 0; k < event.via.map.size; ++k) {
        fields[event.via.map.ptr[k].key.as<std::string>()] = event.via.map.ptr[k].val;
      }
      const auto type = fields.at("type").as<std::string>();
      if (type == "BlockStored") {
        // vLLM's seven required fields and the tag; extra_keys and cache_salt only with keys.
        EXPECT_EQ(fields.size(), 8u + fields.count("extra_keys") + fields.count("cache_salt"));
        for (const char* key : {"block_hashes", "parent_block_hash", "token_ids", "block_size",
                                "lora_id", "medium", "lora_name"}) {
          EXPECT_TRUE(fields.contains(key)) << key;
        }
        if (fields.contains("cache_salt")) EXPECT_TRUE(fields.contains("extra_keys"));
        const Keys block_keys{print(fields, "lora_name"), print(fields, "extra_keys"),
                              print(fields, "cache_salt")};
        for (auto h : fields.at("block_hashes").as<std::vector<std::uint64_t>>()) keys[h] = block_keys;
        auto& set = by_medium[medium_of(fields.at("medium"))];
        const auto& parent = fields.at("parent_block_hash");
        if (parent.type != msgpack::type::NIL) {
          EXPECT_TRUE(set.contains(parent.as<std::uint64_t>())) << "parent not stored first";
        }
        for (auto h : fields.at("block_hashes").as<std::vector<std::uint64_t>>()) set.insert(h);
      } else if (type == "BlockRemoved") {
        EXPECT_EQ(fields.size(), 3u);
        auto& set = by_medium[medium_of(fields.at("medium"))];
        for (auto h : fields.at("block_hashes").as<std::vector<std::uint64_t>>()) {
          EXPECT_EQ(set.erase(h), 1u) << "removed a hash that was not stored";
        }
      } else {
        ASSERT_EQ(type, "AllBlocksCleared");
        EXPECT_EQ(fields.size(), 1u);
        by_medium.clear();
      }
    }
  }
};

template <class Tier>
std::set<std::uint64_t> wire_set(const BlockManager<Tier>& m) {
  std::set<std::uint64_t> out;
  for (const auto& h : m.matchable_hashes()) out.insert(wire_hash(h));
  return out;
}

/// A subscription takes effect asynchronously: calls publish_one(0, 1, ...), flushing after
/// each, until a batch reaches `sub`, then takes whatever else arrived. Returns the sequence
/// number after the last batch taken.
std::uint64_t join_stream(zmq::socket_t& sub, ZmqEventPublisher& publisher,
                          const std::function<void(Token)>& publish_one) {
  for (Token t = 0; t < 2000; ++t) {
    publish_one(t);
    publisher.flush();
    std::optional<std::uint64_t> last;
    zmq::message_t topic;
    while (sub.recv(topic, zmq::recv_flags::dontwait)) {
      zmq::message_t seq, payload;
      EXPECT_TRUE(sub.recv(seq));
      EXPECT_TRUE(sub.recv(payload));
      last = be64(seq);
    }
    if (last) return *last + 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ADD_FAILURE() << "subscriber never joined";
  return 0;
}

/// The replay exchange as SGLang's router does it: a DEALER sends ["", body].
std::vector<std::pair<std::uint64_t, std::string>> replay(zmq::context_t& ctx, const std::string& where,
                                                          const std::string& body) {
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 10000);
  dealer.connect(where);
  dealer.send(zmq::message_t{}, zmq::send_flags::sndmore);
  dealer.send(zmq::buffer(body), zmq::send_flags::none);
  std::vector<std::pair<std::uint64_t, std::string>> out;
  for (;;) {
    zmq::message_t empty, seq, payload;
    if (!dealer.recv(empty)) {
      ADD_FAILURE() << "replay timed out";
      return out;
    }
    EXPECT_EQ(empty.size(), 0u);
    EXPECT_TRUE(dealer.recv(seq));
    EXPECT_TRUE(dealer.recv(payload));
    EXPECT_FALSE(payload.more());
    const std::uint64_t s = be64(seq);
    if (s == ~std::uint64_t{0}) return out;
    out.emplace_back(s, payload.to_string());
  }
}

/// A registered-and-released workload on `m` (a few shared prefixes, some evictions).
template <class Tier>
void workload(BlockManager<Tier>& m, std::uint64_t seed, int requests) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < requests; ++i) {
    auto seq = test::iota_sequence(static_cast<Token>(1000 * (rng() % 7)), 1 + rng() % 6);
    auto hashes = seq.sequence_hashes();
    auto held = m.match_blocks(hashes);
    auto fresh = m.allocate_blocks(hashes.size() - held.size());
    if (!fresh) continue;
    std::vector<CompleteBlock<Tier>> staged;
    for (std::size_t k = 0; k < fresh->size(); ++k) {
      staged.push_back(std::move((*fresh)[k]).complete(seq.blocks()[held.size() + k]));
    }
    for (auto& b : m.register_blocks(std::move(staged))) held.push_back(std::move(b));
    std::reverse(held.begin(), held.end());
    m.release_blocks(std::move(held));
  }
}

TEST(KvEventsConfigRules, BindConnectAndRankOffsetAsVllm) {
  EXPECT_TRUE(kv_events_binds("tcp://*:5557"));
  EXPECT_TRUE(kv_events_binds("tcp://[::]:5557"));
  EXPECT_TRUE(kv_events_binds("ipc:///tmp/x"));
  EXPECT_TRUE(kv_events_binds("inproc://x"));
  EXPECT_FALSE(kv_events_binds("tcp://10.0.0.1:5557"));
  EXPECT_EQ(kv_events_offset_endpoint("tcp://*:5557", 0), "tcp://*:5557");
  EXPECT_EQ(kv_events_offset_endpoint("tcp://*:5557", 3), "tcp://*:5560");
  EXPECT_EQ(kv_events_offset_endpoint("inproc://ev", 2), "inproc://ev_dp2");
  EXPECT_THROW((void)kv_events_offset_endpoint("tcp://*:port", 1), KvEventsError);
  const KvEventsConfig defaults;
  EXPECT_EQ(defaults.endpoint, "tcp://*:5557");
  EXPECT_EQ(defaults.buffer_steps, 10000u);
  EXPECT_EQ(defaults.hwm, 100000);
  EXPECT_EQ(defaults.max_queue_size, 100000u);
  EXPECT_EQ(defaults.topic, "");
  EXPECT_TRUE(defaults.replay_endpoint.empty());
}

TEST(ZmqEventPublisher, BadEndpointThrowsNamingIt) {
  KvEventsConfig config;
  config.endpoint = "nonsense://x*";
  try {
    ZmqEventPublisher publisher(config);
    FAIL() << "expected KvEventsError";
  } catch (const KvEventsError& e) {
    EXPECT_NE(std::string(e.what()).find("nonsense://x*"), std::string::npos);
  }
}

TEST(ZmqEventPublisher, ReplayAndSnapshotRebuildThePool) {
  KvEventsConfig config;
  config.endpoint = ipc("pub");
  config.replay_endpoint = ipc("replay");
  config.batching.max_events = 7;  // several batches
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  auto m = BlockManager<G1>::builder().block_count(12).block_size(test::kTestBlockSize)
               .registry(test::make_registry()).event_sink(publisher).build();
  workload(m, 1, 60);
  publisher->flush();
  const auto stats = publisher->stats();
  EXPECT_GT(stats.batches_published, 3u);
  EXPECT_EQ(stats.batches_dropped, 0u);

  zmq::context_t ctx;
  const auto all = replay(ctx, publisher->replay_endpoint(), be64_bytes(0));
  ASSERT_EQ(all.size(), stats.batches_published);
  WireState state;
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].first, i) << "sequence numbers count from 0 without gaps";
    state.apply(all[i].second);
  }
  EXPECT_EQ(state.by_medium["GPU"], wire_set(m));

  const auto tail = replay(ctx, publisher->replay_endpoint(), be64_bytes(all.size() - 2));
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0], all[all.size() - 2]);

  const auto snapshot = replay(ctx, publisher->replay_endpoint(), "snapshot");
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_EQ(snapshot[0].first, stats.batches_published) << "live stream continues from S";
  WireState from_snapshot;
  from_snapshot.by_medium["GPU"] = {123};  // the leading AllBlocksCleared must drop this
  from_snapshot.apply(snapshot[0].second);
  EXPECT_EQ(from_snapshot.by_medium["GPU"], wire_set(m));

  EXPECT_TRUE(replay(ctx, publisher->replay_endpoint(), "bogus").empty());
}

// LoRA name, cache salt and multimodal hashes of a sequence's HashKeys reach the wire as vLLM
// carries them (lora_name; extra_keys: [(mm hashes..., lora, salt on block 0)]) plus Dynamo's
// cache_salt; the snapshot repeats them; blocks without keys carry none of it.
TEST(ZmqEventPublisher, HashKeysGoOnTheWire) {
  KvEventsConfig config;
  config.endpoint = ipc("pub-keys");
  config.replay_endpoint = ipc("replay-keys");
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  auto m = BlockManager<G1>::builder().block_count(16).block_size(4)
               .registry(test::make_registry()).event_sink(publisher).build();
  HashKeys keys;
  keys.set_lora_name("adapter-a").set_cache_salt("tenant-1");
  keys.add_multimodal_item(MultimodalItem{0xABCD, 5, 2});  // tokens 5..6: block 1 only
  const auto prompt = test::iota_tokens(100, 12);
  RequestSequence<G1> keyed(prompt, 0, 4, keys);
  ASSERT_TRUE(keyed.allocate_blocks(keyed.num_blocks(), m));
  ASSERT_EQ(keyed.complete_and_register_pending(m), 3u);
  RequestSequence<G1> lora_only(prompt, 0, 4, HashKeys{}.set_lora_name("adapter-b"));
  ASSERT_TRUE(lora_only.allocate_blocks(lora_only.num_blocks(), m));
  ASSERT_EQ(lora_only.complete_and_register_pending(m), 3u);
  RequestSequence<G1> plain(prompt, 0, 4);
  ASSERT_TRUE(plain.allocate_blocks(plain.num_blocks(), m));
  ASSERT_EQ(plain.complete_and_register_pending(m), 3u);
  publisher->flush();

  const auto keyed_hashes = keyed_sequence_hashes(prompt, 4, keys);
  const auto lora_hashes = keyed_sequence_hashes(prompt, 4, HashKeys{}.set_lora_name("adapter-b"));
  const auto plain_hashes = keyed_sequence_hashes(prompt, 4, HashKeys{});
  using Keys = WireState::Keys;
  const std::map<std::uint64_t, Keys> expected{
      {wire_hash(keyed_hashes[0]), Keys{"\"adapter-a\"", "[[\"adapter-a\",\"tenant-1\"]]", "\"tenant-1\""}},
      {wire_hash(keyed_hashes[1]), Keys{"\"adapter-a\"", "[[43981,\"adapter-a\"]]", "\"tenant-1\""}},
      {wire_hash(keyed_hashes[2]), Keys{"\"adapter-a\"", "[[\"adapter-a\"]]", "\"tenant-1\""}},
      {wire_hash(lora_hashes[0]), Keys{"\"adapter-b\"", "[[\"adapter-b\"]]", "-"}},
      {wire_hash(lora_hashes[1]), Keys{"\"adapter-b\"", "[[\"adapter-b\"]]", "-"}},
      {wire_hash(lora_hashes[2]), Keys{"\"adapter-b\"", "[[\"adapter-b\"]]", "-"}},
      {wire_hash(plain_hashes[0]), Keys{"null", "-", "-"}},
      {wire_hash(plain_hashes[1]), Keys{"null", "-", "-"}},
      {wire_hash(plain_hashes[2]), Keys{"null", "-", "-"}},
  };
  zmq::context_t ctx;
  WireState live;
  for (const auto& [seq, payload] : replay(ctx, publisher->replay_endpoint(), be64_bytes(0))) {
    live.apply(payload);
  }
  EXPECT_EQ(live.keys, expected);
  const auto snapshot = replay(ctx, publisher->replay_endpoint(), "snapshot");
  ASSERT_EQ(snapshot.size(), 1u);
  WireState from_snapshot;
  from_snapshot.apply(snapshot[0].second);
  EXPECT_EQ(from_snapshot.keys, expected);
  EXPECT_EQ(from_snapshot.by_medium["GPU"], wire_set(m));
}

TEST(ZmqEventPublisher, LiveFramesMatchTheReplayBuffer) {
  KvEventsConfig config;
  config.endpoint = ipc("pub");
  config.replay_endpoint = ipc("replay");
  config.topic = "kvbm";
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "kvbm");
  sub.set(zmq::sockopt::rcvtimeo, 10000);
  sub.connect(publisher->endpoint());
  auto m = BlockManager<G1>::builder().block_count(8).block_size(test::kTestBlockSize)
               .registry(test::make_registry()).event_sink(publisher).build();
  const std::uint64_t first_seen = join_stream(sub, *publisher, [&](Token t) {
    auto b = test::register_token_block(m, test::iota_block(t * 10));
  });
  ASSERT_FALSE(::testing::Test::HasFailure());
  workload(m, 2, 30);
  publisher->flush();
  const auto total = publisher->stats().batches_published;
  const auto buffered = replay(ctx, publisher->replay_endpoint(), be64_bytes(first_seen));
  ASSERT_EQ(buffered.size(), total - first_seen);
  for (const auto& [expected_seq, expected_payload] : buffered) {
    zmq::message_t topic, seq, payload;
    ASSERT_TRUE(sub.recv(topic));
    EXPECT_EQ(topic.to_string(), "kvbm");
    ASSERT_TRUE(topic.more());
    ASSERT_TRUE(sub.recv(seq));
    ASSERT_TRUE(seq.more());
    ASSERT_TRUE(sub.recv(payload));
    EXPECT_FALSE(payload.more()) << "three frames per batch";
    EXPECT_EQ(be64(seq), expected_seq);
    EXPECT_EQ(payload.to_string(), expected_payload);
  }
}

// The queue holds max_queue_size deliveries; beyond that a delivery is dropped and counted, and
// the caller never waits. Deliveries made directly (on_events), with the publisher's window
// holding them: 5 into a queue of 2.
TEST(ZmqEventPublisher, FullQueueDropsAndCountsWithoutBlocking) {
  KvEventsConfig config;
  config.endpoint = ipc("pub");
  config.max_queue_size = 2;
  config.batching.window = std::chrono::hours(1);  // nothing is sent until flush()
  config.batching.max_events = 1000;
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  auto source = std::make_shared<KvEventSource>();
  source->block_size = test::kTestBlockSize;
  const std::shared_ptr<const KvEventSource> shared = source;
  for (std::uint64_t i = 0; i < 5; ++i) {
    KvEventRecord record;
    record.kind = KvEventKind::Stored;
    record.hash = SequenceHash::from_parts(i + 1, std::nullopt, 0);
    record.block_hash = i + 1;
    publisher->on_events(KvEventView{shared, std::span{&record, 1}, {}});
  }
  auto stats = publisher->stats();
  EXPECT_EQ(stats.batches_dropped, 3u);
  EXPECT_EQ(stats.events_dropped, 3u);
  publisher->flush();
  stats = publisher->stats();
  EXPECT_EQ(stats.events_published, 2u);
}

// A manager built with the publisher only records; the publisher's batching thread drains it,
// so its records reach the wire on flush() (or the window) without a delivery per transition.
TEST(ZmqEventPublisher, ManagersArePulledAndFlushReachesTheirRecords) {
  KvEventsConfig config;
  config.endpoint = ipc("pub");
  config.batching.window = std::chrono::hours(1);  // only flush() drains
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  EXPECT_TRUE(publisher->pulls());
  EXPECT_EQ(publisher->pull_threshold(), 16u * config.batching.max_events);
  auto m = BlockManager<G1>::builder().block_count(8).block_size(test::kTestBlockSize)
               .registry(test::make_registry()).event_sink(publisher).build();
  std::vector<ImmutableBlock<G1>> held;
  for (Token t = 0; t < 5; ++t) held.push_back(test::register_token_block(m, test::iota_block(t * 10)));
  EXPECT_EQ(publisher->stats().events_published, 0u);  // recorded in the pool, not yet drained
  publisher->flush();
  EXPECT_EQ(publisher->stats().events_published, 5u);
  EXPECT_EQ(publisher->stats().batches_dropped, 0u);
  m.check_invariants();
  EXPECT_EQ(m.available_blocks(), 3u);
}

TEST(ZmqEventPublisher, DestructionFlushes) {
  const std::string where = ipc("pub");
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::rcvtimeo, 10000);
  std::uint64_t events_sent = 0;
  {
    KvEventsConfig config;
    config.endpoint = where;
    config.batching.window = std::chrono::hours(1);
    auto publisher = std::make_shared<ZmqEventPublisher>(config);
    sub.connect(where);
    auto m = BlockManager<G1>::builder().block_count(40).block_size(test::kTestBlockSize)
                 .registry(test::make_registry()).event_sink(publisher).build();
    // Wait for the subscription (probe batches), then queue a batch and destroy the publisher.
    for (Token t = 0;; ++t) {
      ASSERT_LT(t, 30u);
      { auto b = test::register_token_block(m, test::iota_block(t * 10)); }
      publisher->flush();
      zmq::message_t part;
      if (sub.recv(part, zmq::recv_flags::dontwait)) {
        do {  // drain every frame that arrived so far
          while (part.more()) ASSERT_TRUE(sub.recv(part));
        } while (sub.recv(part, zmq::recv_flags::dontwait));
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    events_sent = publisher->stats().events_published;
    auto b = test::register_token_block(m, test::iota_block(9999));
    EXPECT_EQ(publisher->stats().events_published, events_sent) << "window not over yet";
  }  // block and manager go first; the publisher flushes its queued batch and joins
  bool found_last = false;
  zmq::message_t topic, seq, payload;
  while (sub.recv(topic)) {
    ASSERT_TRUE(sub.recv(seq));
    ASSERT_TRUE(sub.recv(payload));
    const auto last = wire_hash(test::iota_block(9999).sequence_hash());
    auto handle = msgpack::unpack(static_cast<const char*>(payload.data()), payload.size());
    const auto text = [&] { std::ostringstream os; os << handle.get(); return os.str(); }();
    if (text.find(std::to_string(last)) != std::string::npos) {
      found_last = true;
      break;
    }
  }
  EXPECT_TRUE(found_last);
}

TEST(ZmqEventPublisher, TiersShareOnePublisherConcurrently) {
  KvEventsConfig config;
  config.endpoint = ipc("pub");
  config.replay_endpoint = ipc("replay");
  config.batching.window = std::chrono::milliseconds(1);
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  auto registry = test::make_registry();
  auto g1 = BlockManager<G1>::builder().block_count(16).block_size(test::kTestBlockSize)
                .registry(registry).event_sink(publisher).build();
  auto g2 = BlockManager<G2>::builder().block_count(24).block_size(test::kTestBlockSize)
                .registry(registry).event_sink(publisher).build();
  std::thread a([&] { workload(g1, 3, 150); });
  std::thread b([&] { workload(g2, 4, 150); });
  std::thread c([&] { workload(g1, 5, 150); });
  a.join();
  b.join();
  c.join();
  g1.reset_inactive_pool();  // G2 still holds blocks: this must not clear G2 on the wire
  publisher->flush();
  zmq::context_t ctx;
  WireState state;
  for (const auto& [seq, payload] : replay(ctx, publisher->replay_endpoint(), be64_bytes(0))) {
    state.apply(payload);
  }
  EXPECT_EQ(state.by_medium["GPU"], wire_set(g1));
  EXPECT_EQ(state.by_medium["CPU"], wire_set(g2));
  EXPECT_FALSE(wire_set(g2).empty());
  WireState snap;
  snap.apply(replay(ctx, publisher->replay_endpoint(), "snapshot").at(0).second);
  EXPECT_EQ(snap.by_medium["CPU"], wire_set(g2));
  EXPECT_EQ(snap.by_medium["GPU"], wire_set(g1));
}

// Without a replay socket the publisher keeps no batches and no tokens (nobody can ask for them),
// but still knows each tier's blocks: a tier's reset must reach a live subscriber as Removed of
// that tier's blocks, not as AllBlocksCleared, while another tier holds blocks.
TEST(ZmqEventPublisher, WithoutReplaySocketLiveStreamStillSeparatesTiers) {
  KvEventsConfig config;
  config.endpoint = ipc("pub");
  auto publisher = std::make_shared<ZmqEventPublisher>(config);
  ASSERT_TRUE(publisher->replay_endpoint().empty());
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");
  sub.set(zmq::sockopt::rcvtimeo, 10000);
  sub.connect(publisher->endpoint());
  auto registry = test::make_registry();
  auto g1 = BlockManager<G1>::builder().block_count(16).block_size(test::kTestBlockSize)
                .registry(registry).event_sink(publisher).build();
  auto g2 = BlockManager<G2>::builder().block_count(24).block_size(test::kTestBlockSize)
                .registry(registry).event_sink(publisher).build();
  WireState state;
  std::uint64_t next_seq = 0;
  const auto receive_all = [&] {
    publisher->flush();
    while (next_seq < publisher->stats().batches_published) {
      zmq::message_t topic, seq, payload;
      ASSERT_TRUE(sub.recv(topic));
      ASSERT_TRUE(sub.recv(seq));
      ASSERT_TRUE(sub.recv(payload));
      EXPECT_EQ(be64(seq), next_seq++) << "a batch was lost on the way";
      state.apply(payload.to_string());
    }
  };
  // Each attempt leaves the pools empty, so the stream after the join is complete.
  next_seq = join_stream(sub, *publisher, [&](Token t) {
    { auto b = test::register_token_block(g1, test::iota_block(t * 10)); }
    g1.reset_inactive_pool();
  });
  ASSERT_FALSE(::testing::Test::HasFailure());
  receive_all();
  state = WireState{};  // the pools are empty here: the stream from now on is complete
  workload(g1, 3, 60);
  workload(g2, 4, 60);
  receive_all();
  EXPECT_EQ(state.by_medium["GPU"], wire_set(g1));
  EXPECT_EQ(state.by_medium["CPU"], wire_set(g2));
  ASSERT_FALSE(wire_set(g2).empty());
  g1.reset_inactive_pool();
  receive_all();
  EXPECT_EQ(state.by_medium["GPU"], wire_set(g1));
  EXPECT_EQ(state.by_medium["CPU"], wire_set(g2)) << "one tier's reset cleared the other";
}

}  // namespace
}  // namespace kvbm
