// bench/block_manager_bench.cpp — Google Benchmark suite for BlockManager, with an in-run floor.
//
// Every benchmark's label names its floor: a benchmark in this binary doing the minimum work the
// workload implies with bare data structures (one absl::flat_hash_map probe per looked-up block,
// one push per released block, one insert + erase per registered block). scripts/bench.sh
// reports each result as a ratio to its floor measured in the same run, so machine speed and
// noise cancel. All rates are per block (items_per_second counts blocks).
//
// Workloads (same shapes as the Rust original's Criterion bench where it has one; block size 4,
// salt 1337, chains of n = 8, 32, 128):
//   match_blocks_active_hit/lru/n        full-prefix match of a held chain
//   match_blocks_inactive_hit/<b>/n      match that revives an inactive chain + the drop back
//   bulk_drop/<b>/n                      dropping 16 chains of n ImmutableBlocks into the pool
//   lifecycle/<b>/batch                  allocate -> stage -> register -> drop (batch 1, 32)
//   eviction_heavy/<b>/batch             the same on a full cache: every allocation evicts
//   scan_matches/lru/n, weak_upgrade*, pin_clone
//   scaling/*/pool                       per-op cost at pools of 1K, 64K and 1M blocks
//   threads/*/threads:1|2                one and two threads on one manager (`disjoint`: a chain
//                                        per thread), and the contract floors of the same
//   paired/match_active_vs_floor/<b>/n[/appending]  held-chain match (returning a vector, or
//                                        appending to a reused one) alternating with its floor
//                                        of one probe + one refcount pair per block; counter
//                                        `ratio` = match / floor, robust to host noise
//   paired/eviction_heavy_vs_lru/<b>/batch  eviction_heavy on <b> alternating with LRU; `ratio`
//   paired/revive_{drop,release}_vs_lru/<b>/n  16 cached chains revived by match_blocks and given
//                                        back one handle at a time or by release_blocks, on <b>
//                                        alternating with LRU; `ratio`
// transfer_bench.cpp adds TransferEngine (host) throughput vs memcpy and DeviceBlockTable sync
// bytes per step vs table size.
#include <absl/container/flat_hash_map.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kvbm/kvbm.hpp"
#include "paired.hpp"

namespace {

using kvbm::BlockRegistry;
using kvbm::SequenceHash;
using Manager = kvbm::BlockManager<kvbm::G1>;
using Immutable = kvbm::ImmutableBlock<kvbm::G1>;
using Complete = kvbm::CompleteBlock<kvbm::G1>;

constexpr std::uint32_t kBlockSize = 4;
constexpr std::uint64_t kSalt = 1337;
constexpr std::size_t kDropBatches = 16;  // chains dropped per bulk_drop iteration

// ---------------------------------------------------------------------------------------------
// Backends: every kvbm::EvictionBackend joins every per-backend benchmark under its
// kvbm::to_string name; backends whose build() throws kvbm::ConfigError are skipped at startup.
struct Backend {
  std::string name;
  kvbm::EvictionBackend kind;
  bool frequency_tracker;
};
const std::vector<Backend> kBackends = [] {
  std::vector<Backend> out;
  for (const kvbm::EvictionBackend kind : kvbm::all_eviction_backends()) {
    out.push_back({std::string(kvbm::to_string(kind)), kind, kvbm::needs_frequency_tracker(kind)});
  }
  return out;
}();
const Backend& lru_backend() {
  return *std::find_if(kBackends.begin(), kBackends.end(),
                       [](const Backend& b) { return b.kind == kvbm::EvictionBackend::Lru; });
}
/// LRU over a registry with a TinyLFU tracker (Medium, the registry default size): measures
/// what the frequency touches add to a match.
const Backend kLruTinyLfu{"lru+tinylfu", kvbm::EvictionBackend::Lru, true};

Manager make_manager(const Backend& backend, std::size_t blocks, bool reset_on_release = false) {
  auto registry = BlockRegistry::builder();
  if (backend.frequency_tracker) {
    registry.frequency_tracker(kvbm::FrequencyTrackingCapacity::Small);
  }
  return Manager::builder()
      .block_count(blocks)
      .block_size(kBlockSize)
      .registry(registry.build())
      .default_reset_on_release(reset_on_release)
      .backend(backend.kind)
      .build();
}

// ---------------------------------------------------------------------------------------------
// Hashes and helpers.
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The original's setup: a token chain hashed with block size 4 and salt 1337 (+ offset for
// distinct chains).
std::vector<SequenceHash> token_chain(std::size_t n, std::uint64_t salt = kSalt) {
  std::vector<kvbm::Token> tokens(n * kBlockSize);
  std::iota(tokens.begin(), tokens.end(), 0u);
  return kvbm::TokenBlockSequence(std::move(tokens), kBlockSize, salt).sequence_hashes();
}

// A synthetic chain (cheap to make by the million): chain `c`, blocks 0..n-1.
std::vector<SequenceHash> synthetic_chain(std::uint64_t c, std::size_t n) {
  std::vector<SequenceHash> out;
  out.reserve(n);
  std::optional<std::uint64_t> parent;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint64_t current = splitmix64(c * 1024 + i);
    out.push_back(SequenceHash::from_parts(current, parent, i));
    parent = current;
  }
  return out;
}

