// KV events (kvbm/kv_events.hpp): the applied stream equals the matchable set.
//
// Model-based: for every backend and both duplication policies, a random workload of requests
// (match the cached prefix, allocate the rest, complete from TokenBlocks or stage by hash,
// re-register held blocks to make duplicates / Reject hits, release tail first or drop, set
// evict-on-reset, reset_inactive_pool) runs against a consumer that applies the events in
// order. After every step (single thread: every step is a quiescent point) the consumer's set
// equals matchable_hashes(); every Stored names a hash absent from the set and a parent present
// in it; every Removed names a present hash. Both record paths: pushed to a callback sink, and
// pulled by a batching sink (compact records expanded by its thread), flushed after every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/test_helpers.hpp"
#include "kvbm/kv_events.hpp"
#include "kvbm/request_sequence.hpp"

namespace kvbm {
namespace {

/// Applies events in order and checks each against the set it holds.
class ApplyingConsumer {
 public:
  void apply(const KvEventView& view) {
    std::lock_guard lock{mutex_};
    ++views_;
    for (const KvEventRecord& r : view.records) {
      switch (r.kind) {
        case KvEventKind::Stored: {
          ++stored_;
          if (set_.contains(r.block_hash)) ++errors_stored_present_;
          if (r.has_parent && !set_.contains(r.parent_hash)) ++errors_orphan_;
          if (r.position() == 0 && r.has_parent) ++errors_orphan_;
          if (r.block_hash != wire_hash(r.hash)) ++errors_hash_;
          set_.emplace(r.block_hash, r.hash);
          if (r.token_count != 0) {
            tokens_[r.block_hash].assign(view.token_ids(r).begin(), view.token_ids(r).end());
          }
          break;
        }
        case KvEventKind::Removed:
          ++removed_;
          if (set_.erase(r.block_hash) == 0) ++errors_removed_absent_;
          tokens_.erase(r.block_hash);
          break;
        case KvEventKind::Cleared:
          ++cleared_;
          set_.clear();
          tokens_.clear();
          break;
      }
    }
  }
  std::set<std::uint64_t> set() const {
    std::lock_guard lock{mutex_};
    std::set<std::uint64_t> out;
    for (const auto& [h, s] : set_) out.insert(h);
    return out;
  }
  void expect_clean() const {
    std::lock_guard lock{mutex_};
    EXPECT_EQ(errors_stored_present_, 0u) << "Stored for a hash already matchable";
    EXPECT_EQ(errors_orphan_, 0u) << "Stored before its parent";
    EXPECT_EQ(errors_removed_absent_, 0u) << "Removed for a hash not matchable";
    EXPECT_EQ(errors_hash_, 0u);
  }
  std::uint64_t stored() const { std::lock_guard l{mutex_}; return stored_; }
  std::uint64_t removed() const { std::lock_guard l{mutex_}; return removed_; }
  std::uint64_t cleared() const { std::lock_guard l{mutex_}; return cleared_; }
  std::uint64_t views() const { std::lock_guard l{mutex_}; return views_; }
  std::vector<Token> tokens(std::uint64_t h) const {
    std::lock_guard l{mutex_};
    auto it = tokens_.find(h);
    return it == tokens_.end() ? std::vector<Token>{} : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, SequenceHash> set_;
  std::unordered_map<std::uint64_t, std::vector<Token>> tokens_;
  std::uint64_t stored_ = 0, removed_ = 0, cleared_ = 0, views_ = 0;
  std::uint64_t errors_stored_present_ = 0, errors_orphan_ = 0, errors_removed_absent_ = 0,
                errors_hash_ = 0;
};

std::set<std::uint64_t> matchable_wire(const BlockManager<G1>& m) {
  std::set<std::uint64_t> out;
  for (const auto& h : m.matchable_hashes()) out.insert(wire_hash(h));
  return out;
}

struct Workload {
  std::vector<TokenBlockSequence> prompts;
};

Workload make_prompts(std::mt19937_64& rng, std::size_t count, std::size_t max_blocks) {
  Workload w;
  // Prompts share prefixes: each starts as a copy of an earlier one's prefix, then diverges.
  std::vector<std::vector<Token>> tokens;
  for (std::size_t i = 0; i < count; ++i) {
    std::vector<Token> t;
    const std::size_t blocks = 1 + rng() % max_blocks;
    if (!tokens.empty() && rng() % 3 != 0) {
      const auto& base = tokens[rng() % tokens.size()];
      const std::size_t keep = std::min(base.size(), (rng() % blocks) * test::kTestBlockSize);
      t.assign(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(keep));
    }
    while (t.size() < blocks * test::kTestBlockSize) t.push_back(static_cast<Token>(rng() % 50000));
    tokens.push_back(t);
    w.prompts.emplace_back(t, test::kTestBlockSize, test::kTestSalt);
  }
  return w;
}

void run_model(EvictionBackend backend, DuplicationPolicy policy, std::uint64_t seed,
               bool pulled) {
  SCOPED_TRACE(std::string(to_string(backend)) + (policy == DuplicationPolicy::Allow ? " allow" : " reject") +
               " seed " + std::to_string(seed) + (pulled ? " pulled" : " pushed"));
  std::mt19937_64 rng(seed);
  auto consumer = std::make_shared<ApplyingConsumer>();
  auto callback = std::make_shared<CallbackEventSink>([consumer](const KvEventView& v) { consumer->apply(v); });
  std::shared_ptr<KvEventSink> sink = callback;
  std::shared_ptr<BatchingEventSink> batcher;
  if (pulled) {
    KvEventBatching batching;
    batching.window = std::chrono::hours(1);  // flush() and a full batch deliver
    batching.max_events = 5;
    batching.deliver_from_pools = seed % 2 == 0;
    sink = batcher = std::make_shared<BatchingEventSink>(callback, batching);
  }
  const auto flush = [&] {
    if (batcher) batcher->flush();
  };
  auto builder = BlockManager<G1>::builder();
  builder.block_count(24).block_size(test::kTestBlockSize).registry(test::make_registry())
      .duplication_policy(policy).backend(backend).event_sink(sink);
  auto m = builder.build();
  const Workload w = make_prompts(rng, 12, 8);
  std::vector<std::vector<ImmutableBlock<G1>>> held;

  for (int step = 0; step < 400; ++step) {
    const auto op = rng() % 10;
    if (op < 5) {  // a request
      const auto& prompt = w.prompts[rng() % w.prompts.size()];
      auto hashes = prompt.sequence_hashes();
      auto blocks = m.match_blocks(hashes);
      // Re-register some held blocks too: duplicates (Allow) or Reject hits, no events.
      const std::size_t redo = blocks.empty() ? 0 : rng() % (blocks.size() + 1);
      const std::size_t first = blocks.size() - redo;
      auto fresh = m.allocate_blocks(hashes.size() - first);
      if (fresh) {
        std::vector<CompleteBlock<G1>> staged;
        const bool by_tokens = rng() % 2 == 0;
        for (std::size_t i = 0; i < fresh->size(); ++i) {
          const auto& tb = prompt.blocks()[first + i];
          staged.push_back(by_tokens ? std::move((*fresh)[i]).complete(tb)
                                     : std::move((*fresh)[i]).stage(tb.sequence_hash(), tb.block_size()));
        }
        auto registered = m.register_blocks(std::move(staged));
        for (auto& b : registered) {
          if (rng() % 8 == 0) b.set_evict_on_reset(true);
          blocks.push_back(std::move(b));
        }
      }
      held.push_back(std::move(blocks));
    } else if (op < 9 && !held.empty()) {  // release a request
      const std::size_t i = rng() % held.size();
      auto blocks = std::move(held[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      std::reverse(blocks.begin(), blocks.end());
      if (rng() % 2 == 0) {
        m.release_blocks(std::move(blocks));
      } else {
        blocks.clear();
      }
    } else if (op == 9 && rng() % 3 == 0) {
      m.reset_inactive_pool();
    }
    flush();
    ASSERT_EQ(consumer->set(), matchable_wire(m)) << "step " << step;
  }
  held.clear();
  flush();
  EXPECT_EQ(consumer->set(), matchable_wire(m));
  m.reset_inactive_pool();
  flush();
  EXPECT_TRUE(consumer->set().empty());
  consumer->expect_clean();
  EXPECT_GT(consumer->stored(), 0u);
}

class KvEventsModel
    : public ::testing::TestWithParam<std::tuple<EvictionBackend, DuplicationPolicy>> {};

TEST_P(KvEventsModel, AppliedStreamEqualsMatchableSet) {
  const auto [backend, policy] = GetParam();
  for (std::uint64_t seed = 1; seed <= 12; ++seed) run_model(backend, policy, seed, false);
  for (std::uint64_t seed = 1; seed <= 4; ++seed) run_model(backend, policy, seed, true);
}

INSTANTIATE_TEST_SUITE_P(
    EveryBackend, KvEventsModel,
    ::testing::Combine(::testing::ValuesIn(all_eviction_backends()),
                       ::testing::Values(DuplicationPolicy::Allow, DuplicationPolicy::Reject)),
    [](const auto& info) {
      return std::string(to_string(std::get<0>(info.param))) == "multi-lru"
                 ? std::string("multi_lru") + (std::get<1>(info.param) == DuplicationPolicy::Allow ? "_allow" : "_reject")
                 : std::string(to_string(std::get<0>(info.param))) +
                       (std::get<1>(info.param) == DuplicationPolicy::Allow ? "_allow" : "_reject");
    });

struct Fixture {
  std::shared_ptr<ApplyingConsumer> consumer = std::make_shared<ApplyingConsumer>();
  std::vector<KvEventRecord> log;
  std::optional<std::string> medium;
  BlockManager<G1> make(DuplicationPolicy policy, std::size_t blocks = 8,
                        KvEventPolicy emit = KvEventPolicy::All) {
    auto sink = std::make_shared<CallbackEventSink>([this](const KvEventView& v) {
      consumer->apply(v);
      log.insert(log.end(), v.records.begin(), v.records.end());
      medium = v.source->medium;
    });
    return BlockManager<G1>::builder().block_count(blocks).block_size(test::kTestBlockSize)
        .registry(test::make_registry()).duplication_policy(policy).event_sink(sink)
        .event_policy(emit).build();
  }
};

TEST(KvEvents, StoredCarriesTokensParentAndMedium) {
  Fixture f;
  auto m = f.make(DuplicationPolicy::Allow);
  auto seq = test::iota_sequence(100, 3);
  auto blocks = test::register_sequence(m, seq);
  ASSERT_EQ(f.log.size(), 3u);
  EXPECT_EQ(f.medium, std::optional<std::string>("GPU"));
  EXPECT_FALSE(f.log[0].has_parent);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(f.log[i].kind, KvEventKind::Stored);
    EXPECT_EQ(f.log[i].block_hash, wire_hash(seq.blocks()[i].sequence_hash()));
    const auto tokens = f.consumer->tokens(f.log[i].block_hash);
    EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), seq.blocks()[i].tokens().begin(),
                           seq.blocks()[i].tokens().end()));
    EXPECT_EQ(tokens.size(), test::kTestBlockSize);
    if (i > 0) EXPECT_EQ(f.log[i].parent_hash, f.log[i - 1].block_hash);
  }
}

TEST(KvEvents, StagedByHashCarriesNoTokens) {
  Fixture f;
  auto m = f.make(DuplicationPolicy::Allow);
  auto block = test::register_hash(m, test::synth_hash(7));
  ASSERT_EQ(f.log.size(), 1u);
  EXPECT_EQ(f.log[0].token_count, 0u);
}

TEST(KvEvents, StagedByHashWithTokensCarriesThem) {
  Fixture f;
  auto m = f.make(DuplicationPolicy::Allow);
  const auto tokens = test::iota_tokens(500, test::kTestBlockSize);
  const auto short_tokens = test::iota_tokens(500, test::kTestBlockSize - 1);
  auto mutable_block = test::allocate_one(m);
  const BlockId id = mutable_block.block_id();
  // A wrong token count is refused and the block stays the caller's.
  EXPECT_THROW((void)std::move(mutable_block).stage(test::synth_hash(9), short_tokens),
               BlockSizeMismatch);
  ASSERT_TRUE(mutable_block.valid());
  EXPECT_EQ(mutable_block.block_id(), id);
  std::vector<CompleteBlock<G1>> staged;
  staged.push_back(std::move(mutable_block).stage(test::synth_hash(9), tokens));
  auto registered = m.register_blocks(std::move(staged));
  ASSERT_EQ(f.log.size(), 1u);
  EXPECT_EQ(f.log[0].token_count, test::kTestBlockSize);
  const auto seen = f.consumer->tokens(f.log[0].block_hash);
  EXPECT_TRUE(std::equal(seen.begin(), seen.end(), tokens.begin(), tokens.end()));
  m.check_invariants();
}

TEST(KvEvents, NoEventForDuplicatesRejectHitsOrRevivals) {
  for (auto policy : {DuplicationPolicy::Allow, DuplicationPolicy::Reject}) {
    Fixture f;
    auto m = f.make(policy);
    const auto tb = test::iota_block(1);
    auto first = test::register_token_block(m, tb);
    auto second = test::register_token_block(m, tb);  // duplicate or Reject hit
    EXPECT_EQ(f.log.size(), 1u);
    first = ImmutableBlock<G1>(std::move(second));  // drop both: cached
    { auto gone = std::move(first); }
    EXPECT_EQ(f.log.size(), 1u);
    auto revived = m.match_blocks(std::vector{tb.sequence_hash()});
    ASSERT_EQ(revived.size(), 1u);
    EXPECT_EQ(f.log.size(), 1u) << "a revival is not a new hash";
    revived.clear();
    EXPECT_EQ(m.reset_inactive_pool(), 1u);
    ASSERT_EQ(f.log.size(), 2u);
    EXPECT_EQ(f.log[1].kind, KvEventKind::Cleared);
  }
}

TEST(KvEvents, EvictionAndEvictOnResetReportRemoved) {
  Fixture f;
  auto m = f.make(DuplicationPolicy::Allow, 2);
  {
    auto a = test::register_token_block(m, test::iota_block(1));
    a.set_evict_on_reset(true);
  }
  ASSERT_EQ(f.log.size(), 2u);
  EXPECT_EQ(f.log[1].kind, KvEventKind::Removed);
  { auto b = test::register_token_block(m, test::iota_block(2)); }
  auto all = m.allocate_blocks(2);  // evicts the cached block
  ASSERT_TRUE(all);
  ASSERT_EQ(f.log.size(), 4u);
  EXPECT_EQ(f.log[3].kind, KvEventKind::Removed);
  EXPECT_EQ(f.log[3].block_hash, wire_hash(test::iota_block(2).sequence_hash()));
  f.consumer->expect_clean();
}

TEST(KvEvents, PartialDrainReportsRemovedNotCleared) {
  Fixture f;
  auto m = f.make(DuplicationPolicy::Allow);
  auto live = test::register_token_block(m, test::iota_block(1));
  { auto cached = test::register_token_block(m, test::iota_block(50)); }
  m.reset_inactive_pool();
  ASSERT_EQ(f.log.size(), 3u);
  EXPECT_EQ(f.log[2].kind, KvEventKind::Removed);  // `live` is still matchable
  EXPECT_EQ(f.consumer->set(), matchable_wire(m));
}

TEST(KvEvents, PowerOfTwoPolicyReportsOnlyThosePositions) {
  Fixture f;
  auto m = f.make(DuplicationPolicy::Allow, 40, KvEventPolicy::PowerOfTwo);
  auto seq = test::iota_sequence(0, 33);
  auto blocks = test::register_sequence(m, seq);
  ASSERT_EQ(f.log.size(), 2u);
  EXPECT_EQ(f.log[0].position(), 16u);
  EXPECT_EQ(f.log[1].position(), 32u);
}

TEST(KvEvents, MediumFollowsTierAndOverride) {
  std::optional<std::string> seen;
  auto sink = std::make_shared<CallbackEventSink>([&](const KvEventView& v) { seen = v.source->medium; });
  auto g2 = BlockManager<G2>::builder().block_count(2).block_size(4).registry(test::make_registry())
                .event_sink(sink).build();
  { auto b = test::register_token_block(g2, test::iota_block(1)); }
  EXPECT_EQ(seen, std::optional<std::string>("CPU"));
  auto g3 = BlockManager<G3>::builder().block_count(2).block_size(4).registry(test::make_registry())
                .event_sink(sink).event_medium("NVME").build();
  { auto b = test::register_token_block(g3, test::iota_block(1)); }
  EXPECT_EQ(seen, std::optional<std::string>("NVME"));
}

TEST(KvEvents, DestroyingAPoolReportsNothing) {
  Fixture f;
  {
    auto m = f.make(DuplicationPolicy::Allow);
    auto b = test::register_token_block(m, test::iota_block(1));
  }
  ASSERT_EQ(f.log.size(), 1u);
  EXPECT_EQ(f.log.back().kind, KvEventKind::Stored);
}

TEST(KvEvents, WireHashIsPositionalAndLinksParents) {
  auto a = test::iota_sequence(0, 300);  // crosses the 256-position mode boundary
  const auto hashes = a.sequence_hashes();
  std::set<std::uint64_t> seen;
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    seen.insert(wire_hash(hashes[i]));
    if (i == 0) {
      EXPECT_FALSE(parent_wire_hash(hashes[i]));
    } else {
      EXPECT_EQ(parent_wire_hash(hashes[i]), wire_hash(hashes[i - 1])) << i;
    }
  }
  EXPECT_EQ(seen.size(), hashes.size());
}

