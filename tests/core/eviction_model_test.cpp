// Model-based test of eviction ORDER through the public API, for every backend: long random
// sequences of register / release / match (revive) / allocate-with-evictions / reset against
// an independent reference of each policy. Every eviction list a manager returns must equal
// the reference's prediction exactly:
//   fifo, lru  — least recently released first
//   multi-lru  — level from the tracker's (exact) count at release, coldest level first, then
//                least recently released
//   lineage    — a naive map-based prefix tree with ghosts: leaves only; Tick = the tick the block
//                got when cached (kept when re-exposed), Fifo = the time it became a leaf
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using Manager = BlockManager<G1>;
using HashLess = decltype([](const SequenceHash& a, const SequenceHash& b) {
  return a.as_u128() < b.as_u128();
});

enum class Kind { Fifo, Lru, MultiLru, LineageTick, LineageFifo };

/// Reference prefix tree: nodes keyed by (position, fragment children store), as in spec §3.5,
/// written for clarity with ordered maps and linear scans.
class ReferenceLineage {
 public:
  explicit ReferenceLineage(bool tick_order) : tick_order_{tick_order} {}

  void insert(const SequenceHash& h) {
    const Key key{h.position(), h.fragment_for_child_position(h.position() + 1)};
    Node& node = nodes_[key];  // a ghost is promoted; else created
    node.real = true;
    node.hash = h;
    node.tick = ++clock_;
    if (h.position() > 0 && !node.parent) {
      const Key parent{h.position() - 1, h.parent_fragment()};
      Node& p = nodes_[parent];  // creates a ghost when missing
      if (p.real && p.children.empty()) p.leaf_since = 0;  // demoted
      p.children.insert(key);
      nodes_[key].parent = parent;
    }
    Node& self = nodes_[key];
    if (self.children.empty()) self.leaf_since = ++clock_;
  }

  void remove(const SequenceHash& h) {
    const Key key{h.position(), h.fragment_for_child_position(h.position() + 1)};
    Node& node = nodes_.at(key);
    ASSERT_TRUE(node.real && node.hash == h);
    node.real = false;
    node.leaf_since = 0;
    prune(key);
  }

  SequenceHash victim() {
    std::optional<Key> best;
    std::uint64_t best_rank = 0;
    for (const auto& [key, node] : nodes_) {
      if (!node.real || !node.children.empty()) continue;
      const std::uint64_t rank = tick_order_ ? node.tick : node.leaf_since;
      if (!best || rank < best_rank) {
        best = key;
        best_rank = rank;
      }
    }
    EXPECT_TRUE(best.has_value());
    const SequenceHash h = nodes_.at(*best).hash;
    remove(h);
    return h;
  }

  void clear() { nodes_.clear(); }

 private:
  using Key = std::pair<std::uint32_t, std::uint64_t>;
  struct Node {
    bool real = false;
    SequenceHash hash{};
    std::uint64_t tick = 0;
    std::uint64_t leaf_since = 0;
    std::optional<Key> parent;
    std::set<Key> children;
  };

  void prune(Key key) {
    while (true) {
      Node& node = nodes_.at(key);
      if (!node.children.empty()) return;
      if (node.real) {
        node.leaf_since = ++clock_;  // re-exposed as a leaf
        return;
      }
      const auto parent = node.parent;
      nodes_.erase(key);
      if (!parent) return;
      nodes_.at(*parent).children.erase(key);
      key = *parent;
    }
  }

  bool tick_order_;
  std::uint64_t clock_ = 0;
  std::map<Key, Node> nodes_;
};

/// The cached set with each backend's victim order.
class ReferencePolicy {
 public:
  ReferencePolicy(Kind kind, std::function<std::uint32_t(const SequenceHash&)> count)
      : kind_{kind}, count_{std::move(count)}, lineage_{kind == Kind::LineageTick} {}

