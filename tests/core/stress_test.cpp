// Multi-threaded stress: four threads run mixed operations on one manager over a shared, small
// set of hashes, passing blocks between threads so that they are dropped on threads other than
// the one that obtained them. Bounded iterations (fast in Debug, fine under ThreadSanitizer);
// no timing assertions. Per-call results are checked as they come back; the pool's invariant,
// gauges, presence and race counters are checked once everything is returned.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <latch>
#include <mutex>
#include <random>
#include <thread>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

constexpr std::size_t kBlocks = 16;
constexpr std::size_t kChains = 4;  // 24 hashes for 16 slots: eviction pressure
constexpr int kThreads = 4;

int iterations() {
  if (const char* env = std::getenv("KVBM_STRESS_ITERS")) return std::atoi(env);
  return 20000;
}

struct Shared {
  BlockManager<G1> manager;
  std::vector<SequenceHash> hashes;  // kChains chains of 6 positions
  std::mutex exchange_mu;
  std::vector<ImmutableBlock<G1>> exchange;  // blocks handed between threads
  std::vector<WeakBlock<G1>> weak_exchange;
  std::atomic<int> failures{0};
};

void worker(Shared& sh, std::uint32_t seed, int iters) {
  std::mt19937 rng(seed);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  auto& m = sh.manager;
  std::vector<MutableBlock<G1>> muts;
  std::vector<CompleteBlock<G1>> comps;
  std::vector<ImmutableBlock<G1>> imms;
  std::vector<LifecyclePinRef> pins;
  std::vector<WeakBlock<G1>> weaks;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      ++sh.failures;
      ADD_FAILURE() << "thread seed " << seed << ": " << what;
    }
  };
  auto erase_at = [](auto& v, std::size_t i) {
    auto x = std::move(v[i]);
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
    return x;
  };
  for (int it = 0; it < iters && sh.failures.load(std::memory_order_relaxed) == 0; ++it) {
    // Keep each thread's holdings bounded so that the pool keeps cycling.
    while (imms.size() > 6) erase_at(imms, pick(imms.size()));
    while (pins.size() > 2) erase_at(pins, 0);
    switch (pick(15)) {
      case 0:
      case 14: {  // allocate
        if (muts.size() + comps.size() > 3) break;
        const std::size_t n = 1 + pick(3);
        if (auto r = m.allocate_blocks(n)) {
          check(r->size() == n, "partial allocation");
          for (auto& b : *r) muts.push_back(std::move(b));
        }
        break;
      }
      case 1:
      case 2: {  // stage / complete
        if (muts.empty()) break;
        auto mb = erase_at(muts, pick(muts.size()));
        const auto& h = sh.hashes[pick(sh.hashes.size())];
        const BlockId id = mb.block_id();
        auto cb = std::move(mb).stage(h, test::kTestBlockSize);
        check(cb.block_id() == id && cb.sequence_hash() == h, "stage changed id or hash");
        comps.push_back(std::move(cb));
        break;
      }
      case 3: {  // register a batch
        if (comps.empty()) break;
        const std::size_t k = 1 + pick(comps.size());
        std::vector<CompleteBlock<G1>> batch;
        std::vector<SequenceHash> in;
        for (std::size_t j = 0; j < k; ++j) {
          batch.push_back(erase_at(comps, pick(comps.size())));
          in.push_back(batch.back().sequence_hash());
        }
        auto out = m.register_blocks(std::move(batch));
        check(out.size() == in.size(), "register_blocks size");
        for (std::size_t j = 0; j < out.size(); ++j) {
          check(out[j].sequence_hash() == in[j], "register_blocks order/hash");
          imms.push_back(std::move(out[j]));
        }
        break;
      }
      case 4: {  // prefix match along one chain
        const std::size_t chain = pick(kChains);
        const std::size_t len = pick(7);
        std::vector<SequenceHash> q(sh.hashes.begin() + static_cast<std::ptrdiff_t>(chain * 6),
                                    sh.hashes.begin() + static_cast<std::ptrdiff_t>(chain * 6 + len));
        auto out = m.match_blocks(q);
        check(out.size() <= q.size(), "match longer than query");
        for (std::size_t j = 0; j < out.size(); ++j) {
          check(out[j].sequence_hash() == q[j], "match returned a wrong hash");
        }
        if (!out.empty() && imms.size() < 6) imms.push_back(std::move(out.back()));
        break;
      }
      case 5: {  // scan
        std::vector<SequenceHash> q;
        for (std::size_t j = 0, n = pick(5); j < n; ++j) q.push_back(sh.hashes[pick(sh.hashes.size())]);
        auto out = m.scan_matches(q, pick(2) == 0);
        check(out.size() <= q.size(), "scan larger than query");
        for (auto& [h, b] : out) {
          check(b.sequence_hash() == h, "scan key/hash mismatch");
          check(std::find(q.begin(), q.end(), h) != q.end(), "scan returned an unrequested hash");
        }
        break;
      }
      case 6: {  // clone and pin
        if (imms.empty()) break;
        const auto& b = imms[pick(imms.size())];
        if (pick(2) == 0) {
          imms.push_back(b);
        } else {
          pins.push_back(b.pin());
          check(pins.back().block_id() == b.block_id(), "pin id");
        }
        break;
      }
      case 7:
      case 8: {  // drop something
        const std::size_t which = pick(4);
        if (which == 0 && !imms.empty()) {
          erase_at(imms, pick(imms.size()));
        } else if (which == 1 && !pins.empty()) {
          erase_at(pins, pick(pins.size()));
        } else if (which == 2 && !muts.empty()) {
          erase_at(muts, pick(muts.size()));
        } else if (which == 3 && !comps.empty()) {
          erase_at(comps, pick(comps.size()));
        }
        break;
      }
      case 9: {  // weak references
        if (!imms.empty() && pick(2) == 0) {
          weaks.push_back(imms[pick(imms.size())].downgrade());
        } else if (!weaks.empty()) {
          const auto& w = weaks[pick(weaks.size())];
          if (auto up = w.upgrade()) {
            check(up->sequence_hash() == w.sequence_hash(), "upgrade changed hash");
            if (imms.size() < 6) imms.push_back(std::move(*up));
          }
          if (weaks.size() > 4) erase_at(weaks, 0);
        }
        break;
      }
      case 10: {  // hand a block (or weak) to another thread
        std::lock_guard lock(sh.exchange_mu);
        if (!imms.empty() && pick(2) == 0) {
          sh.exchange.push_back(erase_at(imms, pick(imms.size())));
        } else if (!sh.exchange.empty()) {
          auto b = erase_at(sh.exchange, pick(sh.exchange.size()));
          imms.push_back(std::move(b));
        }
        if (!weaks.empty() && pick(3) == 0) sh.weak_exchange.push_back(erase_at(weaks, 0));
        if (!sh.weak_exchange.empty() && pick(3) == 0) weaks.push_back(erase_at(sh.weak_exchange, 0));
        break;
      }
      case 11: {  // evict-on-reset flags
        if (imms.empty()) break;
        imms[pick(imms.size())].set_evict_on_reset(pick(4) == 0);
        break;
      }
      case 12: {  // unstage
        if (comps.empty()) break;
        auto cb = erase_at(comps, pick(comps.size()));
        muts.push_back(std::move(cb).reset());
        break;
      }
      case 13: {  // rare pool-wide calls
        if (pick(40) == 0) {
          check(m.reset_inactive_pool() <= kBlocks, "reset_inactive_pool drained too many");
        } else {
          check(m.available_blocks() <= kBlocks, "available > total");
        }
        break;
      }
    }
  }
}

