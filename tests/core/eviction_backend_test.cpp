// EvictionBackend names (to_string / parse_eviction_backend) and
// Builder::backend(EvictionBackend).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using Manager = BlockManager<G1>;
using Builder = Manager::Builder;

TEST(EvictionBackendNames, EveryBackendRoundTripsThroughItsName) {
  std::set<EvictionBackend> seen;
  std::set<std::string> names;
  for (const EvictionBackend backend : all_eviction_backends()) {
    EXPECT_EQ(parse_eviction_backend(to_string(backend)), backend) << to_string(backend);
    seen.insert(backend);
    names.emplace(to_string(backend));
  }
  // Every enumerator is listed once, each under its own name.
  EXPECT_EQ(seen, (std::set<EvictionBackend>{EvictionBackend::Fifo, EvictionBackend::Lru,
                                             EvictionBackend::MultiLru, EvictionBackend::Lineage}));
  EXPECT_EQ(names, (std::set<std::string>{"fifo", "lru", "multi-lru", "lineage"}));
}

TEST(EvictionBackendNames, ListOrderIsTheToolsOrder) {
  std::vector<std::string> names;
  for (const EvictionBackend backend : all_eviction_backends())
    names.emplace_back(to_string(backend));
  EXPECT_THAT(names, ::testing::ElementsAre("lru", "fifo", "multi-lru", "lineage"));
}

TEST(EvictionBackendNames, UnknownNameThrowsConfigErrorNamingTheValidNames) {
  for (const std::string bad : {"", "LRU", "multi_lru", "lru ", "random"}) {
    try {
      (void)parse_eviction_backend(bad);
      ADD_FAILURE() << "parsed '" << bad << "'";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_THAT(what, ::testing::HasSubstr("'" + bad + "'"));
      EXPECT_THAT(what, ::testing::HasSubstr("lru, fifo, multi-lru, lineage"));
    }
  }
}

TEST(EvictionBackendNames, OnlyMultiLruNeedsAFrequencyTracker) {
  for (const EvictionBackend backend : all_eviction_backends()) {
    EXPECT_EQ(needs_frequency_tracker(backend), backend == EvictionBackend::MultiLru)
        << to_string(backend);
  }
  // And the builder agrees: multi-lru without a tracker is refused, the others
  // build.
  for (const EvictionBackend backend : all_eviction_backends()) {
    auto build = [&] {
      return Manager::builder()
          .block_count(4)
          .registry(BlockRegistry::builder().build())
          .backend(backend)
          .build();
    };
    if (needs_frequency_tracker(backend)) {
      EXPECT_THROW((void)build(), ConfigError);
    } else {
      EXPECT_NO_THROW((void)build()) << to_string(backend);
    }
  }
}

/// The order in which a fixed history evicts: two chains released head first,
/// one block revived and released again, then the whole cache evicted.
std::vector<SequenceHash> eviction_order(const std::function<void(Builder&)>& pick) {
  auto builder = Manager::builder();
  builder.block_count(6).block_size(test::kTestBlockSize).registry(test::make_registry());
  pick(builder);
  auto m = builder.build();
  std::vector<SequenceHash> first_chain;
  {
    auto a = test::register_sequence(m, test::iota_sequence(0, 3));
    auto b = test::register_sequence(m, test::iota_sequence(100, 3));
    for (const auto& block : a) first_chain.push_back(block.sequence_hash());
    test::drop_in_order(a);
    test::drop_in_order(b);
  }
  (void)m.match_blocks(std::span<const SequenceHash>(first_chain).first(1));
  auto result = m.allocate_blocks_with_evictions(6);
  if (!result) throw std::runtime_error("allocation failed");
  m.check_invariants();
  return result->second;
}

TEST(BuilderBackend, SelectsTheSameBackendAsTheNamedSetter) {
  const std::vector<std::pair<EvictionBackend, std::function<void(Builder&)>>> named = {
      {EvictionBackend::Fifo, [](Builder& b) { b.fifo_backend(); }},
      {EvictionBackend::Lru, [](Builder& b) { b.lru_backend(); }},
      {EvictionBackend::MultiLru, [](Builder& b) { b.multi_lru_backend(); }},
      {EvictionBackend::Lineage, [](Builder& b) { b.lineage_backend(); }},
  };
  std::vector<std::vector<SequenceHash>> orders;
  for (const auto& [backend, setter] : named) {
    const auto by_setter = eviction_order(setter);
    const auto by_enum = eviction_order([backend](Builder& b) { b.backend(backend); });
    EXPECT_EQ(by_enum, by_setter) << to_string(backend);
    EXPECT_EQ(by_enum.size(), 6u);
    orders.push_back(by_enum);
  }
  // The history tells the backends apart (lineage keeps parents), so the check
  // above can fail.
  EXPECT_NE(std::count(orders.begin(), orders.end(), orders.front()),
            static_cast<std::ptrdiff_t>(orders.size()));
}

}  // namespace
}  // namespace kvbm