TEST(KvEvents, SinkThatDoesNotWantTokensGetsNone) {
  std::vector<KvEventRecord> log;
  auto sink = std::make_shared<CallbackEventSink>(
      [&](const KvEventView& v) { log.insert(log.end(), v.records.begin(), v.records.end()); }, false);
  auto m = BlockManager<G1>::builder().block_count(2).block_size(4).registry(test::make_registry())
               .event_sink(sink).build();
  auto b = test::register_token_block(m, test::iota_block(1));
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].token_count, 0u);
}

// Token ids are copied twice (at staging, then into the record); block sizes 16, 32 and 64 take
// a copy of constant size, the other powers of two a general one. Each, pushed and pulled, carries
// exactly the block's ids, also after the record buffers have grown and been swapped many times.
TEST(KvEvents, TokenIdsArriveExactlyForEveryBlockSize) {
  for (const std::uint32_t block_size : {1u, 4u, 8u, 16u, 32u, 64u, 128u}) {
    for (const bool pulled : {false, true}) {
      SCOPED_TRACE("block_size " + std::to_string(block_size) + (pulled ? " pulled" : " pushed"));
      std::mutex mutex;
      std::map<std::uint64_t, std::vector<Token>> seen;  // wire hash -> ids, last stored
      auto downstream = std::make_shared<CallbackEventSink>([&](const KvEventView& v) {
        std::lock_guard lock{mutex};
        for (const KvEventRecord& r : v.records) {
          if (r.kind != KvEventKind::Stored) continue;
          const auto ids = v.token_ids(r);
          seen[r.block_hash].assign(ids.begin(), ids.end());
        }
      });
      KvEventBatching batching;
      batching.max_events = 7;
      batching.drain_threshold = 9;  // many drains: buffers swap and regrow
      std::shared_ptr<KvEventSink> sink = downstream;
      if (pulled) sink = std::make_shared<BatchingEventSink>(downstream, batching);
      auto m = BlockManager<G1>::builder().block_count(8).block_size(block_size)
                   .registry(test::make_registry()).default_reset_on_release(true)
                   .event_sink(sink).build();
      std::map<std::uint64_t, std::vector<Token>> expected;
      for (Token round = 0; round < 12; ++round) {
        std::vector<Token> ids(6 * block_size);
        std::iota(ids.begin(), ids.end(), round * 100000);
        const auto blocks = TokenBlockSequence(std::move(ids), block_size, round).blocks();
        auto fresh = m.allocate_blocks(blocks.size());
        ASSERT_TRUE(fresh.has_value());
        std::vector<CompleteBlock<G1>> staged;
        for (std::size_t i = 0; i < blocks.size(); ++i) {
          staged.push_back(std::move((*fresh)[i]).complete(blocks[i]));
          const auto t = blocks[i].tokens();
          expected[wire_hash(blocks[i].sequence_hash())].assign(t.begin(), t.end());
        }
        auto held = m.register_blocks(std::move(staged));
        while (!held.empty()) held.pop_back();  // evict on reset: the slots are reused
      }
      if (pulled) std::static_pointer_cast<BatchingEventSink>(sink)->flush();
      std::lock_guard lock{mutex};
      EXPECT_EQ(seen, expected);
    }
  }
}

