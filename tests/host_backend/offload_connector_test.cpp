// The example offload connector (examples/offload_connector.hpp) on the host backend: bytes
// survive G1 -> G2 offload, G1 eviction and G2 -> G1 onboarding; and slots a copy still reads or
// writes are never handed out, even after every handle on them was dropped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <unordered_set>
#include <vector>

#include "offload_connector.hpp"

namespace kvbm {
namespace {

using examples::OffloadConnector;

constexpr std::size_t kG1Blocks = 4;
constexpr std::size_t kG2Blocks = 8;
constexpr std::uint32_t kTokens = 4;
constexpr std::size_t kStride = 64;

SequenceHash hash_of(std::uint64_t value) { return SequenceHash::from_parts(value, std::nullopt, 0); }

/// The bytes the "prefill" writes for `hash`: unique per hash and per byte position.
std::vector<std::byte> pattern(const SequenceHash& hash) {
  std::vector<std::byte> bytes(kStride);
  const std::uint64_t seed = std::hash<SequenceHash>{}(hash);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::byte>((seed >> ((i % 8) * 8)) ^ (i * 31));
  }
  return bytes;
}

std::vector<SequenceHash> hashes_from(std::uint64_t first, std::size_t n) {
  std::vector<SequenceHash> hashes;
  for (std::size_t i = 0; i < n; ++i) hashes.push_back(hash_of(first + i));
  return hashes;
}

/// Two tiers on one registry, their host buffers, a stream and an engine.
class OffloadConnectorTest : public ::testing::Test {
 protected:
  OffloadConnectorTest()
      : registry{BlockRegistry::builder().build()},
        g1{BlockManager<G1>::builder().block_count(kG1Blocks).block_size(kTokens)
               .registry(registry).lru_backend().build()},
        g2{BlockManager<G2>::builder().block_count(kG2Blocks).block_size(kTokens)
               .registry(registry).duplication_policy(DuplicationPolicy::Reject)
               .lru_backend().build()},
        g1_bytes(kG1Blocks * kStride, std::byte{0}),
        g2_bytes(kG2Blocks * kStride, std::byte{0}),
        g1_pool{g1.id(), g1_bytes.data(), kG1Blocks, kStride, MemoryKind::Host},
        g2_pool{g2.id(), g2_bytes.data(), kG2Blocks, kStride, MemoryKind::Host},
        connector{std::make_unique<OffloadConnector>(g1, g1_pool, g2, g2_pool, engine, stream)} {}

  ~OffloadConnectorTest() override {
    stream.synchronize();
    g1.check_invariants();
    g2.check_invariants();
  }

  /// Allocates through the connector, writes pattern(hash) into each slot, stores (offloads).
  std::vector<ImmutableBlock<G1>> prefill(const std::vector<SequenceHash>& hashes,
                                          std::vector<SequenceHash>* evicted = nullptr) {
    auto allocation = connector->allocate(hashes.size());
    EXPECT_TRUE(allocation.has_value());
    if (!allocation) return {};
    if (evicted != nullptr) *evicted = allocation->evicted;
    std::vector<CompleteBlock<G1>> staged;
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      const auto bytes = pattern(hashes[i]);
      std::memcpy(g1_pool.address(allocation->blocks[i].block_id()), bytes.data(), kStride);
      staged.push_back(std::move(allocation->blocks[i]).stage(hashes[i], kTokens));
    }
    return connector->store(std::move(staged));
  }

  /// True when G1 slot `id` holds exactly the bytes written for `hash`.
  bool g1_holds(BlockId id, const SequenceHash& hash) const {
    return std::memcmp(g1_pool.address(id), pattern(hash).data(), kStride) == 0;
  }
  /// The G2 slots whose bytes are exactly pattern(hash).
  std::size_t g2_copies_of(const SequenceHash& hash) const {
    std::size_t n = 0;
    for (BlockId id = 0; id < kG2Blocks; ++id) {
      n += std::memcmp(g2_pool.address(id), pattern(hash).data(), kStride) == 0 ? 1 : 0;
    }
    return n;
  }

  BlockRegistry registry;
  BlockManager<G1> g1;
  BlockManager<G2> g2;
  std::vector<std::byte> g1_bytes;
  std::vector<std::byte> g2_bytes;
  PhysicalPool g1_pool;
  PhysicalPool g2_pool;
  HostStream stream;  // declared after the buffers: drained before they go
  TransferEngine engine{make_host_copy_backend()};
  std::unique_ptr<OffloadConnector> connector;
};

