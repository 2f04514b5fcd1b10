// White-box tests of the lineage eviction policy: leaf-only eviction, ghost parents, pruning,
// Tick vs Fifo leaf orders, full-hash separation of (position, fragment) collisions, deep chains.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "eviction/lineage_policy.hpp"

namespace kvbm::detail {
namespace {

/// Hash of a block whose chained value is `current`, under a parent whose chained value is
/// `parent` (nullopt for a root), at `position`.
SequenceHash node_hash(std::uint64_t current, std::optional<std::uint64_t> parent,
                       std::uint32_t position) {
  return SequenceHash::from_parts(current, parent, position);
}

/// Hashes of one chain: block i has chained value base + i, position i.
std::vector<SequenceHash> chain(std::uint64_t base, std::uint32_t length) {
  std::vector<SequenceHash> out;
  for (std::uint32_t i = 0; i < length; ++i) {
    out.push_back(node_hash(base + i, i == 0 ? std::nullopt : std::optional(base + i - 1), i));
  }
  return out;
}

std::vector<BlockId> evict_n(LineagePolicy& policy, std::size_t n) {
  std::vector<BlockId> out(n, kInvalidBlockId);
  out.resize(policy.evict(out));
  return out;
}

class LineageBothOrders : public ::testing::TestWithParam<LineageEviction> {};

TEST_P(LineageBothOrders, SingleRootIsALeafAndEvictionEmptiesTheTree) {
  LineagePolicy policy{4, GetParam()};
  policy.insert(0, node_hash(7, std::nullopt, 0));
  EXPECT_TRUE(policy.is_leaf(0));
  EXPECT_EQ(policy.node_count(), 1u);
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{0}));
  EXPECT_EQ(policy.node_count(), 0u);
  EXPECT_EQ(policy.size(), 0u);
  policy.check_invariants();
}

TEST_P(LineageBothOrders, ChildEvictedBeforeParentWhichThenBecomesALeaf) {
  LineagePolicy policy{4, GetParam()};
  const auto c = chain(100, 2);
  policy.insert(0, c[0]);
  policy.insert(1, c[1]);
  EXPECT_FALSE(policy.is_leaf(0));
  EXPECT_TRUE(policy.is_leaf(1));
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{1}));
  EXPECT_TRUE(policy.is_leaf(0));
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{0}));
  policy.check_invariants();
}

TEST_P(LineageBothOrders, ChildReleasedBeforeParentHangsUnderAGhost) {
  LineagePolicy policy{4, GetParam()};
  const auto c = chain(200, 2);
  policy.insert(1, c[1]);
  EXPECT_EQ(policy.size(), 1u);
  EXPECT_EQ(policy.ghost_count(), 1u);
  EXPECT_TRUE(policy.is_leaf(1));
  policy.check_invariants();
  policy.insert(0, c[0]);  // promotes the ghost
  EXPECT_EQ(policy.ghost_count(), 0u);
  EXPECT_EQ(policy.node_count(), 2u);
  EXPECT_FALSE(policy.is_leaf(0));
  policy.check_invariants();
  EXPECT_EQ(evict_n(policy, 2), (std::vector<BlockId>{1, 0}));
  EXPECT_EQ(policy.node_count(), 0u);
}

TEST_P(LineageBothOrders, BranchingKeepsTheSharedPrefixUntilBothBranchesAreGone) {
  LineagePolicy policy{8, GetParam()};
  const auto root = node_hash(1, std::nullopt, 0);
  policy.insert(0, root);
  policy.insert(1, node_hash(11, 1, 1));
  policy.insert(2, node_hash(12, 1, 1));
  EXPECT_EQ(policy.leaf_count(), 2u);
  EXPECT_FALSE(policy.is_leaf(0));
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{1}));
  EXPECT_FALSE(policy.is_leaf(0));
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{2}));
  EXPECT_TRUE(policy.is_leaf(0));
  policy.check_invariants();
}