TEST(KvEvents, ThrowingSinkDoesNotBreakThePool) {
  auto sink = std::make_shared<CallbackEventSink>([](const KvEventView&) { throw std::runtime_error("x"); });
  auto m = BlockManager<G1>::builder().block_count(2).block_size(4).registry(test::make_registry())
               .event_sink(sink).build();
  { auto b = test::register_token_block(m, test::iota_block(1)); }
  m.check_invariants();
  EXPECT_EQ(m.available_blocks(), 2u);
}

TEST(KvEvents, BatchingSinkCoalescesAndFlushes) {
  auto consumer = std::make_shared<ApplyingConsumer>();
  std::atomic<std::size_t> biggest{0};
  auto downstream = std::make_shared<CallbackEventSink>([&](const KvEventView& v) {
    consumer->apply(v);
    biggest = std::max(biggest.load(), v.records.size());
  });
  KvEventBatching batching;
  batching.window = std::chrono::hours(1);  // only size and flush() release batches here
  batching.max_events = 5;
  auto batcher = std::make_shared<BatchingEventSink>(downstream, batching);
  auto m = BlockManager<G1>::builder().block_count(16).block_size(4).registry(test::make_registry())
               .event_sink(batcher).build();
  auto seq = test::iota_sequence(0, 12);
  std::vector<ImmutableBlock<G1>> blocks;
  for (const auto& tb : seq.blocks()) blocks.push_back(test::register_token_block(m, tb));
  batcher->flush();
  EXPECT_EQ(consumer->stored(), 12u);
  EXPECT_LE(biggest.load(), 5u);
  EXPECT_EQ(consumer->set(), matchable_wire(m));
  blocks.clear();
  m.reset_inactive_pool();
  batcher->flush();
  EXPECT_TRUE(consumer->set().empty());
  consumer->expect_clean();
}