  void insert(const SequenceHash& h) {
    cached_[h] = Entry{++clock_, level_of(count_(h))};
    if (is_lineage()) lineage_.insert(h);
  }
  void remove(const SequenceHash& h) {
    ASSERT_EQ(cached_.erase(h), 1u);
    if (is_lineage()) lineage_.remove(h);
  }
  [[nodiscard]] bool contains(const SequenceHash& h) const { return cached_.count(h) != 0; }
  [[nodiscard]] std::size_t size() const { return cached_.size(); }
  void clear() {
    cached_.clear();
    lineage_.clear();
  }

  SequenceHash evict_one() {
    SequenceHash victim{};
    if (is_lineage()) {
      victim = lineage_.victim();
    } else {
      auto best = cached_.begin();
      for (auto it = cached_.begin(); it != cached_.end(); ++it) {
        const auto rank = [&](const auto& e) {
          return std::pair{kind_ == Kind::MultiLru ? e.second.level : 0, e.second.seq};
        };
        if (rank(*it) < rank(*best)) best = it;
      }
      victim = best->first;
    }
    cached_.erase(victim);
    return victim;
  }

 private:
  struct Entry {
    std::uint64_t seq;
    int level;
  };
  static int level_of(std::uint32_t f) { return f < 3 ? 0 : f < 8 ? 1 : f < 15 ? 2 : 3; }
  [[nodiscard]] bool is_lineage() const {
    return kind_ == Kind::LineageTick || kind_ == Kind::LineageFifo;
  }

  Kind kind_;
  std::function<std::uint32_t(const SequenceHash&)> count_;
  std::map<SequenceHash, Entry, HashLess> cached_;
  std::uint64_t clock_ = 0;
  ReferenceLineage lineage_;
};

struct ModelCase {
  std::string name;
  Kind kind;
};

class EvictionOrderModel : public ::testing::TestWithParam<ModelCase> {};