SequenceHash unique_hash(std::uint64_t counter) {
  return SequenceHash::from_parts(splitmix64(counter), std::nullopt, 0);
}

std::vector<Immutable> register_chain(Manager& manager, const std::vector<SequenceHash>& hashes) {
  auto blocks = manager.allocate_blocks(hashes.size());
  if (!blocks) throw std::runtime_error("bench setup: pool too small");
  std::vector<Complete> staged;
  staged.reserve(hashes.size());
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    staged.push_back(std::move((*blocks)[i]).stage(hashes[i], kBlockSize));
  }
  return manager.register_blocks(std::move(staged));
}

void drop_tail_first(std::vector<Immutable>& blocks) {
  while (!blocks.empty()) blocks.pop_back();
}

void set_floor(benchmark::State& state, const std::string& floor) { state.SetLabel(floor); }
std::string floor_name(const char* kind, std::int64_t n) {
  return std::string("floor/") + kind + "/" + std::to_string(n);
}

using HashIndex = absl::flat_hash_map<SequenceHash, std::uint32_t, std::hash<SequenceHash>>;

// ---------------------------------------------------------------------------------------------
// Floors: bare data structures doing the least work each workload implies.

// One probe per looked-up block, one push per returned block (match of a held chain, scan).
void floor_match(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto hashes = token_chain(n);
  HashIndex index;
  for (std::uint32_t i = 0; i < n; ++i) index.emplace(hashes[i], i);
  std::vector<std::uint32_t> out;
  out.reserve(n);
  for (auto _ : state) {
    out.clear();
    for (const auto& h : hashes) {
      const auto it = index.find(h);
      if (it == index.end()) break;
      out.push_back(it->second);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// The same plus one push per released block (match from the inactive pool and drop back).
void floor_match_release(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto hashes = token_chain(n);
  HashIndex index;
  for (std::uint32_t i = 0; i < n; ++i) index.emplace(hashes[i], i);
  std::vector<std::uint32_t> out, released;
  out.reserve(n);
  released.reserve(n);
  for (auto _ : state) {
    out.clear();
    released.clear();
    for (const auto& h : hashes) {
      const auto it = index.find(h);
      if (it == index.end()) break;
      out.push_back(it->second);
    }
    for (auto it = out.rbegin(); it != out.rend(); ++it) released.push_back(*it);
    benchmark::DoNotOptimize(released.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// One push per released block (bulk drop), timed exactly like bulk_drop.
void floor_release(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)) * kDropBatches;
  std::vector<std::uint32_t> released;
  released.reserve(n);
  for (auto _ : state) {
    state.PauseTiming();
    released.clear();
    state.ResumeTiming();
    for (std::uint32_t i = 0; i < n; ++i) released.push_back(i);
    benchmark::DoNotOptimize(released.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// Per block: pop a free id, insert its hash (register), erase it and push the id back (release).
void floor_lifecycle(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint32_t> free_ids(batch * 4);
  std::iota(free_ids.begin(), free_ids.end(), 0u);
  HashIndex index;
  index.reserve(batch * 4);
  std::vector<std::pair<std::uint32_t, SequenceHash>> held;
  held.reserve(batch);
  std::uint64_t counter = 0;
  for (auto _ : state) {
    held.clear();
    for (std::size_t i = 0; i < batch; ++i) {
      const std::uint32_t id = free_ids.back();
      free_ids.pop_back();
      const SequenceHash h = unique_hash(++counter);
      index.emplace(h, id);
      held.emplace_back(id, h);
    }
    for (auto it = held.rbegin(); it != held.rend(); ++it) {
      index.erase(it->second);
      free_ids.push_back(it->first);
    }
    benchmark::DoNotOptimize(free_ids.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// Per block on a full cache of `pool` blocks: pop the oldest cached id, erase its hash, insert
// the new hash, push the id to the back of the order (args: pool, batch).
void floor_evict(benchmark::State& state) {
  const auto pool = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  HashIndex index;
  index.reserve(pool);
  std::vector<SequenceHash> hash_of(pool);
  std::deque<std::uint32_t> order;
  std::uint64_t counter = 0;
  for (std::uint32_t id = 0; id < pool; ++id) {
    hash_of[id] = unique_hash(++counter);
    index.emplace(hash_of[id], id);
    order.push_back(id);
  }
  std::vector<std::uint32_t> held;
  held.reserve(batch);
  for (auto _ : state) {
    held.clear();
    for (std::size_t i = 0; i < batch; ++i) {
      const std::uint32_t id = order.front();
      order.pop_front();
      index.erase(hash_of[id]);
      hash_of[id] = unique_hash(++counter);
      index.emplace(hash_of[id], id);
      held.push_back(id);
    }
    for (auto it = held.rbegin(); it != held.rend(); ++it) order.push_back(*it);
    benchmark::DoNotOptimize(held.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// One reference-count increment and decrement (pin clone, weak upgrade of a live block).
void floor_refcount(benchmark::State& state) {
  std::atomic<std::uint64_t> count{1};
  for (auto _ : state) {
    count.fetch_add(1, std::memory_order_relaxed);
    benchmark::DoNotOptimize(count.fetch_sub(1, std::memory_order_acq_rel));
  }
  state.SetItemsProcessed(state.iterations());
}

// Random 8-block chains out of a `pool`-entry map: 8 probes + 8 pushes + 8 release pushes.
void floor_scaling(benchmark::State& state) {
  const auto pool = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t kChain = 8;
  const std::size_t chains = pool / kChain;
  std::vector<std::vector<SequenceHash>> all(chains);
  HashIndex index;
  index.reserve(pool);
  for (std::size_t c = 0; c < chains; ++c) {
    all[c] = synthetic_chain(c, kChain);
    for (std::uint32_t i = 0; i < kChain; ++i) {
      index.emplace(all[c][i], static_cast<std::uint32_t>(c * kChain + i));
    }
  }
  std::mt19937_64 rng(42);
  std::vector<std::uint32_t> out, released;
  out.reserve(kChain);
  released.reserve(kChain);
  for (auto _ : state) {
    const auto& chain = all[rng() % chains];
    out.clear();
    released.clear();
    for (const auto& h : chain) {
      const auto it = index.find(h);
      if (it == index.end()) break;
      out.push_back(it->second);
    }
    for (auto it = out.rbegin(); it != out.rend(); ++it) released.push_back(*it);
    benchmark::DoNotOptimize(released.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kChain));
}

// ---------------------------------------------------------------------------------------------
// BlockManager workloads.

void match_active(benchmark::State& state, const Backend& backend) {
  const auto n = static_cast<std::size_t>(state.range(0));
  set_floor(state, floor_name("match", state.range(0)));
  auto manager = make_manager(backend, 2 * n);
  const auto hashes = token_chain(n);
  const auto held = register_chain(manager, hashes);
  for (auto _ : state) {
    auto matched = manager.match_blocks(hashes);
    benchmark::DoNotOptimize(matched.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void match_inactive(benchmark::State& state, const Backend& backend) {
  const auto n = static_cast<std::size_t>(state.range(0));
  set_floor(state, floor_name("match_release", state.range(0)));
  auto manager = make_manager(backend, 2 * n);
  const auto hashes = token_chain(n);
  {
    auto blocks = register_chain(manager, hashes);
    drop_tail_first(blocks);
  }
  for (auto _ : state) {
    auto matched = manager.match_blocks(hashes);
    benchmark::DoNotOptimize(matched.data());
    drop_tail_first(matched);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// Releases kDropBatches matched chains per iteration: one handle at a time (each last reference
// takes the pool lock), or as batches through BlockManager::release_blocks (one lock each).
enum class Release { OneByOne, Batch };

void bulk_release_chains(benchmark::State& state, const Backend& backend, Release how) {
  const auto n = static_cast<std::size_t>(state.range(0));
  set_floor(state, floor_name("release", state.range(0)));
  auto manager = make_manager(backend, 2 * n * kDropBatches);
  std::vector<std::vector<SequenceHash>> chains;
  for (std::size_t k = 0; k < kDropBatches; ++k) {
    chains.push_back(token_chain(n, kSalt + k));
    auto blocks = register_chain(manager, chains.back());
    drop_tail_first(blocks);
  }
  std::vector<std::vector<Immutable>> batches(kDropBatches);
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t k = 0; k < kDropBatches; ++k) batches[k] = manager.match_blocks(chains[k]);
    state.ResumeTiming();
    for (auto& batch : batches) {
      if (how == Release::Batch) {
        manager.release_blocks(std::move(batch));
      } else {
        batch.clear();  // each last reference inserts into the pool
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n * kDropBatches));
}

void bulk_drop(benchmark::State& state, const Backend& backend) {
  bulk_release_chains(state, backend, Release::OneByOne);
}
void bulk_release(benchmark::State& state, const Backend& backend) {
  bulk_release_chains(state, backend, Release::Batch);
}

// allocate -> stage -> register -> drop with a fresh hash per block; `manager` decides whether
// the drop caches (eviction-heavy) or frees the slot (plain lifecycle).
void run_lifecycle(benchmark::State& state, Manager& manager, std::size_t batch,
                   std::uint64_t& counter) {
  std::vector<Complete> staged;
  staged.reserve(batch);
  for (auto _ : state) {
    auto blocks = manager.allocate_blocks(batch);
    for (auto& block : *blocks)
      staged.push_back(std::move(block).stage(unique_hash(++counter), kBlockSize));
    auto registered = manager.register_blocks(std::move(staged));
    staged.clear();
    drop_tail_first(registered);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

void lifecycle(benchmark::State& state, const Backend& backend) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  set_floor(state, floor_name("lifecycle", state.range(0)));
  auto manager = make_manager(backend, 4 * batch, /*reset_on_release=*/true);
  std::uint64_t counter = 0;
  run_lifecycle(state, manager, batch, counter);
}

constexpr std::int64_t kEvictionPool = 4096;

// Fills a caching pool with inactive blocks so that every later allocation evicts.
void fill_with_inactive(Manager& manager, std::uint64_t& counter) {
  const std::size_t total = manager.total_blocks();
  auto blocks = manager.allocate_blocks(total);
  std::vector<Complete> staged;
  staged.reserve(total);
  for (auto& block : *blocks)
    staged.push_back(std::move(block).stage(unique_hash(++counter), kBlockSize));
  auto registered = manager.register_blocks(std::move(staged));
  drop_tail_first(registered);
}

void eviction_heavy(benchmark::State& state, const Backend& backend) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  set_floor(state, "floor/evict/" + std::to_string(kEvictionPool) + "/" + std::to_string(batch));
  auto manager = make_manager(backend, kEvictionPool);
  std::uint64_t counter = 0;
  fill_with_inactive(manager, counter);
  run_lifecycle(state, manager, batch, counter);
}

void scan_matches(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  set_floor(state, floor_name("match", state.range(0)));
  auto manager = make_manager(lru_backend(), 2 * n);
  const auto hashes = token_chain(n);
  const auto held = register_chain(manager, hashes);
  for (auto _ : state) {
    auto found = manager.scan_matches(hashes);
    benchmark::DoNotOptimize(found.size());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

void weak_upgrade_live(benchmark::State& state) {
  set_floor(state, "floor/refcount");
  auto manager = make_manager(lru_backend(), 8);
  const auto held = register_chain(manager, token_chain(1));
  const auto weak = held.front().downgrade();
  for (auto _ : state) {
    auto strong = weak.upgrade();
    benchmark::DoNotOptimize(strong.has_value());
  }
  state.SetItemsProcessed(state.iterations());
}

void weak_upgrade_inactive(benchmark::State& state) {
  set_floor(state, floor_name("match_release", 1));
  auto manager = make_manager(lru_backend(), 8);
  std::optional<kvbm::WeakBlock<kvbm::G1>> weak;
  {
    auto held = register_chain(manager, token_chain(1));
    weak.emplace(held.front().downgrade());
  }
  for (auto _ : state) {
    auto strong = weak->upgrade();  // revives from the inactive pool; the drop puts it back
    benchmark::DoNotOptimize(strong.has_value());
  }
  state.SetItemsProcessed(state.iterations());
}

void pin_clone(benchmark::State& state) {
  set_floor(state, "floor/refcount");
  auto manager = make_manager(lru_backend(), 8);
  const auto held = register_chain(manager, token_chain(1));
  const auto pin = held.front().pin();
  for (auto _ : state) {
    auto copy = pin;
    benchmark::DoNotOptimize(copy.block_id());
  }
  state.SetItemsProcessed(state.iterations());
}

// A full pool of cached 8-block chains, built once per pool size (Google Benchmark calls a
// benchmark several times while it sizes the iteration count; a 1M-block setup is not free).
struct CachedChains {
  std::optional<Manager> manager;
  std::vector<std::vector<SequenceHash>> chains;
};
CachedChains& cached_chains(std::size_t pool) {
  static std::map<std::size_t, CachedChains> fixtures;
  CachedChains& fixture = fixtures[pool];
  if (!fixture.manager) {
    constexpr std::size_t kChain = 8;
    fixture.manager.emplace(make_manager(lru_backend(), pool));
    fixture.chains.resize(pool / kChain);
    for (std::size_t c = 0; c < fixture.chains.size(); ++c) {
      fixture.chains[c] = synthetic_chain(c, kChain);
      auto blocks = register_chain(*fixture.manager, fixture.chains[c]);
      drop_tail_first(blocks);
    }
  }
  return fixture;
}

// Per-op cost vs pool size: match + drop of a random cached 8-block chain in a full pool.
void scaling_match_inactive(benchmark::State& state) {
  const auto pool = static_cast<std::size_t>(state.range(0));
  set_floor(state, floor_name("scaling", state.range(0)));
  constexpr std::size_t kChain = 8;
  CachedChains& fixture = cached_chains(pool);
  Manager& manager = *fixture.manager;
  const auto& all = fixture.chains;
  const std::size_t chains = all.size();
  std::mt19937_64 rng(42);
  for (auto _ : state) {
    auto matched = manager.match_blocks(all[rng() % chains]);
    benchmark::DoNotOptimize(matched.data());
    drop_tail_first(matched);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kChain));
}

// Per-op cost vs pool size: the eviction-heavy lifecycle (batch 8) in a full pool.
void scaling_eviction(benchmark::State& state) {
  const auto pool = static_cast<std::size_t>(state.range(0));
  set_floor(state, "floor/evict/" + std::to_string(pool) + "/8");
  static std::map<std::size_t, std::pair<std::optional<Manager>, std::uint64_t>> fixtures;
  auto& [manager, counter] = fixtures[pool];
  if (!manager) {
    manager.emplace(make_manager(lru_backend(), pool));
    fill_with_inactive(*manager, counter);
  }
  run_lifecycle(state, *manager, 8, counter);
}

// Two threads on one manager. Thread 0 builds the shared state before the loop's start barrier.
struct SharedMatch {
  std::optional<Manager> manager;
  std::vector<SequenceHash> hashes;
  std::vector<SequenceHash> other;
  std::vector<Immutable> held;
};
SharedMatch g_shared_match;

// `disjoint`: each thread matches a chain of its own (no block shared between the threads).
void threads_match_active(benchmark::State& state, bool disjoint) {
  constexpr std::size_t n = 32;
  set_floor(state, floor_name("match", n));
  if (state.thread_index() == 0) {
    g_shared_match.manager.emplace(make_manager(lru_backend(), 4 * n));
    g_shared_match.hashes = token_chain(n);
    g_shared_match.other = token_chain(n, kSalt + 1);
    g_shared_match.held = register_chain(*g_shared_match.manager, g_shared_match.hashes);
    auto other = register_chain(*g_shared_match.manager, g_shared_match.other);
    for (auto& block : other) g_shared_match.held.push_back(std::move(block));
  }
  const auto& hashes =
      disjoint && state.thread_index() == 1 ? g_shared_match.other : g_shared_match.hashes;
  for (auto _ : state) {
    auto matched = g_shared_match.manager->match_blocks(hashes);
    benchmark::DoNotOptimize(matched.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  if (state.thread_index() == 0) {
    // Other threads are past the loop's end barrier; their handles are gone.
    g_shared_match.held.clear();
  }
}

// The contract floor of threads_match_active with bare structures: per block one probe of a
// shared index, one push, one increment and (at the drop) one decrement of that block's count.
// `same`: both threads match one chain, so they update the same counts, as two requests sharing
// a prefix do; the counts' cache lines then move between the cores on every block. `disjoint`:
// a chain per thread. `+gauge`: every drop also decrements one shared gauge, as ImmutableBlock
// does inflight_immutable. Scaling from one thread to two bounds what the manager can reach.
struct SharedFloor {
  std::vector<SequenceHash> hashes;
  HashIndex index;
  std::vector<std::atomic<std::uint64_t>> counts;
};
std::optional<SharedFloor> g_shared_floor;

std::atomic<std::int64_t> g_shared_gauge{0};

void floor_threads_match(benchmark::State& state, bool disjoint, bool gauge) {
  constexpr std::size_t n = 32;
  if (state.thread_index() == 0) {
    g_shared_floor.emplace();
    g_shared_floor->hashes = token_chain(n);
    const auto second = token_chain(n, kSalt + 1);
    g_shared_floor->hashes.insert(g_shared_floor->hashes.end(), second.begin(), second.end());
    g_shared_floor->counts = std::vector<std::atomic<std::uint64_t>>(2 * n);
    for (std::uint32_t i = 0; i < 2 * n; ++i) g_shared_floor->index.emplace(g_shared_floor->hashes[i], i);
  }
  std::vector<std::uint32_t> out;
  out.reserve(n);
  const std::size_t first = disjoint && state.thread_index() == 1 ? n : 0;
  for (auto _ : state) {
    SharedFloor& f = *g_shared_floor;
    for (std::size_t b = first; b < first + n; ++b) {
      const auto& h = f.hashes[b];
      const auto it = f.index.find(h);
      if (it == f.index.end()) break;
      f.counts[it->second].fetch_add(1, std::memory_order_relaxed);
      out.push_back(it->second);
    }
    benchmark::DoNotOptimize(out.data());
    for (const std::uint32_t i : out) {
      if (gauge) g_shared_gauge.fetch_sub(1, std::memory_order_relaxed);
      benchmark::DoNotOptimize(f.counts[i].fetch_sub(1, std::memory_order_acq_rel));
    }
    out.clear();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

std::optional<Manager> g_shared_lifecycle;

void threads_lifecycle(benchmark::State& state) {
  constexpr std::size_t batch = 32;
  set_floor(state, floor_name("lifecycle", batch));
  if (state.thread_index() == 0) {
    g_shared_lifecycle.emplace(make_manager(lru_backend(), 8 * batch, /*reset_on_release=*/true));
  }
  // Disjoint hash ranges per thread.
  std::uint64_t counter = (static_cast<std::uint64_t>(state.thread_index()) + 1) << 40;
  std::vector<Complete> staged;
  staged.reserve(batch);
  for (auto _ : state) {
    auto blocks = g_shared_lifecycle->allocate_blocks(batch);
    for (auto& block : *blocks)
      staged.push_back(std::move(block).stage(unique_hash(++counter), kBlockSize));
    auto registered = g_shared_lifecycle->register_blocks(std::move(staged));
    staged.clear();
    drop_tail_first(registered);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// ---------------------------------------------------------------------------------------------
std::vector<const Backend*> available_backends() {
  std::vector<const Backend*> out;
  for (const auto& backend : kBackends) {
    try {
      (void)make_manager(backend, 16);
      out.push_back(&backend);
    } catch (const kvbm::ConfigError& e) {
      std::fprintf(stderr, "bench: skipping backend %s: %s\n", backend.name.c_str(), e.what());
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Paired runs (bench/paired.hpp): kPairedRun iterations of loop a, then of loop b, per benchmark
// iteration; counter `ratio` = time of b / time of a.

constexpr std::size_t kPairedRun = 64;

template <class A, class B>
void run_paired(benchmark::State& state, std::size_t per_iteration, A&& a, B&& b) {
  const auto seconds = kvbm::bench::run_paired(state, kPairedRun, a, b, [] {});
  const double runs = static_cast<double>(state.iterations()) * kPairedRun;
  state.SetItemsProcessed(static_cast<std::int64_t>(runs * static_cast<double>(per_iteration)));
  state.counters["a_ns_per_block"] = 1e9 * seconds.a / (runs * static_cast<double>(per_iteration));
}

// a: what the API contract implies for a held-chain match, with bare structures: per block one
// probe, one push and one reference-count increment, then one decrement per dropped result.
// b: match_blocks of the held chain and the drop of its results; `appending`: the form that
// appends to a vector the caller reuses (cleared after each match) instead of returning one.
void paired_match_active(benchmark::State& state, const Backend& backend, bool appending) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto hashes = token_chain(n);
  HashIndex index;
  for (std::uint32_t i = 0; i < n; ++i) index.emplace(hashes[i], i);
  std::vector<std::atomic<std::uint64_t>> counts(n);
  for (auto& c : counts) c.store(1);
  std::vector<std::uint32_t> out;
  out.reserve(n);
  auto manager = make_manager(backend, 2 * n);
  const auto held = register_chain(manager, hashes);
  std::vector<Immutable> reused;
  run_paired(
      state, n,
      [&] {
        out.clear();
        for (const auto& h : hashes) {
          const auto it = index.find(h);
          if (it == index.end()) break;
          counts[it->second].fetch_add(1, std::memory_order_relaxed);
          out.push_back(it->second);
        }
        benchmark::DoNotOptimize(out.data());
        while (!out.empty()) {
          benchmark::DoNotOptimize(counts[out.back()].fetch_sub(1, std::memory_order_acq_rel));
          out.pop_back();
        }
      },
      [&] {
        if (appending) {
          benchmark::DoNotOptimize(manager.match_blocks(hashes, reused));
          reused.clear();
        } else {
          auto matched = manager.match_blocks(hashes);
          benchmark::DoNotOptimize(matched.data());
        }
      });
}

// The same workload on an LRU manager (a) and on `backend`'s (b): ratio = backend / LRU.
template <class Setup, class Loop>
void paired_vs_lru(benchmark::State& state, const Backend& backend, std::size_t per_iteration,
                   Setup setup, Loop loop) {
  auto lru = setup(lru_backend());
  auto other = setup(backend);
  run_paired(state, per_iteration, [&] { loop(lru); }, [&] { loop(other); });
}

struct EvictionRig {
  Manager manager;
  std::uint64_t counter = 0;
  std::vector<Complete> staged;
};

void paired_eviction_vs_lru(benchmark::State& state, const Backend& backend) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  paired_vs_lru(
      state, backend, batch,
      [&](const Backend& b) {
        auto rig = std::make_unique<EvictionRig>(EvictionRig{make_manager(b, kEvictionPool), 0, {}});
        fill_with_inactive(rig->manager, rig->counter);
        rig->staged.reserve(batch);
        return rig;
      },
      [&](std::unique_ptr<EvictionRig>& rig) {
        auto blocks = rig->manager.allocate_blocks(batch);
        for (auto& block : *blocks)
          rig->staged.push_back(std::move(block).stage(unique_hash(++rig->counter), kBlockSize));
        auto registered = rig->manager.register_blocks(std::move(rig->staged));
        rig->staged.clear();
        drop_tail_first(registered);
      });
}

// Revive cached chains and give them back (match_blocks_inactive_hit, then bulk_drop's or
// bulk_release's release, both timed) on LRU (a) and on `backend` (b): ratio = backend / LRU.
struct CachedChainsRig {
  Manager manager;
  std::vector<std::vector<SequenceHash>> chains;
  std::vector<std::vector<Immutable>> batches;
};

void paired_revive_release_vs_lru(benchmark::State& state, const Backend& backend, Release how) {
  const auto n = static_cast<std::size_t>(state.range(0));
  paired_vs_lru(
      state, backend, n * kDropBatches,
      [&](const Backend& b) {
        auto rig = std::make_unique<CachedChainsRig>(
            CachedChainsRig{make_manager(b, 2 * n * kDropBatches), {}, {}});
        for (std::size_t k = 0; k < kDropBatches; ++k) {
          rig->chains.push_back(token_chain(n, kSalt + k));
          auto blocks = register_chain(rig->manager, rig->chains.back());
          drop_tail_first(blocks);
        }
        rig->batches.resize(kDropBatches);
        return rig;
      },
      [&](std::unique_ptr<CachedChainsRig>& rig) {
        for (std::size_t k = 0; k < kDropBatches; ++k) {
          rig->batches[k] = rig->manager.match_blocks(rig->chains[k]);
        }
        for (auto& batch : rig->batches) {
          if (how == Release::Batch) {
            rig->manager.release_blocks(std::move(batch));
          } else {
            batch.clear();
          }
        }
      });
}

void register_all() {
  using benchmark::RegisterBenchmark;
  // Google Benchmark appends each argument to the name ("floor/match" + Arg(8) is
  // "floor/match/8"); the labels set by the workloads name their floor the same way.
  const auto chains = [](benchmark::internal::Benchmark* b) { b->Arg(8)->Arg(32)->Arg(128); };
  const auto pools = [](benchmark::internal::Benchmark* b) {
    b->Arg(1 << 10)->Arg(1 << 16)->Arg(1 << 20);
  };

  // Floors first, so a table reads floor then workloads.
  RegisterBenchmark("floor/match", floor_match)->Apply(chains);
  RegisterBenchmark("floor/match_release", floor_match_release)->Apply(chains)->Arg(1);
  RegisterBenchmark("floor/release", floor_release)->Apply(chains);
  RegisterBenchmark("floor/lifecycle", floor_lifecycle)->Arg(1)->Arg(32);
  RegisterBenchmark("floor/evict", floor_evict)
      ->Args({kEvictionPool, 1})
      ->Args({kEvictionPool, 32})
      ->Args({1 << 10, 8})
      ->Args({1 << 16, 8})
      ->Args({1 << 20, 8});
  RegisterBenchmark("floor/refcount", floor_refcount);
  RegisterBenchmark("floor/scaling", floor_scaling)->Apply(pools);

  RegisterBenchmark("match_blocks_active_hit/lru", match_active, lru_backend())->Apply(chains);
  RegisterBenchmark("match_blocks_active_hit/lru+tinylfu", match_active, kLruTinyLfu)->Apply(chains);
  for (const Backend* backend : available_backends()) {
    const std::string b = backend->name;
    RegisterBenchmark(("match_blocks_inactive_hit/" + b).c_str(), match_inactive, *backend)
        ->Apply(chains);
    RegisterBenchmark(("bulk_drop/" + b).c_str(), bulk_drop, *backend)->Apply(chains);
    RegisterBenchmark(("bulk_release/" + b).c_str(), bulk_release, *backend)->Apply(chains);
    RegisterBenchmark(("lifecycle/" + b).c_str(), lifecycle, *backend)->Arg(1)->Arg(32);
    RegisterBenchmark(("eviction_heavy/" + b).c_str(), eviction_heavy, *backend)->Arg(1)->Arg(32);
  }
  RegisterBenchmark("scan_matches/lru", scan_matches)->Apply(chains);
  RegisterBenchmark("weak_upgrade/live", weak_upgrade_live);
  RegisterBenchmark("weak_upgrade/inactive", weak_upgrade_inactive);
  RegisterBenchmark("pin_clone", pin_clone);
  RegisterBenchmark("scaling/match_inactive", scaling_match_inactive)->Apply(pools);
  RegisterBenchmark("scaling/eviction_heavy", scaling_eviction)->Apply(pools);
  RegisterBenchmark("threads/match_blocks_active_hit/lru/32", threads_match_active, false)
      ->Threads(1)
      ->Threads(2)
      ->UseRealTime();
  RegisterBenchmark("threads/match_blocks_active_hit/lru/disjoint/32", threads_match_active, true)
      ->Threads(1)
      ->Threads(2)
      ->UseRealTime();
  for (const bool disjoint : {false, true}) {
    for (const bool gauge : {false, true}) {
      const std::string name = std::string("threads/floor/match_refcount") +
                               (disjoint ? "/disjoint" : "/same") + (gauge ? "+gauge" : "") + "/32";
      RegisterBenchmark(name.c_str(), floor_threads_match, disjoint, gauge)
          ->Threads(1)
          ->Threads(2)
          ->UseRealTime();
    }
  }
  RegisterBenchmark("threads/lifecycle/lru/32", threads_lifecycle)->Threads(2)->UseRealTime();

  for (const bool appending : {false, true}) {
    for (const Backend* backend : {&lru_backend(), &kLruTinyLfu}) {
      const std::string name = std::string("paired/match_active_vs_floor/") + backend->name +
                               (appending ? "/appending" : "");
      RegisterBenchmark(name.c_str(), paired_match_active, *backend, appending)
          ->Apply(chains)
          ->UseManualTime();
    }
  }
  for (const Backend* backend : available_backends()) {
    if (backend->kind == kvbm::EvictionBackend::Lru) continue;
    RegisterBenchmark(("paired/eviction_heavy_vs_lru/" + backend->name).c_str(),
                      paired_eviction_vs_lru, *backend)
        ->Arg(1)
        ->Arg(32)
        ->UseManualTime();
    RegisterBenchmark(("paired/revive_drop_vs_lru/" + backend->name).c_str(),
                      paired_revive_release_vs_lru, *backend, Release::OneByOne)
        ->Apply(chains)
        ->UseManualTime();
    RegisterBenchmark(("paired/revive_release_vs_lru/" + backend->name).c_str(),
                      paired_revive_release_vs_lru, *backend, Release::Batch)
        ->Apply(chains)
        ->UseManualTime();
  }
}

}  // namespace

void register_transfer_benchmarks();  // transfer_bench.cpp

int main(int argc, char** argv) {
  // KVBM_BENCH_IDLE_THREAD=1: one more thread, asleep for the whole run. glibc and libstdc++
  // take cheaper paths while a process has a single thread (shared_ptr counts without locked
  // instructions, and mutexes measured 25-35 % cheaper here); an engine never runs single-threaded,
  // so this shows what the same code costs there. The floors use atomics directly either way.
  std::optional<kvbm::bench::IdleThread> idle;
  if (const char* v = std::getenv("KVBM_BENCH_IDLE_THREAD"); v != nullptr && *v != '\0' && *v != '0') {
    idle.emplace();
  }
  register_all();
  register_transfer_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