TEST(KvEvents, BatchingSinkFlushesOnDestruction) {
  auto consumer = std::make_shared<ApplyingConsumer>();
  auto downstream = std::make_shared<CallbackEventSink>([&](const KvEventView& v) { consumer->apply(v); });
  {
    KvEventBatching batching;
    batching.window = std::chrono::hours(1);
    auto batcher = std::make_shared<BatchingEventSink>(downstream, batching);
    auto m = BlockManager<G1>::builder().block_count(4).block_size(4).registry(test::make_registry())
                 .event_sink(batcher).build();
    auto b = test::register_token_block(m, test::iota_block(1));
  }
  EXPECT_EQ(consumer->stored(), 1u);
}

// A block staged with HashKeys carries them to its Stored record, through a batching sink too;
// a block without keys carries none.
// A manager asks for an early drain at 16 batches' worth by default (0), at a given count when
// set: fewer drains are what keeps a full-rate lifecycle within 1.2x of no sink (see
// docs/benchmarks.md).
TEST(KvEvents, BatchingSinkDrainThresholdDefaultsToSixteenBatches) {
  auto downstream = std::make_shared<CallbackEventSink>([](const KvEventView&) {});
  KvEventBatching batching;
  EXPECT_EQ(batching.drain_threshold, 0u);
  EXPECT_EQ(BatchingEventSink(downstream, batching).pull_threshold(), 16u * 1024u);
  batching.max_events = 10;
  EXPECT_EQ(BatchingEventSink(downstream, batching).pull_threshold(), 160u);
  batching.drain_threshold = 7;
  EXPECT_EQ(BatchingEventSink(downstream, batching).pull_threshold(), 7u);
}

