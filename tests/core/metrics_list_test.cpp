// KVBM_METRICS is the one list of metrics: MetricsSnapshot and the store's live atomics are both
// generated from it, and snapshot() copies every field.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <type_traits>

#include "kvbm/detail/block_store.hpp"
#include "kvbm/metrics.hpp"

namespace kvbm {
namespace {

#define KVBM_TEST_COUNT(name, meaning) +1
constexpr std::size_t kListed = 0 KVBM_METRICS(KVBM_TEST_COUNT, KVBM_TEST_COUNT);
#undef KVBM_TEST_COUNT

TEST(MetricsList, SnapshotHasExactlyTheListedFields) {
  // Every field is 8 bytes: a field declared outside the list would change the size.
  EXPECT_EQ(sizeof(MetricsSnapshot), kListed * 8);
  // The live side: one 8-byte atomic per entry, except the gauges striped per thread.
  std::size_t striped = 0;
#define KVBM_TEST_COUNT_STRIPED(name, meaning) striped += detail::striped_gauge(#name) ? 1 : 0;
  KVBM_METRICS(KVBM_TEST_COUNT_STRIPED, KVBM_TEST_COUNT_STRIPED)
#undef KVBM_TEST_COUNT_STRIPED
  EXPECT_EQ(striped, 1u);  // inflight_immutable
  EXPECT_TRUE(
      (std::is_same_v<decltype(detail::StoreMetrics::inflight_immutable), detail::StripedGauge>));
  EXPECT_TRUE(
      (std::is_same_v<decltype(detail::StoreMetrics::inflight_mutable), std::atomic<std::int64_t>>));
  EXPECT_EQ(kListed, 21u);  // update with the list; catches an entry lost in an edit
}

TEST(MetricsList, NamesAreUniqueAndEveryEntryHasAMeaning) {
  std::set<std::string> names;
#define KVBM_TEST_NAME(name, meaning)               \
  EXPECT_TRUE(names.insert(#name).second) << #name; \
  EXPECT_GT(std::string(meaning).size(), 3u) << #name;
  KVBM_METRICS(KVBM_TEST_NAME, KVBM_TEST_NAME)
#undef KVBM_TEST_NAME
  EXPECT_EQ(names.size(), kListed);
}

TEST(MetricsList, SnapshotCopiesEveryCounterAndGauge) {
  detail::StoreMetrics live;
  std::int64_t next = 1;
  // Distinct values (gauges negative), so a field copied from the wrong atomic shows. Added to
  // the fresh zeros: a striped metric has no store().
#define KVBM_TEST_SET_COUNTER(name, meaning) live.name.fetch_add(static_cast<std::uint64_t>(next++));
#define KVBM_TEST_SET_GAUGE(name, meaning) live.name.fetch_add(-(next++));
  KVBM_METRICS(KVBM_TEST_SET_COUNTER, KVBM_TEST_SET_GAUGE)
#undef KVBM_TEST_SET_COUNTER
#undef KVBM_TEST_SET_GAUGE
  const MetricsSnapshot snap = live.snapshot();
  std::int64_t expected = 1;
#define KVBM_TEST_CHECK_COUNTER(name, meaning) \
  EXPECT_EQ(snap.name, static_cast<std::uint64_t>(expected++)) << #name;
#define KVBM_TEST_CHECK_GAUGE(name, meaning) EXPECT_EQ(snap.name, -(expected++)) << #name;
  KVBM_METRICS(KVBM_TEST_CHECK_COUNTER, KVBM_TEST_CHECK_GAUGE)
#undef KVBM_TEST_CHECK_COUNTER
#undef KVBM_TEST_CHECK_GAUGE
  // Spot-check by name, independent of the macro: the first counter and the last gauge.
  EXPECT_EQ(snap.allocations, 1u);
  EXPECT_EQ(snap.fenced_slots, -21);
}

}  // namespace
}  // namespace kvbm