TEST_P(LineageBothOrders, SplitSequencesDrainTailFirstKeepingTwoLeaves) {
  LineagePolicy policy{8, GetParam()};
  // root -> a1 -> a2 and root -> b1 -> b2
  policy.insert(0, node_hash(1, std::nullopt, 0));
  policy.insert(1, node_hash(21, 1, 1));
  policy.insert(2, node_hash(22, 21, 2));
  policy.insert(3, node_hash(31, 1, 1));
  policy.insert(4, node_hash(32, 31, 2));
  EXPECT_EQ(policy.leaf_count(), 2u);
  std::vector<BlockId> order;
  for (int i = 0; i < 5; ++i) {
    const auto v = evict_n(policy, 1);
    ASSERT_EQ(v.size(), 1u);
    order.push_back(v[0]);
    if (i == 0) EXPECT_EQ(policy.leaf_count(), 2u);  // the evicted tail's parent took its place
    policy.check_invariants();
  }
  // Each block leaves after its descendants.
  const auto at = [&](BlockId id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(at(2), at(1));
  EXPECT_LT(at(4), at(3));
  EXPECT_EQ(order.back(), 0u);
}

TEST_P(LineageBothOrders, HitOnAnInteriorBlockLeavesAGhostHoldingTheSubtree) {
  LineagePolicy policy{8, GetParam()};
  const auto c = chain(300, 3);
  for (BlockId i = 0; i < 3; ++i) policy.insert(i, c[i]);
  policy.remove(1, c[1]);  // a cache hit on the middle block
  EXPECT_EQ(policy.size(), 2u);
  EXPECT_EQ(policy.ghost_count(), 1u);
  EXPECT_FALSE(policy.is_leaf(0));  // still above a cached descendant through the ghost
  policy.check_invariants();
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{2}));  // prunes the ghost
  EXPECT_EQ(policy.ghost_count(), 0u);
  EXPECT_TRUE(policy.is_leaf(0));
  // The middle block comes back (its request released it): it links under the root again.
  policy.insert(1, c[1]);
  EXPECT_FALSE(policy.is_leaf(0));
  EXPECT_EQ(evict_n(policy, 2), (std::vector<BlockId>{1, 0}));
  EXPECT_EQ(policy.node_count(), 0u);
}

TEST_P(LineageBothOrders, HitOnALeafReExposesItsParent) {
  LineagePolicy policy{8, GetParam()};
  const auto c = chain(400, 2);
  policy.insert(0, c[0]);
  policy.insert(1, c[1]);
  EXPECT_THROW(policy.remove(1, c[0]), std::logic_error);  // the slot holds another hash
  policy.remove(1, c[1]);
  EXPECT_TRUE(policy.is_leaf(0));
  EXPECT_EQ(policy.node_count(), 1u);
  policy.check_invariants();
}

// Two hashes with the same position and fragment but different parents are different blocks:
// caching one never makes the other look cached, and removing one leaves the other intact.
TEST_P(LineageBothOrders, SamePositionAndFragmentButDifferentFullHashStaySeparate) {
  LineagePolicy policy{8, GetParam()};
  const auto p1 = node_hash(1, std::nullopt, 0);
  const auto p2 = node_hash(2, std::nullopt, 0);
  const auto a = node_hash(77, 1, 1);  // same current 77 at position 1 ...
  const auto b = node_hash(77, 2, 1);  // ... under another parent
  ASSERT_EQ(a.fragment_for_child_position(2), b.fragment_for_child_position(2));
  ASSERT_NE(a, b);
  policy.insert(0, p1);
  policy.insert(1, a);
  policy.insert(2, p2);
  policy.insert(3, b);
  policy.check_invariants();
  EXPECT_EQ(policy.size(), 4u);
  EXPECT_FALSE(policy.is_leaf(0));  // p1 above a
  EXPECT_FALSE(policy.is_leaf(2));  // p2 above b
  EXPECT_TRUE(policy.is_leaf(1));
  EXPECT_TRUE(policy.is_leaf(3));
  EXPECT_THROW(policy.remove(1, b), std::logic_error);  // no false removal through the key
  policy.remove(3, b);
  EXPECT_TRUE(policy.contains(1));
  EXPECT_TRUE(policy.is_leaf(2));
  EXPECT_FALSE(policy.is_leaf(0));
  policy.check_invariants();
  auto rest = evict_n(policy, 8);
  EXPECT_EQ(rest.size(), 3u);
  EXPECT_LT(std::find(rest.begin(), rest.end(), 1u), std::find(rest.begin(), rest.end(), 0u));
  EXPECT_EQ(policy.node_count(), 0u);
}