TEST(KvEvents, SequenceBlocksCarryTheirHashKeys) {
  struct Seen {
    std::uint64_t hash;
    std::shared_ptr<const HashKeys> keys;
  };
  std::mutex mutex;
  std::vector<Seen> seen;
  auto downstream = std::make_shared<CallbackEventSink>([&](const KvEventView& v) {
    std::lock_guard lock{mutex};
    for (const KvEventRecord& r : v.records) {
      if (r.kind != KvEventKind::Stored) continue;
      EXPECT_EQ(v.hash_keys(r), v.shared_keys(r).get());
      seen.push_back({r.block_hash, v.shared_keys(r)});
    }
  });
  for (const bool batched : {false, true}) {
    seen.clear();
    std::shared_ptr<KvEventSink> sink = downstream;
    std::shared_ptr<BatchingEventSink> batcher;
    if (batched) sink = batcher = std::make_shared<BatchingEventSink>(downstream);
    auto m = BlockManager<G1>::builder().block_count(16).block_size(4)
                 .registry(test::make_registry()).event_sink(sink).build();
    HashKeys keys;
    keys.set_lora_name("adapter-a").set_cache_salt("tenant-1");
    keys.add_multimodal_item(MultimodalItem{0xABCD, 5, 2});  // inside block 1 only
    const auto prompt = test::iota_tokens(100, 13);         // 3 full blocks
    RequestSequence<G1> keyed(prompt, 0, 4, keys);
    ASSERT_TRUE(keyed.allocate_blocks(keyed.num_blocks(), m));
    EXPECT_EQ(keyed.complete_and_register_pending(m), 3u);
    RequestSequence<G1> plain(prompt, 0, 4);  // same tokens, no keys: other hashes, no keys
    ASSERT_TRUE(plain.allocate_blocks(plain.num_blocks(), m));
    EXPECT_EQ(plain.complete_and_register_pending(m), 3u);
    if (batcher) batcher->flush();
    std::lock_guard lock{mutex};
    ASSERT_EQ(seen.size(), 6u) << (batched ? "batched" : "direct");
    const auto keyed_hashes = keyed_sequence_hashes(prompt, 4, keys);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(seen[i].hash, wire_hash(keyed_hashes[i]));
      ASSERT_NE(seen[i].keys, nullptr);
      EXPECT_EQ(*seen[i].keys, keys);
      EXPECT_EQ(seen[i].keys, seen[0].keys) << "one keys object per sequence, not per block";
      EXPECT_EQ(seen[i + 3].keys, nullptr);
    }
    EXPECT_EQ(seen[1].keys->block_extra_keys(1, 4), std::vector<std::uint64_t>{0xABCD});
    EXPECT_TRUE(seen[0].keys->block_extra_keys(0, 4).empty());
  }
}

