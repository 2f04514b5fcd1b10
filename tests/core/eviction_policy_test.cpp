// Unit tests of the FIFO, LRU and multi-LRU eviction policies, plus the backend-generic contract
// every policy (lineage included) must honour. Through-the-manager behaviour lives in
// eviction_manager_test.cpp; the lineage tree in eviction_lineage_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "eviction/fifo_policy.hpp"
#include "eviction/inactive_policy.hpp"
#include "eviction/lineage_policy.hpp"
#include "eviction/lru_policy.hpp"
#include "eviction/multi_lru_policy.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/tinylfu.hpp"

namespace kvbm::detail {
namespace {

SequenceHash root_hash(std::uint64_t current) { return SequenceHash::from_parts(current, std::nullopt, 0); }

/// A tracker whose counts the test sets directly.
class FixedTracker final : public FrequencyTracker {
 public:
  void touch(u128 key) override { ++counts_[key]; }
  [[nodiscard]] std::uint32_t count(u128 key) const override {
    auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
  }
  void set(const SequenceHash& h, std::uint32_t n) { counts_[h.as_u128()] = n; }

 private:
  std::map<u128, std::uint32_t> counts_;
};

std::vector<BlockId> evict_n(InactivePolicy& policy, std::size_t n) {
  std::vector<BlockId> out(n, kInvalidBlockId);
  out.resize(policy.evict(out));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Backend-generic contract, run over every policy.

struct PolicyCase {
  std::string name;
  EvictionConfig config;
};

std::vector<PolicyCase> all_policies() {
  std::vector<PolicyCase> cases;
  cases.push_back({"fifo", {EvictionBackend::Fifo, {}, LineageEviction::Tick}});
  cases.push_back({"lru", {EvictionBackend::Lru, {}, LineageEviction::Tick}});
  cases.push_back({"multi_lru", {EvictionBackend::MultiLru, {}, LineageEviction::Tick}});
  cases.push_back({"lineage_tick", {EvictionBackend::Lineage, {}, LineageEviction::Tick}});
  cases.push_back({"lineage_fifo", {EvictionBackend::Lineage, {}, LineageEviction::Fifo}});
  return cases;
}

class EvictionPolicyContract : public ::testing::TestWithParam<PolicyCase> {
 protected:
  std::unique_ptr<InactivePolicy> make(std::size_t capacity) {
    return make_inactive_policy(GetParam().config, capacity, std::make_shared<TinyLfuTracker>(
                                                                 FrequencyTrackingCapacity::Small));
  }
};

TEST_P(EvictionPolicyContract, InsertAndSizeAndContains) {
  auto policy = make(8);
  EXPECT_EQ(policy->size(), 0u);
  policy->insert(3, root_hash(30));
  policy->insert(5, root_hash(50));
  EXPECT_EQ(policy->size(), 2u);
  EXPECT_TRUE(policy->contains(3));
  EXPECT_TRUE(policy->contains(5));
  EXPECT_FALSE(policy->contains(4));
  EXPECT_NE(std::string(policy->name()), "");
}

TEST_P(EvictionPolicyContract, RemoveOnHitTakesOnlyThatBlock) {
  auto policy = make(8);
  policy->insert(1, root_hash(10));
  policy->insert(2, root_hash(20));
  policy->insert(3, root_hash(30));
  policy->remove(2, root_hash(20));
  EXPECT_EQ(policy->size(), 2u);
  EXPECT_FALSE(policy->contains(2));
  auto victims = evict_n(*policy, 5);
  std::sort(victims.begin(), victims.end());
  EXPECT_EQ(victims, (std::vector<BlockId>{1, 3}));
}

TEST_P(EvictionPolicyContract, EvictOneOfTwoLeavesOne) {
  auto policy = make(4);
  policy->insert(0, root_hash(1));
  policy->insert(1, root_hash(2));
  EXPECT_EQ(evict_n(*policy, 1).size(), 1u);
  EXPECT_EQ(policy->size(), 1u);
}

TEST_P(EvictionPolicyContract, EvictMoreThanAvailableReturnsWhatExists) {
  auto policy = make(4);
  policy->insert(0, root_hash(1));
  policy->insert(1, root_hash(2));
  EXPECT_EQ(evict_n(*policy, 5).size(), 2u);
  EXPECT_EQ(policy->size(), 0u);
  EXPECT_TRUE(evict_n(*policy, 3).empty());
}

TEST_P(EvictionPolicyContract, EvictAllDrainsAndRefillWorks) {
  auto policy = make(16);
  for (BlockId id = 0; id < 16; ++id) policy->insert(id, root_hash(100 + id));
  auto victims = evict_n(*policy, 16);
  std::sort(victims.begin(), victims.end());
  for (BlockId id = 0; id < 16; ++id) EXPECT_EQ(victims[id], id);
  for (BlockId id = 0; id < 16; ++id) EXPECT_FALSE(policy->contains(id));
  for (BlockId id = 0; id < 16; ++id) policy->insert(id, root_hash(200 + id));
  EXPECT_EQ(policy->size(), 16u);
}

TEST_P(EvictionPolicyContract, DoubleInsertOrRemoveOfAbsentIsALogicError) {
  auto policy = make(4);
  policy->insert(1, root_hash(1));
  EXPECT_THROW(policy->insert(1, root_hash(1)), std::logic_error);
  EXPECT_THROW(policy->remove(2, root_hash(2)), std::logic_error);
  EXPECT_EQ(policy->size(), 1u);
  EXPECT_TRUE(policy->contains(1));
}

// Random operations against a set model: evict() fills `out` whenever size() >= out.size(),
// never returns an absent or repeated id, and size()/contains() track the model exactly.
TEST_P(EvictionPolicyContract, RandomOperationsMatchSetModel) {
  constexpr std::size_t kCapacity = 64;
  auto policy = make(kCapacity);
  std::set<BlockId> cached;
  std::map<BlockId, SequenceHash> hash_of;
  std::mt19937_64 rng{12345};
  std::uint64_t next = 1;
  for (int step = 0; step < 20000; ++step) {
    const auto op = rng() % 10;
    if (op < 5) {
      const BlockId id = static_cast<BlockId>(rng() % kCapacity);
      if (cached.count(id) != 0) continue;
      // A mix of roots and short chains so the lineage policy sees parents and ghosts.
      const std::uint32_t pos = static_cast<std::uint32_t>(rng() % 4);
      const std::uint64_t current = (rng() % 16) * 1000 + pos;
      const auto h = pos == 0 ? root_hash(current)
                              : SequenceHash::from_parts(current, (rng() % 16) * 1000 + pos - 1, pos);
      bool clash = false;
      for (const auto& [other, oh] : hash_of) clash = clash || oh == h;
      if (clash) continue;  // the store never caches one hash twice
      policy->insert(id, h);
      cached.insert(id);
      hash_of[id] = h;
    } else if (op < 7) {
      if (cached.empty()) continue;
      auto it = cached.begin();
      std::advance(it, static_cast<long>(rng() % cached.size()));
      policy->remove(*it, hash_of[*it]);
      hash_of.erase(*it);
      cached.erase(it);
    } else {
      const std::size_t want = rng() % 6;
      auto victims = evict_n(*policy, want);
      ASSERT_EQ(victims.size(), std::min(want, cached.size()));
      for (BlockId v : victims) {
        ASSERT_EQ(cached.erase(v), 1u) << "evicted an id that was not cached: " << v;
        hash_of.erase(v);
        ASSERT_FALSE(policy->contains(v));
      }
    }
    ASSERT_EQ(policy->size(), cached.size());
    if (step % 97 == 0) {
      for (BlockId id = 0; id < kCapacity; ++id) ASSERT_EQ(policy->contains(id), cached.count(id) == 1);
      if (auto* lineage = dynamic_cast<LineagePolicy*>(policy.get())) lineage->check_invariants();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, EvictionPolicyContract, ::testing::ValuesIn(all_policies()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Factory validation.

TEST(EvictionFactory, BuildsEveryBackend) {
  auto tracker = std::make_shared<FixedTracker>();
  EXPECT_STREQ(make_inactive_policy({EvictionBackend::Fifo, {}, {}}, 4, nullptr)->name(), "fifo");
  EXPECT_STREQ(make_inactive_policy({EvictionBackend::Lru, {}, {}}, 4, nullptr)->name(), "lru");
  EXPECT_STREQ(make_inactive_policy({EvictionBackend::MultiLru, {}, {}}, 4, tracker)->name(),
               "multi-lru");
  EXPECT_STREQ(
      make_inactive_policy({EvictionBackend::Lineage, {}, LineageEviction::Tick}, 4, nullptr)->name(),
      "lineage-tick");
  EXPECT_STREQ(
      make_inactive_policy({EvictionBackend::Lineage, {}, LineageEviction::Fifo}, 4, nullptr)->name(),
      "lineage-fifo");
}

std::string config_error_of(MultiLruThresholds t, std::shared_ptr<FrequencyTracker> tracker) {
  try {
    (void)make_inactive_policy({EvictionBackend::MultiLru, t, {}}, 4, std::move(tracker));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(EvictionFactory, MultiLruThresholdValidation) {
  auto tracker = std::make_shared<FixedTracker>();
  EXPECT_EQ(config_error_of({2, 6, 12}, tracker), "");
  EXPECT_EQ(config_error_of({1, 2, 15}, tracker), "");
  EXPECT_NE(config_error_of({2, 6, 20}, tracker).find("must be <= 15"), std::string::npos);
  EXPECT_NE(config_error_of({6, 2, 10}, tracker).find("must be in ascending order"),
            std::string::npos);
  EXPECT_NE(config_error_of({3, 3, 10}, tracker).find("must be in ascending order"),
            std::string::npos);
  EXPECT_NE(config_error_of({0, 2, 10}, tracker).find("must be >= 1"), std::string::npos);
  EXPECT_NE(config_error_of({3, 8, 15}, nullptr).find("frequency tracking"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// FIFO

TEST(EvictionFifo, PopOrderIsInsertOrder) {
  FifoPolicy fifo{16};
  const std::vector<BlockId> order{7, 2, 9, 0, 15, 4};
  for (BlockId id : order) fifo.insert(id, root_hash(id + 1));
  EXPECT_EQ(evict_n(fifo, order.size()), order);
  EXPECT_EQ(fifo.peek(), kInvalidBlockId);
}

TEST(EvictionFifo, KeysStrictlyIncreaseEvenWithinOneClockTick) {
  FifoPolicy fifo{8};
  std::uint64_t last = 0;
  for (BlockId id = 0; id < 8; ++id) {
    fifo.insert(id, root_hash(id + 1));  // no sleeping: a counter, not a timestamp
    EXPECT_GT(fifo.key_of(id), last);
    last = fifo.key_of(id);
  }
}

TEST(EvictionFifo, RemovalKeepsTheRestInOrder) {
  FifoPolicy fifo{8};
  for (BlockId id = 0; id < 6; ++id) fifo.insert(id, root_hash(id + 1));
  fifo.remove(0, root_hash(1));
  fifo.remove(3, root_hash(4));
  EXPECT_EQ(evict_n(fifo, 2), (std::vector<BlockId>{1, 2}));
  fifo.insert(0, root_hash(1));  // re-released: goes to the back
  EXPECT_EQ(evict_n(fifo, 8), (std::vector<BlockId>{4, 5, 0}));
}

TEST(EvictionFifo, InterleavedOperations) {
  FifoPolicy fifo{8};
  fifo.insert(1, root_hash(1));
  fifo.insert(2, root_hash(2));
  EXPECT_EQ(evict_n(fifo, 1), (std::vector<BlockId>{1}));
  fifo.insert(3, root_hash(3));
  fifo.insert(1, root_hash(1));
  fifo.remove(3, root_hash(3));
  fifo.insert(4, root_hash(4));
  EXPECT_EQ(evict_n(fifo, 8), (std::vector<BlockId>{2, 1, 4}));
}

TEST(EvictionFifo, EmptyAndErrorsLeaveStateUntouched) {
  FifoPolicy fifo{4};
  EXPECT_TRUE(evict_n(fifo, 1).empty());
  fifo.insert(1, root_hash(1));
  EXPECT_THROW(fifo.insert(1, root_hash(1)), std::logic_error);
  EXPECT_THROW(fifo.remove(2, root_hash(2)), std::logic_error);
  EXPECT_EQ(fifo.size(), 1u);
  EXPECT_EQ(evict_n(fifo, 4), (std::vector<BlockId>{1}));
}

// ---------------------------------------------------------------------------------------------
// LRU (the reference policy; "recency" = time of the last release)

TEST(EvictionLru, FirstReleasedEvictedFirstAndContainsDoesNotReorder) {
  LruPolicy lru{8};
  for (BlockId id = 0; id < 4; ++id) lru.insert(id, root_hash(id + 1));
  EXPECT_TRUE(lru.contains(0));  // a peek
  lru.remove(1, root_hash(2));   // a hit ...
  lru.insert(1, root_hash(2));   // ... and a later release makes it the most recent
  EXPECT_EQ(evict_n(lru, 4), (std::vector<BlockId>{0, 2, 3, 1}));
}

// ---------------------------------------------------------------------------------------------
// Multi-LRU

TEST(EvictionMultiLru, LevelForThresholds) {
  const MultiLruThresholds def{};
  EXPECT_EQ(MultiLruPolicy::level_for(0, def), 0u);
  EXPECT_EQ(MultiLruPolicy::level_for(2, def), 0u);
  EXPECT_EQ(MultiLruPolicy::level_for(3, def), 1u);
  EXPECT_EQ(MultiLruPolicy::level_for(7, def), 1u);
  EXPECT_EQ(MultiLruPolicy::level_for(8, def), 2u);
  EXPECT_EQ(MultiLruPolicy::level_for(14, def), 2u);
  EXPECT_EQ(MultiLruPolicy::level_for(15, def), 3u);
}

TEST(EvictionMultiLru, PriorityLevelsFromRealTinyLfuTouches) {
  auto tracker = std::make_shared<TinyLfuTracker>(FrequencyTrackingCapacity::Small);
  MultiLruPolicy policy{8, {2, 6, 15}, tracker};
  const std::vector<int> touches{0, 2, 6, 16};
  for (BlockId id = 0; id < 4; ++id) {
    const auto h = root_hash(1000 + id);
    for (int i = 0; i < touches[id]; ++i) tracker->touch(h.as_u128());
    policy.insert(id, h);
    EXPECT_EQ(policy.level_of(id), static_cast<int>(id)) << "touches " << touches[id];
  }
  for (std::size_t level = 0; level < 4; ++level) EXPECT_EQ(policy.level_size(level), 1u);
  // capacity distribution: one per level, evict(4) drains all, coldest first.
  EXPECT_EQ(evict_n(policy, 4), (std::vector<BlockId>{0, 1, 2, 3}));
}

TEST(EvictionMultiLru, ColdBlocksEvictedBeforeHotOnes) {
  auto tracker = std::make_shared<FixedTracker>();
  MultiLruPolicy policy{16, {}, tracker};
  // Hot first, then warm, then cold: release order alone would evict the hot block first.
  tracker->set(root_hash(1), 15);
  policy.insert(0, root_hash(1));
  tracker->set(root_hash(2), 9);
  policy.insert(1, root_hash(2));
  tracker->set(root_hash(3), 4);
  policy.insert(2, root_hash(3));
  policy.insert(3, root_hash(4));  // never touched: cold
  policy.insert(4, root_hash(5));  // cold, released later
  tracker->set(root_hash(6), 4);
  policy.insert(5, root_hash(6));
  EXPECT_EQ(evict_n(policy, 6), (std::vector<BlockId>{3, 4, 2, 5, 1, 0}));
}

TEST(EvictionMultiLru, LevelFixedAtInsertAndRetieredOnNextRelease) {
  auto tracker = std::make_shared<FixedTracker>();
  MultiLruPolicy policy{4, {}, tracker};
  policy.insert(0, root_hash(1));
  EXPECT_EQ(policy.level_of(0), 0);
  tracker->set(root_hash(1), 15);
  EXPECT_EQ(policy.level_of(0), 0);  // no re-tiering while resident
  policy.remove(0, root_hash(1));    // cache hit
  EXPECT_EQ(policy.level_of(0), -1);
  policy.insert(0, root_hash(1));    // next release sees the new count
  EXPECT_EQ(policy.level_of(0), 3);
}

TEST(EvictionMultiLru, AllColdBlocksFitAtCapacity) {
  auto tracker = std::make_shared<FixedTracker>();
  MultiLruPolicy policy{64, {}, tracker};
  for (BlockId id = 0; id < 64; ++id) policy.insert(id, root_hash(id + 1));
  EXPECT_EQ(policy.level_size(0), 64u);
  EXPECT_EQ(policy.size(), 64u);
  EXPECT_EQ(evict_n(policy, 64).size(), 64u);
}

TEST(EvictionMultiLru, HitsAcrossLevelsAreRemoved) {
  auto tracker = std::make_shared<FixedTracker>();
  MultiLruPolicy policy{8, {}, tracker};
  const std::vector<std::uint32_t> counts{0, 5, 10, 15};
  for (BlockId id = 0; id < 4; ++id) {
    tracker->set(root_hash(id + 1), counts[id]);
    policy.insert(id, root_hash(id + 1));
  }
  policy.remove(1, root_hash(2));
  policy.remove(3, root_hash(4));
  EXPECT_EQ(policy.size(), 2u);
  EXPECT_EQ(evict_n(policy, 4), (std::vector<BlockId>{0, 2}));
}

}  // namespace
}  // namespace kvbm::detail