struct StressConfig {
  DuplicationPolicy policy;
  bool default_reset;
};

class Stress : public ::testing::TestWithParam<StressConfig> {};

TEST_P(Stress, MixedOperationsFromFourThreads) {
  const auto cfg = GetParam();
  auto tracker = std::make_shared<test::CountingTracker>();
  auto registry = BlockRegistry::builder().frequency_tracker(tracker).build();
  test::ManagerOptions o;
  o.block_count = kBlocks;
  o.policy = cfg.policy;
  o.default_reset_on_release = cfg.default_reset;
  Shared sh{test::make_manager(o, registry), {}, {}, {}, {}, {}};
  for (std::uint32_t chain = 0; chain < kChains; ++chain) {
    const auto seq = test::iota_sequence(chain * 100000, 6);
    for (const auto& h : seq.sequence_hashes()) sh.hashes.push_back(h);
  }
  const int iters = iterations();
  {
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&sh, &start, t, iters] {
        start.arrive_and_wait();
        worker(sh, 1000u + static_cast<std::uint32_t>(t), iters);
      });
    }
    for (auto& th : threads) th.join();
  }
  ASSERT_EQ(sh.failures.load(), 0);
  sh.exchange.clear();
  sh.weak_exchange.clear();

  auto& m = sh.manager;
  m.check_invariants();
  EXPECT_EQ(m.available_blocks(), kBlocks);
  const auto s = m.metrics();
  EXPECT_EQ(s.inflight_mutable, 0);
  EXPECT_EQ(s.inflight_immutable, 0);
  EXPECT_EQ(static_cast<std::size_t>(s.reset_pool_size + s.inactive_pool_size), kBlocks);
  EXPECT_EQ(s.allocations_from_reset + s.evictions, s.allocations);
  EXPECT_GE(s.registrations, s.duplicate_blocks + s.registration_dedup);
  if (cfg.policy == DuplicationPolicy::Allow) {
    EXPECT_EQ(s.registration_dedup, 0u);
  } else {
    EXPECT_EQ(s.duplicate_blocks, 0u);
  }
  // Each eager transition is paired with exactly one late release that found the slot moved on.
  EXPECT_EQ(s.eager_primary_to_inactive, s.release_primary_noop);
  EXPECT_GT(s.registrations, 0u);
  EXPECT_GT(s.match_blocks_returned, 0u);

  // Presence is exact at quiescence: present <=> cached in this pool (nothing is held any more).
  const auto presence = registry.check_presence<G1>(sh.hashes);
  std::size_t present = 0;
  for (std::size_t i = 0; i < sh.hashes.size(); ++i) {
    const bool cached = !m.scan_matches(std::vector<SequenceHash>{sh.hashes[i]}, false).empty();
    EXPECT_EQ(presence[i], cached) << "hash " << i;
    EXPECT_EQ(registry.is_registered(sh.hashes[i]), cached) << "hash " << i;
    present += cached ? 1 : 0;
  }
  EXPECT_EQ(static_cast<std::size_t>(m.metrics().inactive_pool_size), present);
  EXPECT_EQ(registry.registered_count(), present);
  EXPECT_EQ(m.reset_inactive_pool(), present);
  EXPECT_EQ(registry.registered_count(), 0u);
  EXPECT_EQ(m.metrics().reset_pool_size, static_cast<std::int64_t>(kBlocks));
  m.check_invariants();
}

INSTANTIATE_TEST_SUITE_P(Policies, Stress,
                         ::testing::Values(StressConfig{DuplicationPolicy::Allow, false},
                                           StressConfig{DuplicationPolicy::Reject, false},
                                           StressConfig{DuplicationPolicy::Allow, true}),
                         [](const auto& info) {
                           return std::string(info.param.policy == DuplicationPolicy::Allow ? "Allow" : "Reject") +
                                  (info.param.default_reset ? "ResetOnRelease" : "Cache");
                         });

}  // namespace
}  // namespace kvbm