void check_pulled_records_across_chunks(bool in_place) {
  constexpr std::size_t kBlocks = 1500;  // 3000 records: three chunks
  std::mutex mutex;
  std::vector<KvEventRecord> records;
  std::map<std::uint64_t, std::vector<Token>> tokens;
  std::map<std::uint64_t, const HashKeys*> keys_seen;
  std::size_t biggest = 0;
  auto downstream = std::make_shared<CallbackEventSink>([&](const KvEventView& v) {
    std::lock_guard lock{mutex};
    biggest = std::max(biggest, v.records.size());
    for (const KvEventRecord& r : v.records) {
      records.push_back(r);
      if (r.kind != KvEventKind::Stored) continue;
      const auto ids = v.token_ids(r);
      tokens[r.block_hash].assign(ids.begin(), ids.end());
      keys_seen[r.block_hash] = v.hash_keys(r);
    }
  });
  KvEventBatching batching;
  batching.window = std::chrono::hours(1);
  batching.drain_threshold = 1'000'000;  // one drain, at flush()
  batching.max_events = 700;  // batches cut across chunks too
  batching.deliver_from_pools = in_place;
  auto batcher = std::make_shared<BatchingEventSink>(downstream, batching);
  auto m = BlockManager<G1>::builder().block_count(kBlocks).block_size(4)
               .registry(test::make_registry()).default_reset_on_release(true)
               .event_sink(batcher).build();
  // Runs of 100 blocks alternate between two keys objects and none.
  auto key_a = std::make_shared<HashKeys>();
  key_a->set_lora_name("a");
  auto key_b = std::make_shared<HashKeys>();
  key_b->set_cache_salt("b");
  const std::shared_ptr<const HashKeys> runs[] = {key_a, key_b, nullptr};
  const auto seq = test::iota_sequence(0, kBlocks, 4);
  auto fresh = m.allocate_blocks(kBlocks);
  ASSERT_TRUE(fresh.has_value());
  std::vector<CompleteBlock<G1>> staged;
  std::map<std::uint64_t, const HashKeys*> keys_expected;
  for (std::size_t i = 0; i < kBlocks; ++i) {
    const auto& tb = seq.blocks()[i];
    const auto& keys = runs[(i / 100) % 3];
    staged.push_back(std::move((*fresh)[i]).stage(tb.sequence_hash(), tb.tokens(), keys));
    keys_expected[wire_hash(tb.sequence_hash())] = keys.get();
  }
  auto held = m.register_blocks(std::move(staged));
  held.clear();  // reset on release: 1500 Removed, children first
  batcher->flush();
  std::lock_guard lock{mutex};
  EXPECT_LE(biggest, 700u);
  ASSERT_EQ(records.size(), 2 * kBlocks);
  for (std::size_t i = 0; i < kBlocks; ++i) {
    const KvEventRecord& r = records[i];
    const auto& tb = seq.blocks()[i];
    ASSERT_EQ(r.kind, KvEventKind::Stored) << i;
    EXPECT_EQ(r.block_hash, wire_hash(tb.sequence_hash())) << i;
    EXPECT_EQ(r.has_parent, i != 0) << i;
    if (i != 0) EXPECT_EQ(r.parent_hash, wire_hash(seq.blocks()[i - 1].sequence_hash())) << i;
    EXPECT_EQ(r.token_count, 4u) << i;
    EXPECT_EQ(tokens[r.block_hash], std::vector<Token>(tb.tokens().begin(), tb.tokens().end())) << i;
  }
  EXPECT_EQ(keys_seen, keys_expected);
  std::set<std::uint64_t> removed;
  for (std::size_t i = kBlocks; i < 2 * kBlocks; ++i) {
    ASSERT_EQ(records[i].kind, KvEventKind::Removed) << i;
    EXPECT_EQ(records[i].block_hash, wire_hash(records[i].hash)) << i;
    removed.insert(records[i].block_hash);
  }
  EXPECT_EQ(removed.size(), kBlocks);
  EXPECT_EQ(removed, [&] {
    std::set<std::uint64_t> all;
    for (const auto& tb : seq.blocks()) all.insert(wire_hash(tb.sequence_hash()));
    return all;
  }());
}