// A is offloaded, evicted from G1 by B, then onboarded back: every G1 slot holding one of A's
// hashes holds exactly A's bytes; then a partial G1 hit is extended from G2.
TEST_F(OffloadConnectorTest, BytesSurviveOffloadEvictionAndOnboarding) {
  const auto a = hashes_from(100, kG1Blocks);
  const auto b = hashes_from(200, kG1Blocks);

  prefill(a);  // dropped at once: cached in G1, offload in flight
  connector->drain();
  EXPECT_EQ(connector->stats().offloads_completed, kG1Blocks);
  for (const auto& hash : a) EXPECT_EQ(g2_copies_of(hash), 1U);

  std::vector<SequenceHash> evicted;
  prefill(b, &evicted);
  EXPECT_EQ(std::unordered_set<SequenceHash>(evicted.begin(), evicted.end()),
            std::unordered_set<SequenceHash>(a.begin(), a.end()));
  EXPECT_EQ(connector->stats().evicted_in_g2, kG1Blocks);
  EXPECT_EQ(connector->stats().evicted_lost, 0U);
  EXPECT_TRUE(g1.match_blocks(a).empty());  // A is gone from G1 ...
  connector->drain();

  {
    const auto prefix = connector->match(a);  // ... and comes back from G2, evicting B
    ASSERT_EQ(prefix.size(), a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(prefix[i].sequence_hash(), a[i]);
      EXPECT_TRUE(g1_holds(prefix[i].block_id(), a[i])) << "block " << i;
    }
  }
  EXPECT_EQ(connector->stats().onboarded, kG1Blocks);
  EXPECT_EQ(connector->stats().evicted_lost, 0U);

  {
    // Only B's first two blocks come back to G1; then all of B: two G1 hits + two from G2.
    const auto head = connector->match(std::span<const SequenceHash>{b}.first(2));
    ASSERT_EQ(head.size(), 2U);
    auto onboarding = connector->start_onboarding(b);
    EXPECT_EQ(onboarding.cached.size(), 2U);
    EXPECT_EQ(onboarding.arriving.size(), 2U);
    const auto prefix = connector->finish_onboarding(std::move(onboarding));
    ASSERT_EQ(prefix.size(), b.size());
    for (std::size_t i = 0; i < b.size(); ++i) {
      EXPECT_EQ(prefix[i].sequence_hash(), b[i]);
      EXPECT_TRUE(g1_holds(prefix[i].block_id(), b[i])) << "block " << i;
    }
  }
  EXPECT_EQ(connector->stats().onboarded, kG1Blocks + 4);
  EXPECT_EQ(connector->stats().offloads_started, 2 * kG1Blocks);  // onboarded blocks: not again
  EXPECT_EQ(connector->stats().offloads_skipped, 0U);
}

// While an offload is held at a gate, its G1 sources stay registered (pinned) and cannot be
// evicted; G1 allocation must not wait for them when nothing else is needed.
TEST_F(OffloadConnectorTest, OffloadSourcesArePinnedUntilTheCopyCompletes) {
  const auto a = hashes_from(100, 2);
  HostGate gate;
  stream.wait(gate.fence());
  std::set<BlockId> sources;
  for (const auto& block : prefill(a)) sources.insert(block.block_id());
  EXPECT_EQ(connector->offloads_in_flight(), 2U);
  EXPECT_EQ(connector->poll(), 0U);

  // Only the two untouched slots can be handed out; A is still a G1 hit.
  EXPECT_EQ(g1.available_blocks(), kG1Blocks - 2);
  EXPECT_FALSE(g1.allocate_blocks(kG1Blocks - 1).has_value());
  {
    auto others = connector->allocate(kG1Blocks - 2);
    ASSERT_TRUE(others.has_value());
    for (const auto& block : others->blocks) EXPECT_EQ(sources.count(block.block_id()), 0U);
  }
  EXPECT_EQ(g1.match_blocks(a).size(), a.size());
  EXPECT_TRUE(g2.match_blocks(a).empty());  // not registered in G2 before the bytes landed
  for (const auto& hash : a) EXPECT_EQ(g2_copies_of(hash), 0U);

  gate.open();
  connector->drain();
  EXPECT_EQ(connector->offloads_in_flight(), 0U);
  EXPECT_EQ(g2.match_blocks(a).size(), a.size());
  for (const auto& hash : a) EXPECT_EQ(g2_copies_of(hash), 1U);
  EXPECT_EQ(g1.available_blocks(), kG1Blocks);  // pins dropped: A is cached, evictable
}