// Two roots whose chained hashes differ only above the 54 bits a child stores: the same key.
// The later one gets a node of its own; both stay evictable and the first keeps its child.
TEST_P(LineageBothOrders, TruncatedFragmentCollisionKeepsBothBlocksEvictable) {
  LineagePolicy policy{8, GetParam()};
  const std::uint64_t low = 0x0012'3456'789A'BCDEull;
  const auto a = node_hash(low, std::nullopt, 0);
  const auto b = node_hash(low | (std::uint64_t{0x3FF} << 54), std::nullopt, 0);
  const auto child = node_hash(0xC0FFEE, low, 1);
  ASSERT_EQ(a.fragment_for_child_position(1), b.fragment_for_child_position(1));
  policy.insert(0, a);
  policy.insert(1, b);
  policy.insert(2, child);
  policy.check_invariants();
  EXPECT_FALSE(policy.is_leaf(0));  // a holds the child (it owns the key)
  EXPECT_TRUE(policy.is_leaf(1));
  policy.remove(1, b);
  EXPECT_TRUE(policy.contains(0));
  policy.check_invariants();
  EXPECT_EQ(evict_n(policy, 8), (std::vector<BlockId>{2, 0}));
  EXPECT_EQ(policy.node_count(), 0u);
}

// A ghost left by one hash, promoted by a colliding hash with another parent, moves under the
// new parent; the old parent becomes a leaf again.
TEST_P(LineageBothOrders, PromotedGhostOfACollidingHashMovesToItsOwnParent) {
  LineagePolicy policy{8, GetParam()};
  const auto p1 = node_hash(1, std::nullopt, 0);
  const auto p2 = node_hash(2, std::nullopt, 0);
  const auto a = node_hash(77, 1, 1);
  const auto b = node_hash(77, 2, 1);
  const auto a_child = node_hash(78, 77, 2);
  policy.insert(0, p1);
  policy.insert(1, a);
  policy.insert(2, a_child);
  policy.insert(3, p2);
  policy.remove(1, a);  // hit: a ghost (under p1) holds a_child
  EXPECT_FALSE(policy.is_leaf(0));
  policy.insert(1, b);  // same key, other parent: takes the ghost over and moves under p2
  policy.check_invariants();
  EXPECT_TRUE(policy.is_leaf(0));
  EXPECT_FALSE(policy.is_leaf(3));
  EXPECT_EQ(policy.ghost_count(), 0u);
  EXPECT_EQ(evict_n(policy, 8).size(), 4u);
  EXPECT_EQ(policy.node_count(), 0u);
}

TEST_P(LineageBothOrders, DeepChainInsertedForwardDrainsTailFirst) {
  constexpr std::uint32_t kDepth = 10'000;
  LineagePolicy policy{kDepth, GetParam()};
  const auto c = chain(1'000'000, kDepth);
  for (BlockId i = 0; i < kDepth; ++i) policy.insert(i, c[i]);
  EXPECT_EQ(policy.leaf_count(), 1u);
  std::vector<BlockId> order(kDepth);
  ASSERT_EQ(policy.evict(order), kDepth);
  for (BlockId i = 0; i < kDepth; ++i) ASSERT_EQ(order[i], kDepth - 1 - i);
  EXPECT_EQ(policy.node_count(), 0u);
}

TEST_P(LineageBothOrders, DeepChainInsertedBackwardsPromotesEveryGhost) {
  constexpr std::uint32_t kDepth = 10'000;
  LineagePolicy policy{kDepth, GetParam()};
  const auto c = chain(5'000'000, kDepth);
  for (BlockId i = kDepth; i-- > 0;) policy.insert(i, c[i]);
  EXPECT_EQ(policy.ghost_count(), 0u);
  EXPECT_EQ(policy.leaf_count(), 1u);
  EXPECT_TRUE(policy.is_leaf(kDepth - 1));
  policy.check_invariants();
}