// A pulled drain larger than the chunk a pool expands at a time (StoreEvents::kExpandChunk,
// 1024): every record, its tokens and its keys arrive intact and in order across the views,
// copied by the sink first or handed over from the pool's buffer (deliver_from_pools).
TEST(KvEvents, PulledRecordsCrossExpansionChunksIntact) {
  for (const bool in_place : {false, true}) {
    SCOPED_TRACE(in_place ? "deliver_from_pools" : "copied");
    check_pulled_records_across_chunks(in_place);
  }
}

// The batching sink's thread must wake for the first record of a window: with no flush() and no
// full batch, a record is delivered once the window passes (it used to wait for the next batch).
TEST(KvEvents, BatchingSinkDeliversAWindowWithoutFlush) {
  auto consumer = std::make_shared<ApplyingConsumer>();
  auto downstream =
      std::make_shared<CallbackEventSink>([&](const KvEventView& v) { consumer->apply(v); });
  KvEventBatching batching;
  batching.window = std::chrono::milliseconds(5);
  auto batcher = std::make_shared<BatchingEventSink>(downstream, batching);
  auto m = BlockManager<G1>::builder().block_count(4).block_size(4).registry(test::make_registry())
               .event_sink(batcher).build();
  for (int round = 0; round < 3; ++round) {  // each round starts a new window on an idle thread
    auto b = test::register_token_block(m, test::iota_block(static_cast<Token>(100 * round)));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (consumer->stored() < static_cast<std::uint64_t>(round + 1) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(consumer->stored(), static_cast<std::uint64_t>(round + 1)) << "round " << round;
  }
}

/// `count` requests on `m`: match the cached prefix, allocate and register the rest, now and then
/// reset the inactive pool, release tail first.
void run_requests(BlockManager<G1>& m, const Workload& w, std::uint64_t seed, int count,
                  std::uint64_t reset_every) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < count; ++i) {
    const auto& prompt = w.prompts[rng() % w.prompts.size()];
    auto hashes = prompt.sequence_hashes();
    auto blocks = m.match_blocks(hashes);
    auto fresh = m.allocate_blocks(hashes.size() - blocks.size());
    if (fresh) {
      std::vector<CompleteBlock<G1>> staged;
      for (std::size_t k = 0; k < fresh->size(); ++k) {
        staged.push_back(std::move((*fresh)[k]).complete(prompt.blocks()[blocks.size() + k]));
      }
      for (auto& b : m.register_blocks(std::move(staged))) blocks.push_back(std::move(b));
    }
    if (rng() % reset_every == 0) m.reset_inactive_pool();
    std::reverse(blocks.begin(), blocks.end());
    m.release_blocks(std::move(blocks));
  }
}