// The connector is torn down (pins and staged G2 blocks dropped) while its offload is held in
// flight: the copy's fences keep both the G1 sources and the G2 destinations out of circulation
// until it has finished, so nothing overwrites the slots the copy reads or writes.
TEST_F(OffloadConnectorTest, FencedSlotsAreNotHandedOutWhileAnOffloadIsInFlight) {
  const auto a = hashes_from(100, kG1Blocks);
  HostGate gate;
  stream.wait(gate.fence());
  prefill(a);  // handles dropped at once
  EXPECT_EQ(connector->offloads_in_flight(), kG1Blocks);
  connector.reset();  // every pin and staged G2 block is gone; the copy is still held

  EXPECT_EQ(g1.available_blocks(), 0U);
  EXPECT_FALSE(g1.allocate_blocks(1).has_value());
  EXPECT_EQ(g1.metrics().fenced_slots, static_cast<std::int64_t>(kG1Blocks));
  EXPECT_EQ(g2.available_blocks(), kG2Blocks - kG1Blocks);
  EXPECT_FALSE(g2.allocate_blocks(kG2Blocks - kG1Blocks + 1).has_value());
  {
    // The unfenced G2 slots may be reused meanwhile; scribble over them.
    auto others = g2.allocate_blocks(kG2Blocks - kG1Blocks);
    ASSERT_TRUE(others.has_value());
    for (const auto& block : *others) std::memset(g2_pool.address(block.block_id()), 0xEE, kStride);
  }
  for (const auto& hash : a) EXPECT_EQ(g2_copies_of(hash), 0U);

  gate.open();
  stream.synchronize();
  for (const auto& hash : a) EXPECT_EQ(g2_copies_of(hash), 1U) << "the copy landed untouched";
  EXPECT_EQ(g1.available_blocks(), kG1Blocks);
  EXPECT_EQ(g2.available_blocks(), kG2Blocks);
  EXPECT_TRUE(g1.allocate_blocks(kG1Blocks).has_value());
  EXPECT_GE(g1.metrics().fence_reclaims, kG1Blocks);
}

// An onboarding abandoned while its G2 -> G1 copy is held: the G1 destinations are not handed
// out until the copy ends; the G2 sources stay cached (matchable) and are not recycled either.
TEST_F(OffloadConnectorTest, AbandonedOnboardingKeepsItsSlotsFenced) {
  const auto a = hashes_from(100, 2);
  prefill(a);
  connector->drain();
  EXPECT_EQ(g1.reset_inactive_pool(), a.size());  // A only in G2 now
  ASSERT_TRUE(g1.match_blocks(a).empty());

  HostGate gate;
  stream.wait(gate.fence());
  std::set<BlockId> targets;
  {
    auto onboarding = connector->start_onboarding(a);
    ASSERT_EQ(onboarding.arriving.size(), a.size());
    EXPECT_FALSE(onboarding.ready.ready());
    for (const auto& block : onboarding.arriving) targets.insert(block.block_id());
  }  // abandoned: staged G1 blocks and G2 sources dropped mid-copy

  EXPECT_EQ(g1.available_blocks(), kG1Blocks - a.size());
  {
    auto others = g1.allocate_blocks(kG1Blocks - a.size());
    ASSERT_TRUE(others.has_value());
    for (const auto& block : others.value()) EXPECT_EQ(targets.count(block.block_id()), 0U);
    EXPECT_FALSE(g1.allocate_blocks(1).has_value());
  }
  EXPECT_EQ(g2.match_blocks(a).size(), a.size());  // cached hits on fenced slots still work
  EXPECT_FALSE(g2.allocate_blocks(kG2Blocks - a.size() + 1).has_value());

  gate.open();
  stream.synchronize();
  for (const BlockId id : targets) {
    EXPECT_TRUE(g1_holds(id, a[0]) || g1_holds(id, a[1])) << "G1 slot " << id;
  }
  EXPECT_EQ(g1.available_blocks(), kG1Blocks);
  EXPECT_TRUE(g2.allocate_blocks(kG2Blocks).has_value());
}

}  // namespace
}  // namespace kvbm