TEST_P(LineageBothOrders, IsolatedDeepLeafPrunesItsWholeGhostChainIteratively) {
  constexpr std::uint32_t kDepth = 10'000;
  LineagePolicy policy{kDepth, GetParam()};
  const auto c = chain(9'000'000, kDepth);
  for (BlockId i = 0; i < kDepth; ++i) policy.insert(i, c[i]);
  for (BlockId i = 0; i + 1 < kDepth; ++i) policy.remove(i, c[i]);  // hits on every prefix block
  EXPECT_EQ(policy.size(), 1u);
  EXPECT_EQ(policy.ghost_count(), kDepth - 1);
  EXPECT_TRUE(policy.is_leaf(kDepth - 1));
  EXPECT_EQ(evict_n(policy, 1), (std::vector<BlockId>{kDepth - 1}));  // one prune, no recursion
  EXPECT_EQ(policy.node_count(), 0u);
}

TEST_P(LineageBothOrders, SlabRecyclesFreedNodes) {
  LineagePolicy policy{64, GetParam()};
  for (BlockId i = 0; i < 64; ++i) policy.insert(i, node_hash(100 + i, std::nullopt, 0));
  const auto high_water = policy.slab_size();
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(evict_n(policy, 64).size(), 64u);
    for (BlockId i = 0; i < 64; ++i) {
      policy.insert(i, node_hash(1000 * (round + 1) + i, std::nullopt, 0));
    }
    EXPECT_EQ(policy.slab_size(), high_water);
  }
}