// Concurrency: threads race requests and releases on one pool; the stream, applied in the order
// delivered, still ends equal to the matchable set (delivery preserves state order).
TEST(KvEvents, ConcurrentWorkloadStreamStaysExact) {
  for (auto policy : {DuplicationPolicy::Allow, DuplicationPolicy::Reject}) {
    auto consumer = std::make_shared<ApplyingConsumer>();
    auto sink = std::make_shared<CallbackEventSink>([consumer](const KvEventView& v) { consumer->apply(v); });
    auto m = BlockManager<G1>::builder().block_count(64).block_size(test::kTestBlockSize)
                 .registry(test::make_registry()).duplication_policy(policy).event_sink(sink).build();
    std::mt19937_64 prompt_rng(5);
    const Workload w = make_prompts(prompt_rng, 16, 6);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] { run_requests(m, w, 100 + t, 300, 16); });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(consumer->set(), matchable_wire(m));
    consumer->expect_clean();
  }
}

// The pull path under contention: pools with two threads each share one BatchingEventSink that
// drains them often (tiny window and threshold), another thread flushes, another builds and
// destroys short-lived pools on the same sink (detach while the sink drains). Each pool's stream,
// routed by source, ends equal to its matchable set; the short-lived pools' streams end with
// everything they stored (destroying a pool reports nothing, and loses nothing recorded).
void drain_many_pools_concurrently(bool in_place);

TEST(KvEvents, BatchingSinkDrainsManyPoolsConcurrently) {
  for (const bool in_place : {false, true}) {
    SCOPED_TRACE(in_place ? "deliver_from_pools" : "copied");
    drain_many_pools_concurrently(in_place);
  }
}

void drain_many_pools_concurrently(bool in_place) {
  std::mutex mutex;
  std::map<std::uint64_t, std::shared_ptr<ApplyingConsumer>> consumers;  // by manager id
  auto consumer_of = [&](ManagerId id) {
    std::lock_guard lock{mutex};
    auto& c = consumers[id.value()];
    if (!c) c = std::make_shared<ApplyingConsumer>();
    return c;
  };
  auto downstream = std::make_shared<CallbackEventSink>(
      [&](const KvEventView& v) { consumer_of(v.source->manager)->apply(v); });
  KvEventBatching batching;
  batching.window = std::chrono::microseconds(200);
  batching.max_events = 8;
  batching.drain_threshold = 16;
  batching.deliver_from_pools = in_place;
  auto batcher = std::make_shared<BatchingEventSink>(downstream, batching);
  std::vector<BlockManager<G1>> pools;
  for (int p = 0; p < 2; ++p) {
    pools.push_back(BlockManager<G1>::builder().block_count(48).block_size(test::kTestBlockSize)
                        .registry(test::make_registry()).event_sink(batcher).build());
  }
  std::mt19937_64 prompt_rng(9);
  const Workload w = make_prompts(prompt_rng, 16, 6);
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { run_requests(pools[t % 2], w, 300 + t, 250, 32); });
  }
  std::thread flusher([&] {
    while (!done.load()) batcher->flush();
  });
  std::vector<std::pair<ManagerId, std::set<std::uint64_t>>> short_lived;  // id, final set
  std::thread churn([&] {
    for (int i = 0; i < 20; ++i) {
      auto m = BlockManager<G1>::builder().block_count(16).block_size(test::kTestBlockSize)
                   .registry(test::make_registry()).event_sink(batcher).build();
      run_requests(m, w, 900 + i, 10, 32);
      short_lived.emplace_back(m.id(), matchable_wire(m));
    }
  });
  for (auto& t : threads) t.join();
  churn.join();
  done = true;
  flusher.join();
  batcher->flush();
  for (auto& m : pools) {
    const auto c = consumer_of(m.id());
    EXPECT_EQ(c->set(), matchable_wire(m));
    EXPECT_GT(c->stored(), 0u);
    c->expect_clean();
  }
  for (const auto& [id, set] : short_lived) {
    const auto c = consumer_of(id);
    EXPECT_EQ(c->set(), set) << "a destroyed pool's last records were lost";
    c->expect_clean();
  }
  EXPECT_GT(batcher->batches_delivered(), 10u);
}

}  // namespace
}  // namespace kvbm
