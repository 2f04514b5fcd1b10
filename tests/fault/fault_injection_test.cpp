// Strong exception guarantee, proven by fault injection. This binary replaces global operator
// new; for every public call of a BlockManager (and the handle calls that reach the pool), every
// eviction backend and both duplication policies, it fails the k-th allocation the call makes,
// for every k until the call makes fewer than k. After each injected std::bad_alloc:
//  - check_invariants() holds;
//  - the pool's whole state (free list order, eviction order, fenced slots, every slot's state,
//    hash and reference word, the hash index), its metrics and the registry are as before;
//  - the caller's input blocks are still the caller's;
//  - repeating the call succeeds, and once every handle is dropped every block is available.
// It is its own binary because replacing operator new is process-wide. The replacement uses
// malloc/free, which ASan and TSan intercept, so it also runs in the sanitizer builds.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvbm/detail/testing.hpp"
#include "kvbm/kv_events.hpp"
#include "kvbm/kvbm.hpp"

namespace {

std::atomic<long> g_countdown{-1};  // allocations still allowed before the injected one; -1: off
std::atomic<long> g_counted{0};     // allocations made while counting

void* allocate(std::size_t size, std::size_t align) {
  if (const long left = g_countdown.load(std::memory_order_relaxed); left >= 0) {
    if (left == 0) {
      g_countdown.store(-1, std::memory_order_relaxed);  // one failure, then unwinding may allocate
      throw std::bad_alloc{};
    }
    g_countdown.store(left - 1, std::memory_order_relaxed);
    g_counted.fetch_add(1, std::memory_order_relaxed);
  }
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(size)
                : std::aligned_alloc(align, (size + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc{};
  return p;
}

/// Fails the k-th allocation (k >= 1) made until disarm(); counts the ones before it.
void arm(long k) {
  g_counted.store(0);
  g_countdown.store(k - 1);
}
/// Stops injecting; true if the injected failure was not reached.
bool disarm() { return g_countdown.exchange(-1) != -1; }

}  // namespace

void* operator new(std::size_t size) { return allocate(size, 0); }
void* operator new[](std::size_t size) { return allocate(size, 0); }
void* operator new(std::size_t size, std::align_val_t align) {
  return allocate(size, static_cast<std::size_t>(align));
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return allocate(size, static_cast<std::size_t>(align));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace kvbm {
namespace {

constexpr std::uint32_t kBlockSize = 4;
constexpr std::size_t kPool = 20;

/// A fence that completes only when the test opens it.
class Gate final : public detail::FenceState {
 public:
  [[nodiscard]] bool ready() const override { return open_.load(); }
  void wait() const override {
    while (!open_.load()) std::this_thread::yield();
  }
  void open() { open_.store(true); }

 private:
  std::atomic<bool> open_{false};
};

SequenceHash synth(std::uint64_t value) { return SequenceHash::from_parts(value, std::nullopt, 0); }

struct Config {
  EvictionBackend backend;
  LineageEviction lineage;
  DuplicationPolicy policy;
  [[nodiscard]] std::string name() const {
    std::string out(to_string(backend));
    if (backend == EvictionBackend::Lineage) out += lineage == LineageEviction::Tick ? "-tick" : "-fifo";
    return out + (policy == DuplicationPolicy::Allow ? "/allow" : "/reject");
  }
};

/// A pool in a varied state: cached chain (lineage structure), unrelated cached blocks, held
/// blocks, fenced free and fenced cached slots, staged and mutable blocks, free slots.
struct World {
  BlockRegistry registry;
  BlockManager<G1> m;
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  std::vector<SequenceHash> chain;
  std::vector<ImmutableBlock<G1>> held;
  std::vector<CompleteBlock<G1>> staged;
  std::optional<MutableBlock<G1>> writable;
  std::optional<WeakBlock<G1>> weak_cached;
  std::vector<SequenceHash> all_hashes;

  // Outputs: assigning into an optional allocates nothing, so storing a result never fails.
  std::optional<std::vector<MutableBlock<G1>>> mutables;
  std::optional<std::pair<std::vector<MutableBlock<G1>>, std::vector<SequenceHash>>> evicting;
  std::optional<FencedAllocation<G1>> fenced;
  std::optional<std::vector<ImmutableBlock<G1>>> immutables;
  std::optional<ImmutableBlock<G1>> one;
  std::optional<std::unordered_map<SequenceHash, ImmutableBlock<G1>>> scanned;
  std::optional<WeakBlock<G1>> weak_out;
  std::optional<LifecyclePinRef> pin_out;
  std::optional<BlockManager<G1>> built;

  explicit World(const Config& c)
      : registry{BlockRegistry::builder().frequency_tracker(FrequencyTrackingCapacity::Small).build()},
        m{[&] {
          auto b = BlockManager<G1>::builder();
          b.block_count(kPool).block_size(kBlockSize).registry(registry).duplication_policy(c.policy);
          b.backend(c.backend);
          if (c.backend == EvictionBackend::Lineage) b.lineage_backend(c.lineage);
          return b.build();
        }()} {
    std::vector<Token> tokens(6 * kBlockSize);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<Token>(7 + i);
    TokenBlockSequence seq(tokens, kBlockSize, 42);
    chain = seq.sequence_hashes();
    {
      auto blocks = m.allocate_blocks(chain.size()).value();
      std::vector<CompleteBlock<G1>> completes;
      for (std::size_t i = 0; i < chain.size(); ++i) {
        completes.push_back(std::move(blocks[i]).stage(chain[i], kBlockSize));
      }
      auto registered = m.register_blocks(std::move(completes));
      weak_cached = registered[4].downgrade();
      std::vector<ImmutableBlock<G1>> tail_first(registered.rbegin(), registered.rend());
      registered.clear();
      m.release_blocks(std::move(tail_first));
    }
    for (std::uint64_t v : {300, 301}) (void)register_hash(synth(v));  // cached, unrelated
    held.push_back(register_hash(synth(500)));
    held.push_back(register_hash(synth(501)));
    {
      auto parked_free = std::move(m.allocate_blocks(1).value().front());
      parked_free.add_fence(Fence(gate));
      auto parked_cached = register_hash(synth(600));
      parked_cached.add_fence(Fence(gate));
    }
    auto stage = [&](const SequenceHash& h) {
      staged.push_back(std::move(m.allocate_blocks(1).value().front()).stage(h, kBlockSize));
    };
    stage(synth(700));     // a new hash
    stage(chain[2]);       // a cached hash: revived, then duplicate (Allow) or recycled (Reject)
    stage(synth(500));     // a held hash
    writable = std::move(m.allocate_blocks(1).value().front());
    all_hashes = chain;
    for (std::uint64_t v : {300, 301, 500, 501, 600, 700}) all_hashes.push_back(synth(v));
    m.check_invariants();
  }

  ImmutableBlock<G1> register_hash(const SequenceHash& h) {
    auto block = std::move(m.allocate_blocks(1).value().front()).stage(h, kBlockSize);
    return m.register_block(std::move(block));
  }

  /// Drops every handle and opens the gate: every slot must come back.
  void drop_everything() {
    mutables.reset();
    evicting.reset();
    fenced.reset();
    immutables.reset();
    one.reset();
    scanned.reset();
    weak_out.reset();
    pin_out.reset();
    built.reset();
    held.clear();
    staged.clear();
    writable.reset();
    weak_cached.reset();
    gate->open();
  }
};

/// Everything a failed call must leave unchanged.
struct Observed {
  detail::StoreDump dump;
  std::string metrics;
  std::size_t registered = 0;
  std::vector<std::uint32_t> frequencies;
  std::size_t staged = 0;
  std::size_t held = 0;
  friend bool operator==(const Observed&, const Observed&) = default;
};

Observed observe(World& w) {
  Observed o;
  o.dump = testing::dump(w.m);
  std::ostringstream metrics;
  metrics << w.m.metrics();
  o.metrics = metrics.str();
  o.registered = w.registry.registered_count();
  for (const auto& h : w.all_hashes) o.frequencies.push_back(w.registry.count(h));
  for (const auto& s : w.staged) o.staged += s.valid() ? 1 : 0;
  for (const auto& h : w.held) o.held += h.valid() ? 1 : 0;
  return o;
}

struct Call {
  const char* name;
  std::function<void(World&)> run;
};

std::vector<Call> calls() {
  using namespace std::chrono_literals;
  return {
      {"allocate_blocks(free only)", [](World& w) { w.mutables = w.m.allocate_blocks(2); }},
      {"allocate_blocks(evicting)", [](World& w) { w.mutables = w.m.allocate_blocks(9); }},
      {"allocate_blocks_with_evictions",
       [](World& w) { w.evicting = w.m.allocate_blocks_with_evictions(9); }},
      {"allocate_blocks_stream_ordered",
       [](World& w) { w.fenced = w.m.allocate_blocks_stream_ordered(w.m.available_blocks() + 2); }},
      {"allocate_blocks_blocking", [](World& w) { w.mutables = w.m.allocate_blocks_blocking(3); }},
      {"allocate_blocks_blocking(timeout)",
       [](World& w) { w.mutables = w.m.allocate_blocks_blocking(w.m.available_blocks() + 1, 1ms); }},
      {"register_blocks", [](World& w) { w.immutables = w.m.register_blocks(std::move(w.staged)); }},
      {"register_block", [](World& w) { w.one = w.m.register_block(std::move(w.staged[1])); }},
      {"match_blocks", [](World& w) { w.immutables = w.m.match_blocks(w.chain); }},
      {"scan_matches",
       [](World& w) {
         const std::vector<SequenceHash> hashes{w.chain[3], synth(999), synth(500), w.chain[3],
                                                w.chain[5], synth(301)};
         w.scanned = w.m.scan_matches(hashes);
       }},
      {"release_blocks", [](World& w) { w.m.release_blocks(std::move(w.held)); }},
      {"reset_inactive_pool", [](World& w) { (void)w.m.reset_inactive_pool(); }},
      {"available_blocks", [](World& w) { (void)w.m.available_blocks(); }},
      {"WeakBlock::upgrade", [](World& w) { w.one = w.weak_cached->upgrade(); }},
      {"ImmutableBlock::downgrade", [](World& w) { w.weak_out = w.held[0].downgrade(); }},
      {"ImmutableBlock::pin", [](World& w) { w.pin_out = w.held[1].pin(); }},
      {"ImmutableBlock::add_fence", [](World& w) { w.held[0].add_fence(Fence(w.gate)); }},
      {"Builder::build",
       [](World& w) {
         w.built = BlockManager<G1>::builder().block_count(8).block_size(kBlockSize)
                       .registry(w.registry).lineage_backend().build();
       }},
  };
}

std::vector<Config> configs() {
  std::vector<Config> out;
  for (const auto policy : {DuplicationPolicy::Allow, DuplicationPolicy::Reject}) {
    for (const auto backend : all_eviction_backends()) {
      out.push_back({backend, LineageEviction::Tick, policy});
      if (backend == EvictionBackend::Lineage) {
        out.push_back({backend, LineageEviction::Fifo, policy});
      }
    }
  }
  return out;
}

void expect_all_blocks_return(World& w) {
  w.drop_everything();
  w.m.check_invariants();
  EXPECT_EQ(w.m.available_blocks(), kPool) << "a slot was lost";
  EXPECT_EQ(w.m.metrics().inflight_immutable, 0);
  EXPECT_EQ(w.m.metrics().inflight_mutable, 0);
}

TEST(FaultInjection, EveryAllocationFailureLeavesThePoolExactlyAsBefore) {
  std::size_t injected = 0;
  for (const Config& config : configs()) {
    for (const Call& call : calls()) {
      SCOPED_TRACE(config.name() + " " + call.name);
      for (long k = 1;; ++k) {
        ASSERT_LT(k, 10'000) << "the call never stopped allocating";
        World w(config);
        const Observed before = observe(w);
        arm(k);
        bool failed = false;
        try {
          call.run(w);
        } catch (const std::bad_alloc&) {
          failed = true;
        }
        const bool completed = disarm();
        ASSERT_EQ(failed, !completed) << "bad_alloc from somewhere other than the injection";
        SCOPED_TRACE("allocation " + std::to_string(k));
        if (!failed) {  // the call made fewer than k allocations: it completed normally
          w.m.check_invariants();
          expect_all_blocks_return(w);
          break;
        }
        ++injected;
        w.m.check_invariants();
        const Observed after = observe(w);
        EXPECT_TRUE(after.dump == before.dump) << "pool state changed";
        EXPECT_EQ(after.metrics, before.metrics);
        EXPECT_EQ(after.registered, before.registered);
        EXPECT_EQ(after.frequencies, before.frequencies);
        EXPECT_EQ(after.staged, before.staged) << "the caller's staged blocks were consumed";
        EXPECT_EQ(after.held, before.held) << "the caller's held blocks were consumed";
        EXPECT_NO_THROW(call.run(w)) << "the repeated call failed";
        w.m.check_invariants();
        expect_all_blocks_return(w);
        if (::testing::Test::HasFailure()) return;  // one broken call is enough output
      }
    }
  }
  EXPECT_GT(injected, 100u) << "the calls under test made suspiciously few allocations";
}

TEST(FaultInjection, AllocatingMoreThanThePoolIsNulloptWithoutReserving) {
  World w({EvictionBackend::Lru, LineageEviction::Tick, DuplicationPolicy::Allow});
  const Observed before = observe(w);
  for (const std::size_t n : {kPool + 1, std::size_t{1} << 40, std::numeric_limits<std::size_t>::max()}) {
    SCOPED_TRACE(n);
    arm(std::numeric_limits<long>::max());
    EXPECT_FALSE(w.m.allocate_blocks(n).has_value());
    EXPECT_FALSE(w.m.allocate_blocks_with_evictions(n).has_value());
    EXPECT_FALSE(w.m.allocate_blocks_stream_ordered(n).has_value());
    EXPECT_FALSE(w.m.allocate_blocks_blocking(n).has_value());
    EXPECT_FALSE(w.m.allocate_blocks_blocking(n, std::chrono::hours(1)).has_value());
    disarm();
    EXPECT_EQ(g_counted.load(), 0) << "allocated for an impossible request";
  }
  EXPECT_TRUE(observe(w) == before);
  expect_all_blocks_return(w);
}

TEST(FaultInjection, BlockingAllocationWithATimeoutGivesUpOnAFenceThatNeverCompletes) {
  World w({EvictionBackend::Lineage, LineageEviction::Tick, DuplicationPolicy::Allow});
  const std::size_t ready = w.m.available_blocks();
  const Observed before = observe(w);
  // Only the two slots parked on the never-opened gate could make up the difference.
  EXPECT_FALSE(w.m.allocate_blocks_blocking(ready + 1, std::chrono::milliseconds(5)).has_value());
  EXPECT_FALSE(w.m.allocate_blocks_blocking(ready + 1, std::chrono::seconds(0)).has_value());
  EXPECT_FALSE(w.m.allocate_blocks_blocking(ready + 1, std::chrono::nanoseconds(-1)).has_value());
  EXPECT_TRUE(observe(w) == before);
  // Once the gate opens, the same request succeeds within any timeout.
  w.gate->open();
  EXPECT_TRUE(w.m.allocate_blocks_blocking(ready + 1, std::chrono::hours::max()).has_value());
  expect_all_blocks_return(w);
}

// KV events under memory pressure. Transitions that may throw reserve their records first (the
// strong guarantee above holds with a sink too: see the test after this one); a release reserves
// nothing and must not fail, so a Removed record it cannot store marks the stream lost, and the
// pool's next locked call replaces it by Cleared + Stored for everything matchable. A consumer
// applying the stream is therefore equal to the pool again after that call, for every k. Both
// record paths: pushed to a callback sink, and pulled by a batching sink (compact records; its
// thread stays asleep while a failure is armed, and hands records over without copying them).
void check_lost_record_resync(bool pulled) {
  constexpr std::size_t kBlocks = 600;  // more Removed records than the event buffer starts with
  std::size_t resyncs = 0;
  for (long k = 1;; ++k) {
    ASSERT_LT(k, 1000) << "release_blocks never stopped allocating";
    SCOPED_TRACE("allocation " + std::to_string(k));
    std::set<std::uint64_t> applied;
    auto callback = std::make_shared<CallbackEventSink>([&](const KvEventView& v) {
      for (const KvEventRecord& r : v.records) {
        if (r.kind == KvEventKind::Stored) applied.insert(r.block_hash);
        if (r.kind == KvEventKind::Removed) applied.erase(r.block_hash);
        if (r.kind == KvEventKind::Cleared) {
          applied.clear();
          ++resyncs;  // nothing here drains the whole cache, so a Cleared is a resync
        }
      }
    });
    std::shared_ptr<KvEventSink> sink = callback;
    std::shared_ptr<BatchingEventSink> batcher;
    if (pulled) {
      KvEventBatching batching;
      batching.window = std::chrono::hours(1);  // drains only on flush(), never while armed
      batching.drain_threshold = std::size_t{1} << 30;
      batching.deliver_from_pools = true;
      sink = batcher = std::make_shared<BatchingEventSink>(callback, batching);
    }
    const auto flush = [&] {
      if (batcher) batcher->flush();
    };
    // A fresh pool each time: its event buffers have not grown yet.
    auto m = BlockManager<G1>::builder().block_count(kBlocks + 1).block_size(kBlockSize)
                 .registry(BlockRegistry::builder().build()).default_reset_on_release(true)
                 .event_sink(sink).build();
    auto matchable = [&] {
      std::set<std::uint64_t> out;
      for (const SequenceHash& h : m.matchable_hashes()) out.insert(wire_hash(h));
      return out;
    };
    auto fresh = m.allocate_blocks(kBlocks + 1);
    ASSERT_TRUE(fresh.has_value());
    std::vector<CompleteBlock<G1>> staged;
    for (std::size_t i = 0; i <= kBlocks; ++i) {
      staged.push_back(std::move((*fresh)[i]).stage(synth(1'000 + i), kBlockSize));
    }
    auto held = m.register_blocks(std::move(staged));
    ImmutableBlock<G1> keep = std::move(held.back());  // stays matchable across the loss
    held.pop_back();
    flush();
    ASSERT_EQ(applied, matchable());
    arm(k);
    bool failed = false;
    try {
      m.release_blocks(std::move(held));
    } catch (const std::bad_alloc&) {
      failed = true;  // before any slot changed: the blocks are still ours
    }
    const bool completed = disarm();
    if (failed) m.release_blocks(std::move(held));
    (void)m.match_blocks(std::vector<SequenceHash>{synth(999'999'999)});  // any locked call
    flush();
    EXPECT_EQ(applied, matchable()) << "the stream was not restored";
    EXPECT_EQ(applied.size(), 1u);
    m.check_invariants();
    if (completed) break;
  }
  EXPECT_GE(resyncs, 1u) << "no allocation failure reached the event buffer: nothing was resynced";
}

TEST(FaultInjection, AnEventRecordLostToMemoryIsResyncedByTheNextCall) {
  for (const bool pulled : {false, true}) {
    SCOPED_TRACE(pulled ? "pulled" : "pushed");
    check_lost_record_resync(pulled);
  }
}

// Evicting allocations and drains reserve their Removed records before the first slot changes:
// with a sink attached, a failed call leaves pool and stream as they were.
TEST(FaultInjection, EvictingAllocationWithASinkKeepsPoolAndStreamOnFailure) {
  std::set<std::uint64_t> applied;
  auto sink = std::make_shared<CallbackEventSink>([&](const KvEventView& v) {
    for (const KvEventRecord& r : v.records) {
      if (r.kind == KvEventKind::Stored) applied.insert(r.block_hash);
      if (r.kind == KvEventKind::Removed) applied.erase(r.block_hash);
      if (r.kind == KvEventKind::Cleared) applied.clear();
    }
  });
  constexpr std::size_t kBlocks = 600;
  auto m = BlockManager<G1>::builder().block_count(kBlocks).block_size(kBlockSize)
               .registry(BlockRegistry::builder().build()).event_sink(sink).build();
  auto matchable = [&] {
    std::set<std::uint64_t> out;
    for (const SequenceHash& h : m.matchable_hashes()) out.insert(wire_hash(h));
    return out;
  };
  {
    auto fresh = m.allocate_blocks(kBlocks);
    std::vector<CompleteBlock<G1>> staged;
    for (std::size_t i = 0; i < kBlocks; ++i) {
      staged.push_back(std::move((*fresh)[i]).stage(synth(7'000'000 + i), kBlockSize));
    }
    m.release_blocks(m.register_blocks(std::move(staged)));  // all cached
  }
  for (const bool drain : {false, true}) {
    for (long k = 1;; ++k) {
      ASSERT_LT(k, 1000);
      SCOPED_TRACE(std::string(drain ? "reset_inactive_pool" : "allocate_blocks") +
                   ", allocation " + std::to_string(k));
      const auto before = matchable();
      ASSERT_EQ(applied, before);
      arm(k);
      std::optional<std::vector<MutableBlock<G1>>> taken;
      bool failed = false;
      try {
        if (drain) {
          (void)m.reset_inactive_pool();
        } else {
          taken = m.allocate_blocks(kBlocks);  // evicts every cached block
        }
      } catch (const std::bad_alloc&) {
        failed = true;
      }
      const bool completed = disarm();
      ASSERT_EQ(failed, !completed);
      if (failed) {
        EXPECT_EQ(matchable(), before) << "a failed call changed the pool";
        EXPECT_EQ(applied, before) << "a failed call changed the stream";
        continue;
      }
      EXPECT_EQ(applied, matchable());
      break;
    }
  }
}

}  // namespace
}  // namespace kvbm