TEST_P(EvictionOrderModel, EvictionListsMatchTheReference) {
  const Kind kind = GetParam().kind;
  for (std::uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng{seed};
    constexpr std::size_t kBlocks = 12;
    auto tracker = std::make_shared<test::CountingTracker>();
    auto registry = BlockRegistry::builder().frequency_tracker(tracker).build();
    auto builder = Manager::builder();
    builder.block_count(kBlocks).block_size(test::kTestBlockSize).registry(registry);
    switch (kind) {
      case Kind::Fifo: builder.fifo_backend(); break;
      case Kind::Lru: builder.lru_backend(); break;
      case Kind::MultiLru: builder.multi_lru_backend(); break;
      case Kind::LineageTick: builder.lineage_backend(LineageEviction::Tick); break;
      case Kind::LineageFifo: builder.lineage_backend(LineageEviction::Fifo); break;
    }
    auto m = builder.build();
    ReferencePolicy model{kind, [&](const SequenceHash& h) { return tracker->touches(h); }};

    // A branching universe: 3 roots, each with 2 continuations, each 4 blocks deep.
    std::vector<std::vector<SequenceHash>> chains;
    for (Token root = 0; root < 3; ++root) {
      for (Token branch = 0; branch < 2; ++branch) {
        std::vector<Token> tokens = test::iota_tokens(root * 100, test::kTestBlockSize);
        const auto tail = test::iota_tokens(10'000 + root * 1000 + branch * 100, 3 * test::kTestBlockSize);
        tokens.insert(tokens.end(), tail.begin(), tail.end());
        chains.push_back(TokenBlockSequence(tokens, test::kTestBlockSize, test::kTestSalt).sequence_hashes());
      }
    }
    std::map<SequenceHash, std::vector<Manager::Immutable>, HashLess> held;  // hash -> handles
    std::size_t compared = 0;  // evictions checked against the reference

    const auto check_evictions = [&](std::size_t n) {
      const std::size_t free_now = static_cast<std::size_t>(m.metrics().reset_pool_size);
      auto result = m.allocate_blocks_with_evictions(n);
      if (free_now + model.size() < n) {
        EXPECT_FALSE(result.has_value());
        return std::optional<std::vector<Manager::Mutable>>{};
      }
      EXPECT_TRUE(result.has_value());
      if (!result) return std::optional<std::vector<Manager::Mutable>>{};
      std::vector<SequenceHash> expected;
      for (std::size_t i = free_now; i < n; ++i) expected.push_back(model.evict_one());
      EXPECT_EQ(result->second, expected) << "allocate " << n << " with " << free_now << " free";
      compared += expected.size();
      return std::optional{std::move(result->first)};
    };
    const auto release = [&](const SequenceHash& h) {
      auto it = held.find(h);
      if (it == held.end() || it->second.empty()) return;
      it->second.pop_back();
      if (it->second.empty()) {
        held.erase(it);
        model.insert(h);  // the last handle of a primary: cached, ordered as of now
      }
    };

    for (int step = 0; step < 600 && !::testing::Test::HasFailure(); ++step) {
      const auto& chain = chains[rng() % chains.size()];
      const std::size_t len = 1 + rng() % chain.size();
      switch (rng() % 6) {
        case 0:
        case 1: {  // match the cached/held prefix, register the rest of the prefix
          auto hits = m.match_blocks(std::span(chain).first(len));
          std::size_t expected_hits = 0;
          while (expected_hits < len && (held.count(chain[expected_hits]) != 0 ||
                                         model.contains(chain[expected_hits]))) {
            ++expected_hits;
          }
          ASSERT_EQ(hits.size(), expected_hits);
          for (auto& hit : hits) {
            if (model.contains(hit.sequence_hash())) model.remove(hit.sequence_hash());
            held[hit.sequence_hash()].push_back(std::move(hit));
          }
          std::vector<SequenceHash> fresh;
          for (std::size_t i = expected_hits; i < len; ++i) {
            if (held.count(chain[i]) == 0 && !model.contains(chain[i])) fresh.push_back(chain[i]);
          }
          if (fresh.empty()) break;
          auto blocks = check_evictions(fresh.size());
          if (!blocks) break;
          std::vector<Manager::Complete> staged;
          for (std::size_t i = 0; i < fresh.size(); ++i) {
            staged.push_back(std::move((*blocks)[i]).stage(fresh[i], test::kTestBlockSize));
          }
          for (auto& b : m.register_blocks(std::move(staged))) {
            held[b.sequence_hash()].push_back(std::move(b));
          }
          break;
        }
        case 2:
        case 3: {  // release some handles, in a random order
          std::vector<SequenceHash> owners;
          for (const auto& [h, handles] : held) {
            for (std::size_t i = 0; i < handles.size(); ++i) owners.push_back(h);
          }
          std::shuffle(owners.begin(), owners.end(), rng);
          owners.resize(std::min<std::size_t>(owners.size(), 1 + rng() % (owners.size() + 1)));
          for (const auto& h : owners) release(h);
          break;
        }
        case 4: {  // allocate and free at once: pure eviction
          auto blocks = check_evictions(rng() % 5);
          break;
        }
        default: {
          if (rng() % 8 == 0) {
            EXPECT_EQ(m.reset_inactive_pool(), model.size());
            model.clear();
          } else {  // extra touches move multi-LRU levels
            for (std::size_t i = 0; i < len; ++i) registry.touch(chain[i]);
          }
          break;
        }
      }
      ASSERT_EQ(static_cast<std::size_t>(m.metrics().inactive_pool_size), model.size());
      if (step % 20 == 0) m.check_invariants();
    }
    EXPECT_GT(compared, 20u) << "the run must exercise eviction";
    if (std::getenv("KVBM_MODEL_VERBOSE")) std::printf("seed %u: %zu evictions compared\n", seed, compared);
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, EvictionOrderModel,
                         ::testing::Values(ModelCase{"fifo", Kind::Fifo}, ModelCase{"lru", Kind::Lru},
                                           ModelCase{"multi_lru", Kind::MultiLru},
                                           ModelCase{"lineage_tick", Kind::LineageTick},
                                           ModelCase{"lineage_fifo", Kind::LineageFifo}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace kvbm