TEST_P(LineageBothOrders, ChainAcrossThePositionModeBoundaryLinks) {
  // Positions 255 (mode 0) and 256 (mode 1) store fragments of different widths.
  LineagePolicy policy{4, GetParam()};
  const std::uint64_t parent_value = 0xFEDC'BA98'7654'3210ull;
  const auto parent = node_hash(parent_value, 0x1111, 255);
  const auto child = node_hash(0x0123'4567'89AB'CDEFull, parent_value, 256);
  policy.insert(1, child);  // ghost parent at 255 keyed by the child's 46-bit fragment
  EXPECT_EQ(policy.ghost_count(), 1u);
  policy.insert(0, parent);             // promotes it (and hangs under its own ghost at 254)
  EXPECT_EQ(policy.ghost_count(), 1u);
  EXPECT_EQ(policy.node_count(), 3u);
  EXPECT_FALSE(policy.is_leaf(0));
  policy.check_invariants();
  EXPECT_EQ(evict_n(policy, 2), (std::vector<BlockId>{1, 0}));
  EXPECT_EQ(policy.node_count(), 0u);
}

// A hit keeps the node (Held): the release that caches the block again reuses it in place, so
// match/release cycles allocate no node and the chain still drains tail-first.
TEST_P(LineageBothOrders, HitKeepsTheNodeAndTheReleaseCachesItInPlace) {
  LineagePolicy policy{8, GetParam()};
  const auto c = chain(500, 4);
  for (BlockId i = 0; i < 4; ++i) policy.insert(i, c[i]);
  const auto high_water = policy.slab_size();
  for (int round = 0; round < 50; ++round) {
    for (BlockId i = 0; i < 4; ++i) policy.remove(i, c[i]);  // a match from the root
    EXPECT_EQ(policy.size(), 0u);
    EXPECT_EQ(policy.held_count(), 4u);
    EXPECT_EQ(policy.node_count(), 0u);  // nothing cached, nothing held in place for it
    EXPECT_EQ(policy.leaf_count(), 0u);
    policy.check_invariants();
    if (round % 2 == 0) {
      for (BlockId i = 4; i-- > 0;) policy.insert(i, c[i]);  // dropped tail-first
    } else {
      for (BlockId i = 0; i < 4; ++i) policy.insert(i, c[i]);  // dropped root-first
    }
    EXPECT_EQ(policy.held_count(), 0u);
    EXPECT_EQ(policy.leaf_count(), 1u);
    EXPECT_TRUE(policy.is_leaf(3));
    policy.check_invariants();
    EXPECT_EQ(policy.slab_size(), high_water);
  }
  EXPECT_EQ(evict_n(policy, 4), (std::vector<BlockId>{3, 2, 1, 0}));
  EXPECT_EQ(policy.held_count(), 0u);
  EXPECT_EQ(policy.slab_size(), high_water);
}

// A Held node with a cached descendant holds the subtree like a ghost; forgetting its slot (the
// tenancy ended) turns it into a real ghost, and a later hit-less insert of the same block
// elsewhere promotes that ghost.
TEST_P(LineageBothOrders, ForgettingAHeldNodeLeavesAGhostOnlyWhileItHoldsASubtree) {
  LineagePolicy policy{8, GetParam()};
  const auto c = chain(600, 3);
  for (BlockId i = 0; i < 3; ++i) policy.insert(i, c[i]);
  policy.remove(1, c[1]);
  EXPECT_EQ(policy.held_count(), 1u);
  EXPECT_EQ(policy.ghost_count(), 1u);  // the Held node holds block 2 under block 0
  policy.forget(1);                     // slot 1 freed while in use (reset on release)
  EXPECT_EQ(policy.held_count(), 0u);
  EXPECT_EQ(policy.ghost_count(), 1u);
  EXPECT_FALSE(policy.is_leaf(0));
  policy.check_invariants();
  policy.insert(5, c[1]);  // the same block cached from another slot promotes the ghost
  EXPECT_EQ(policy.ghost_count(), 0u);
  EXPECT_FALSE(policy.is_leaf(5));
  policy.check_invariants();
  EXPECT_EQ(evict_n(policy, 3), (std::vector<BlockId>{2, 5, 0}));
  EXPECT_EQ(policy.node_count(), 0u);

  // A childless Held node just goes; forgetting an unknown or evicted id is a no-op.
  policy.insert(0, c[0]);
  policy.remove(0, c[0]);
  policy.forget(0);
  policy.forget(0);
  policy.forget(7);
  EXPECT_EQ(policy.held_count(), 0u);
  EXPECT_EQ(policy.slab_size() > 0, true);
  policy.check_invariants();
}

// An unlinked Held node remembers its parent as a hint; the hint may name a node that was
// freed and reused for another key meanwhile, and must then be ignored.
TEST_P(LineageBothOrders, StaleParentHintFallsBackToTheIndex) {
  LineagePolicy policy{8, GetParam()};
  const auto c = chain(700, 3);
  for (BlockId i = 0; i < 3; ++i) policy.insert(i, c[i]);
  for (BlockId i = 0; i < 3; ++i) policy.remove(i, c[i]);  // the whole chain Held, unlinked
  policy.forget(1);                                         // its middle slot freed
  policy.insert(4, node_hash(9999, std::nullopt, 0));       // may reuse the freed node
  policy.insert(2, c[2]);  // its hint is stale: a ghost parent takes the middle's place
  EXPECT_EQ(policy.ghost_count(), 1u);
  EXPECT_TRUE(policy.is_leaf(2));
  policy.check_invariants();
  policy.insert(0, c[0]);  // the root is not linked to the ghost (it was never cached under it)
  EXPECT_TRUE(policy.is_leaf(0));
  policy.insert(1, c[1]);  // the middle comes back: promotes the ghost and links under the root
  EXPECT_EQ(policy.ghost_count(), 0u);
  EXPECT_FALSE(policy.is_leaf(0));
  EXPECT_FALSE(policy.is_leaf(1));
  policy.check_invariants();
  const auto order = evict_n(policy, 4);
  ASSERT_EQ(order.size(), 4u);
  const auto at = [&](BlockId id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(at(2), at(1));
  EXPECT_LT(at(1), at(0));
}

// Another slot caching a block with the same (position, fragment) takes over a Held node (as it
// would a ghost); the in-use slot's later release finds its own place again.
TEST_P(LineageBothOrders, CollidingInsertTakesOverAnotherSlotsHeldNode) {
  LineagePolicy policy{8, GetParam()};
  const auto p1 = node_hash(1, std::nullopt, 0);
  const auto p2 = node_hash(2, std::nullopt, 0);
  const auto a = node_hash(77, 1, 1);
  const auto b = node_hash(77, 2, 1);  // same key as a, other parent
  policy.insert(0, p1);
  policy.insert(1, a);
  policy.insert(2, p2);
  policy.remove(1, a);  // a in use: Held, unlinked, p1 a leaf again
  EXPECT_TRUE(policy.is_leaf(0));
  policy.insert(3, b);  // takes the node over, under p2
  EXPECT_EQ(policy.held_count(), 0u);
  EXPECT_FALSE(policy.is_leaf(2));
  policy.check_invariants();
  policy.insert(1, a);  // a released: its key is taken, so it gets a node of its own, a leaf
  EXPECT_TRUE(policy.is_leaf(1));
  EXPECT_TRUE(policy.is_leaf(3));
  policy.check_invariants();
  EXPECT_EQ(evict_n(policy, 8).size(), 4u);
  EXPECT_EQ(policy.node_count(), 0u);
  EXPECT_EQ(policy.held_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Orders, LineageBothOrders,
                         ::testing::Values(LineageEviction::Tick, LineageEviction::Fifo),
                         [](const auto& info) {
                           return info.param == LineageEviction::Tick ? "Tick" : "Fifo";
                         });

// ---------------------------------------------------------------------------------------------
// Tick vs Fifo leaf orders (spec: two interleaved 2-chains)

void insert_interleaved_chains(LineagePolicy& policy) {
  policy.insert(0, node_hash(10, std::nullopt, 0));  // rootA
  policy.insert(1, node_hash(20, std::nullopt, 0));  // rootB
  policy.insert(2, node_hash(11, 10, 1));            // leafA
  policy.insert(3, node_hash(21, 20, 1));            // leafB
}

TEST(EvictionLineage, InterleavedChainsTickKeepsTheReLeafedRootsOriginalTick) {
  LineagePolicy policy{4, LineageEviction::Tick};
  insert_interleaved_chains(policy);
  // leafA, rootA, leafB, rootB
  EXPECT_EQ(evict_n(policy, 4), (std::vector<BlockId>{2, 0, 3, 1}));
}

TEST(EvictionLineage, InterleavedChainsFifoRoundRobinsTheChains) {
  LineagePolicy policy{4, LineageEviction::Fifo};
  insert_interleaved_chains(policy);
  // leafA, leafB, rootA, rootB
  EXPECT_EQ(evict_n(policy, 4), (std::vector<BlockId>{2, 3, 0, 1}));
}

TEST(EvictionLineage, ReLeafedNodeGoesToTheFifoTailButKeepsItsTickPosition) {
  // root(1) <- child(2); then two unrelated roots x(3), y(4).
  for (auto order : {LineageEviction::Fifo, LineageEviction::Tick}) {
    LineagePolicy policy{8, order};
    policy.insert(0, node_hash(50, std::nullopt, 0));
    policy.insert(1, node_hash(51, 50, 1));
    policy.insert(2, node_hash(60, std::nullopt, 0));
    policy.insert(3, node_hash(70, std::nullopt, 0));
    const auto got = evict_n(policy, 4);
    if (order == LineageEviction::Fifo) {
      EXPECT_EQ(got, (std::vector<BlockId>{1, 2, 3, 0}));
    } else {
      EXPECT_EQ(got, (std::vector<BlockId>{1, 0, 2, 3}));
    }
  }
}

TEST(EvictionLineage, ReinsertedBlockGetsAFreshTick) {
  LineagePolicy policy{4, LineageEviction::Tick};
  policy.insert(0, node_hash(1, std::nullopt, 0));
  policy.insert(1, node_hash(2, std::nullopt, 0));
  policy.remove(0, node_hash(1, std::nullopt, 0));  // hit, then released again: newest now
  policy.insert(0, node_hash(1, std::nullopt, 0));
  EXPECT_EQ(evict_n(policy, 2), (std::vector<BlockId>{1, 0}));
}

TEST(EvictionLineage, OutOfOrderParentTicksAfterItsChild) {
  // Child first (tick 1), then parent (tick 2), then an unrelated root (tick 3).
  LineagePolicy policy{4, LineageEviction::Tick};
  policy.insert(1, node_hash(31, 30, 1));
  policy.insert(0, node_hash(30, std::nullopt, 0));
  policy.insert(2, node_hash(99, std::nullopt, 0));
  EXPECT_EQ(evict_n(policy, 3), (std::vector<BlockId>{1, 0, 2}));
}

// ---------------------------------------------------------------------------------------------
// Building blocks

TEST(EvictionLineage, TickHeapOrdersByTickAndErasesAnywhere) {
  TickHeap heap{16};
  const std::vector<std::pair<BlockId, std::uint64_t>> entries{
      {3, 40}, {1, 10}, {7, 70}, {2, 20}, {9, 5}, {4, 30}, {8, 80}};
  for (auto [id, tick] : entries) heap.push(id, tick);
  EXPECT_EQ(heap.top(), 9u);
  heap.erase(9);
  heap.erase(4);
  heap.erase(8);  // the last one
  std::vector<BlockId> order;
  while (heap.size() > 0) {
    order.push_back(heap.top());
    heap.erase(heap.top());
  }
  EXPECT_EQ(order, (std::vector<BlockId>{1, 2, 3, 7}));
  EXPECT_EQ(heap.top(), kInvalidBlockId);
}

// IdList::replace keeps the order: the new id takes the old one's place at the head, in the
// middle and at the tail (the Tick order's list uses it when a child takes its parent's leaf).
TEST(EvictionLineage, IdListReplaceTakesThePlaceOfTheOldId) {
  IdList list{16};
  for (const BlockId id : {1u, 2u, 3u, 4u}) list.push_back(id);
  list.replace(1, 11);  // head
  list.replace(3, 13);  // middle
  list.replace(4, 14);  // tail
  EXPECT_EQ(list.front(), 11u);
  EXPECT_EQ(list.back(), 14u);
  EXPECT_EQ(list.size(), 4u);
  EXPECT_FALSE(list.contains(1));
  EXPECT_FALSE(list.contains(3));
  EXPECT_FALSE(list.contains(4));
  std::vector<BlockId> order;
  for (BlockId id = list.front(); id != kInvalidBlockId; id = list.next(id)) order.push_back(id);
  EXPECT_EQ(order, (std::vector<BlockId>{11, 2, 13, 14}));
  list.push_back(5);  // after the replaced tail
  list.unlink(14);
  order.clear();
  while (!list.empty()) order.push_back(list.pop_front());
  EXPECT_EQ(order, (std::vector<BlockId>{11, 2, 13, 5}));
}

// A chain released root-first: each block takes its parent's leaf place. Then another chain's
// blocks, and a re-exposed parent older than every listed leaf: eviction follows the ticks.
TEST(EvictionLineage, TickOrderMixesListedAndReExposedLeaves) {
  LineagePolicy policy{8, LineageEviction::Tick};
  policy.insert(0, node_hash(10, std::nullopt, 0));  // tick 1
  policy.insert(1, node_hash(11, 10, 1));            // tick 2, replaces 0 as the leaf
  policy.insert(2, node_hash(12, 11, 2));            // tick 3, replaces 1
  policy.insert(3, node_hash(20, std::nullopt, 0));  // tick 4, another root
  EXPECT_EQ(policy.leaf_count(), 2u);
  // 2 (tick 3) goes; its parent 1 (tick 2) is re-exposed, older than 3 (tick 4): next.
  EXPECT_EQ(evict_n(policy, 4), (std::vector<BlockId>{2, 1, 0, 3}));
}

TEST(EvictionLineage, PairHasherDistinguishesKeys) {
  LineageKeyHash hash;
  std::set<std::size_t> hashes;
  std::set<std::uint64_t> packed;
  for (std::uint32_t pos : {0u, 1u, 2u, 254u, 255u, 256u, 65534u, 65535u, 65536u, (1u << 24) - 1}) {
    for (std::uint64_t frag = 0; frag < 32; ++frag) {
      hashes.insert(hash(LineageKey{frag, pos}));
      packed.insert(LineageKey{frag, pos}.packed());
    }
    // The widest fragment of each mode still packs without overlapping the position.
    const auto widest = SequenceHash::from_parts(~std::uint64_t{0}, std::nullopt, pos);
    const LineageKey key{widest.fragment_for_child_position(pos + 1), pos};
    packed.insert(key.packed());
    EXPECT_EQ(key.packed() >> 62, SequenceHash::mode_for(pos + 1));
  }
  EXPECT_EQ(hashes.size(), 10u * 32u);
  EXPECT_EQ(packed.size(), 10u * 33u);
  EXPECT_NE(hash(LineageKey{1, 2}), hash(LineageKey{2, 1}));
}

// ---------------------------------------------------------------------------------------------
// Randomised: a universe forest of blocks, random releases (inserts), hits (removes) and
// evictions. Every victim must have no cached child, and the tree stays consistent.

TEST(EvictionLineage, RandomForestNeverEvictsABlockWithACachedChild) {
  for (auto order : {LineageEviction::Tick, LineageEviction::Fifo}) {
    constexpr std::size_t kUniverse = 400;
    constexpr std::size_t kCapacity = 128;
    std::mt19937_64 rng{order == LineageEviction::Tick ? 7u : 8u};
    // Universe node u: parent index (or -1), chained value, position.
    std::vector<int> parent(kUniverse, -1);
    std::vector<std::uint32_t> position(kUniverse, 0);
    std::vector<SequenceHash> hash(kUniverse);
    for (std::size_t u = 0; u < kUniverse; ++u) {
      const std::uint64_t value = 0xABC0000 + u * 7919;
      if (u >= 8 && rng() % 8 != 0) {
        parent[u] = static_cast<int>(rng() % u);
        position[u] = position[static_cast<std::size_t>(parent[u])] + 1;
        hash[u] = node_hash(value, 0xABC0000 + static_cast<std::uint64_t>(parent[u]) * 7919,
                            position[u]);
      } else {
        hash[u] = node_hash(value, std::nullopt, 0);
      }
    }
    LineagePolicy policy{kCapacity, order};
    std::map<BlockId, std::size_t> cached;  // slot -> universe node
    std::set<std::size_t> cached_nodes;
    std::vector<BlockId> free_slots;
    for (BlockId id = 0; id < kCapacity; ++id) free_slots.push_back(id);
    for (int step = 0; step < 30000; ++step) {
      const auto op = rng() % 10;
      if (op < 5 && !free_slots.empty()) {
        const std::size_t u = rng() % kUniverse;
        if (cached_nodes.count(u) != 0) continue;
        const BlockId id = free_slots.back();
        free_slots.pop_back();
        policy.insert(id, hash[u]);
        cached[id] = u;
        cached_nodes.insert(u);
      } else if (op < 7 && !cached.empty()) {
        auto it = cached.begin();
        std::advance(it, static_cast<long>(rng() % cached.size()));
        policy.remove(it->first, hash[it->second]);
        cached_nodes.erase(it->second);
        free_slots.push_back(it->first);
        cached.erase(it);
      } else {
        const std::size_t want = rng() % 4;
        for (std::size_t k = 0; k < want; ++k) {
          const auto victims = evict_n(policy, 1);
          if (cached.empty()) {
            ASSERT_TRUE(victims.empty());
            break;
          }
          ASSERT_EQ(victims.size(), 1u);
          const std::size_t u = cached.at(victims[0]);
          for (std::size_t other : cached_nodes) {
            ASSERT_NE(parent[other], static_cast<int>(u))
                << "evicted node " << u << " while its child " << other << " is cached";
          }
          cached_nodes.erase(u);
          cached.erase(victims[0]);
          free_slots.push_back(victims[0]);
        }
      }
      ASSERT_EQ(policy.size(), cached.size());
      if (step % 50 == 0) policy.check_invariants();
    }
    policy.check_invariants();
  }
}

}  // namespace
}  // namespace kvbm::detail
