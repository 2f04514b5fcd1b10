// TinyLFU count-min sketch: counting, saturation at 15, halving (manual and automatic), the
// sample-size bookkeeping of spec pools §4, and the never-below-the-true-count guarantee.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <span>
#include <random>
#include <thread>
#include <vector>

#include "kvbm/errors.hpp"
#include "kvbm/tinylfu.hpp"

namespace kvbm {
namespace {

constexpr std::uint64_t kNeverDecay = 0;

TEST(TinyLfu, IncrementAndEstimate) {
  TinyLfu sketch{1024};
  const u128 a = 1;
  const u128 b = 2;
  sketch.increment(a);
  for (int i = 0; i < 3; ++i) sketch.increment(b);
  EXPECT_EQ(sketch.estimate(a), 1u);
  EXPECT_EQ(sketch.estimate(b), 3u);
  EXPECT_EQ(sketch.estimate(u128{12345}), 0u);
}

TEST(TinyLfu, U128KeysUseAllSixteenBytes) {
  TinyLfu sketch{1u << 16, kNeverDecay};
  const u128 low = 7;
  const u128 high = (u128{7} << 64);
  for (int i = 0; i < 5; ++i) sketch.increment(high);
  EXPECT_EQ(sketch.estimate(high), 5u);
  EXPECT_EQ(sketch.estimate(low), 0u);
}

TEST(TinyLfu, CountersSaturateAtFifteen) {
  TinyLfu sketch{1024, kNeverDecay};
  for (int i = 0; i < 100; ++i) sketch.increment(u128{42});
  EXPECT_EQ(sketch.estimate(u128{42}), TinyLfu::kMaxCount);
  EXPECT_EQ(sketch.estimate(u128{42}), 15u);
  // Only increments that changed a counter count towards the sample size.
  EXPECT_EQ(sketch.sample_size(), 15u);
}

TEST(TinyLfu, WidthIsCapacityOverFourWordsAndDefaultAgingIsTenTimesCapacity) {
  EXPECT_EQ(TinyLfu{1}.width_words(), 1u);
  EXPECT_EQ(TinyLfu{3}.width_words(), 1u);
  EXPECT_EQ(TinyLfu{1024}.width_words(), 256u);
  EXPECT_EQ(TinyLfu{1024}.decay_after(), 10240u);
  EXPECT_EQ(TinyLfu(10).decay_after(), 100u);
  EXPECT_THROW(TinyLfu{0}, ConfigError);
  EXPECT_EQ(static_cast<std::uint32_t>(FrequencyTrackingCapacity::Small), 1u << 18);
  EXPECT_EQ(static_cast<std::uint32_t>(FrequencyTrackingCapacity::Medium), 1u << 21);
  EXPECT_EQ(static_cast<std::uint32_t>(FrequencyTrackingCapacity::Large), 1u << 24);
  EXPECT_EQ(TinyLfu{static_cast<std::uint64_t>(FrequencyTrackingCapacity::Small)}.width_words(),
            1u << 16);
}

TEST(TinyLfu, ManualHalvingHalvesCountsAndAdjustsTheSampleSize) {
  TinyLfu sketch{1u << 18, kNeverDecay};
  const u128 even = 100;
  const u128 odd = 200;
  for (int i = 0; i < 8; ++i) sketch.increment(even);
  for (int i = 0; i < 5; ++i) sketch.increment(odd);
  EXPECT_EQ(sketch.sample_size(), 13u);
  sketch.halve();
  EXPECT_EQ(sketch.estimate(even), 4u);
  EXPECT_EQ(sketch.estimate(odd), 2u);
  // size/2 - (odd counters)/4: 13/2 - 4/4 (the odd key's four counters held 5).
  EXPECT_EQ(sketch.sample_size(), 5u);
}

TEST(TinyLfu, ManualDecayFourBecomesTwo) {
  TinyLfu sketch{1u << 16, kNeverDecay};
  for (int i = 0; i < 4; ++i) sketch.increment(u128{9});
  sketch.halve();
  EXPECT_EQ(sketch.estimate(u128{9}), 2u);
}

TEST(TinyLfu, AgesAutomaticallyAfterDecayAfterCountedIncrements) {
  TinyLfu sketch{1u << 16, 10};
  for (int i = 0; i < 9; ++i) sketch.increment(u128{5});
  EXPECT_EQ(sketch.estimate(u128{5}), 9u);
  EXPECT_EQ(sketch.sample_size(), 9u);
  sketch.increment(u128{5});  // the 10th counted increment: all counters halve
  EXPECT_EQ(sketch.estimate(u128{5}), 5u);
  EXPECT_EQ(sketch.sample_size(), 5u);  // 10/2 - 0 odd counters
}

TEST(TinyLfu, SaturatedIncrementsDoNotAdvanceAging) {
  TinyLfu sketch{1u << 16, 20};
  for (int i = 0; i < 100; ++i) sketch.increment(u128{77});  // only 15 are counted
  EXPECT_EQ(sketch.estimate(u128{77}), 15u);
  EXPECT_EQ(sketch.sample_size(), 15u);
}

TEST(TinyLfu, EstimateNeverBelowTheTrueCountBeforeAHalving) {
  // A crowded sketch (many keys per counter) overestimates but never underestimates.
  TinyLfu sketch{256};
  std::mt19937_64 rng{99};
  std::map<u128, std::uint32_t> truth;
  std::uint64_t increments = 0;
  while (increments < 2000) {
    const u128 key = (u128{rng() % 300} << 64) | (rng() % 300);
    sketch.increment(key);
    ++truth[key];
    ++increments;
  }
  ASSERT_LT(sketch.sample_size(), sketch.decay_after()) << "the test must stay before aging";
  for (const auto& [key, count] : truth) {
    EXPECT_GE(sketch.estimate(key), std::min<std::uint32_t>(count, 15));
  }
}

TEST(TinyLfu, SparseSketchIsExact) {
  TinyLfu sketch{1u << 18, kNeverDecay};
  std::map<u128, std::uint32_t> truth;
  for (std::uint32_t k = 0; k < 200; ++k) {
    const u128 key = (u128{k} << 64) ^ (k * 0x9E3779B97F4A7C15ull);
    for (std::uint32_t i = 0; i < k % 16; ++i) sketch.increment(key);
    truth[key] = k % 16;
  }
  for (const auto& [key, count] : truth) EXPECT_EQ(sketch.estimate(key), count);
}

TEST(TinyLfu, IncrementManyIsIncrementOfEachKeyInOrderAgingIncluded) {
  // Small width and aging period: the batch crosses several halvings and saturates counters.
  TinyLfu one_by_one{64, 50};
  TinyLfu batched{64, 50};
  std::mt19937_64 rng{7};
  std::vector<SequenceHash> keys;
  for (int i = 0; i < 500; ++i) {
    keys.push_back(SequenceHash::from_parts(rng() % 40, std::nullopt, 0));
  }
  for (const SequenceHash& key : keys) one_by_one.increment(key.as_u128());
  batched.increment_many(std::span<const SequenceHash>(keys).first(3));  // shorter than the ring
  batched.increment_many(std::span<const SequenceHash>(keys).subspan(3));
  EXPECT_EQ(batched.sample_size(), one_by_one.sample_size());
  for (const SequenceHash& key : keys) {
    EXPECT_EQ(batched.estimate(key.as_u128()), one_by_one.estimate(key.as_u128()));
  }
}

TEST(TinyLfu, TrackerIsAThreadSafeFrequencyTracker) {
  auto tracker = std::make_shared<TinyLfuTracker>(FrequencyTrackingCapacity::Small);
  FrequencyTracker& base = *tracker;
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&base, t] {
      for (int round = 0; round < 10; ++round) {
        for (std::uint32_t k = 0; k < 100; ++k) base.touch(u128{t * 1000 + k});
        (void)base.count(u128{t});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (std::uint32_t t = 0; t < 4; ++t) {
    for (std::uint32_t k = 0; k < 100; ++k) EXPECT_GE(base.count(u128{t * 1000 + k}), 10u);
  }
  EXPECT_EQ(base.count(u128{999'999}), 0u);
}

}  // namespace
}  // namespace kvbm
