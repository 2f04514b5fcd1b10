// TransferEngine with real block handles (host backend): the copy's fence is attached to the
// source pins and the destination blocks, and the block managers keep those slots out of
// circulation until the copy has finished, whatever order the handles are dropped in.
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "kvbm/block_manager.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/transfer_engine.hpp"

namespace kvbm {
namespace {

constexpr std::size_t kBlocks = 4;
constexpr std::uint32_t kTokens = 4;
constexpr std::size_t kStride = 128;

SequenceHash hash_of(std::uint64_t value) { return SequenceHash::from_parts(value, std::nullopt, 0); }

class OffloadFlow : public ::testing::TestWithParam<bool> {};

// G1 -> G2 offload held in flight at a gate; handles dropped (sources first or destinations
// first); no fenced slot is handed out before the gate opens; the bytes arrive intact.
TEST_P(OffloadFlow, FencedSlotsAreNotReusedBeforeTheCopyCompletes) {
  const bool drop_sources_first = GetParam();
  const BlockRegistry registry = BlockRegistry::builder().build();
  auto g1 = BlockManager<G1>::builder().block_count(kBlocks).block_size(kTokens).registry(registry).build();
  auto g2 = BlockManager<G2>::builder().block_count(kBlocks).block_size(kTokens).registry(registry).build();
  std::vector<std::byte> g1_bytes(kBlocks * kStride);
  std::vector<std::byte> g2_bytes(kBlocks * kStride, std::byte{0});
  for (std::size_t i = 0; i < g1_bytes.size(); ++i) g1_bytes[i] = static_cast<std::byte>(i * 7 + 1);
  const PhysicalPool p1{g1.id(), g1_bytes.data(), kBlocks, kStride, MemoryKind::PinnedHost};
  const PhysicalPool p2{g2.id(), g2_bytes.data(), kBlocks, kStride, MemoryKind::Host};

  // Two registered G1 blocks (the offload sources), pinned.
  auto sources = g1.allocate_blocks(2);
  ASSERT_TRUE(sources.has_value());
  std::vector<CompleteBlock<G1>> complete;
  for (std::size_t i = 0; i < 2; ++i) complete.push_back(std::move((*sources)[i]).stage(hash_of(100 + i), kTokens));
  std::vector<ImmutableBlock<G1>> registered = g1.register_blocks(std::move(complete));
  std::vector<LifecyclePinRef> pins;
  for (const auto& b : registered) pins.push_back(b.pin());
  std::set<BlockId> source_ids;
  for (const auto& p : pins) source_ids.insert(p.block_id());

  // Two G2 destinations.
  auto targets = g2.allocate_blocks(2);
  ASSERT_TRUE(targets.has_value());
  std::set<BlockId> target_ids;
  for (const auto& t : *targets) target_ids.insert(t.block_id());

  HostStream stream;
  HostGate gate;
  stream.wait(gate.fence());
  TransferEngine engine{make_host_copy_backend()};
  const Fence fence = engine.copy_blocks(p1, std::span<LifecyclePinRef>{pins}, p2,
                                         std::span<MutableBlock<G2>>{*targets}, stream);
  ASSERT_FALSE(fence.ready());
  std::vector<BlockId> pin_order;
  std::vector<BlockId> target_order;
  for (const auto& p : pins) pin_order.push_back(p.block_id());
  for (const auto& t : *targets) target_order.push_back(t.block_id());

  auto drop_sources = [&] {
    pins.clear();
    registered.clear();
  };
  auto drop_targets = [&] { targets.reset(); };
  if (drop_sources_first) {
    drop_sources();
    drop_targets();
  } else {
    drop_targets();
    drop_sources();
  }

  // Every handle is gone, the copy is still in flight: only the untouched slots are available.
  EXPECT_EQ(g2.available_blocks(), kBlocks - 2);
  EXPECT_EQ(g1.available_blocks(), kBlocks - 2);
  EXPECT_FALSE(g2.allocate_blocks(kBlocks).has_value());
  EXPECT_FALSE(g1.allocate_blocks(kBlocks).has_value());
  {
    auto others = g2.allocate_blocks(2);
    ASSERT_TRUE(others.has_value());
    for (const auto& b : *others) EXPECT_EQ(target_ids.count(b.block_id()), 0U);
    auto g1_others = g1.allocate_blocks(2);
    ASSERT_TRUE(g1_others.has_value());
    for (const auto& b : *g1_others) EXPECT_EQ(source_ids.count(b.block_id()), 0U);
  }
  EXPECT_EQ(std::count(g2_bytes.begin(), g2_bytes.end(), std::byte{0}),
            static_cast<std::ptrdiff_t>(g2_bytes.size()));  // nothing copied yet

  gate.open();
  fence.wait();
  EXPECT_EQ(g2.available_blocks(), kBlocks);
  EXPECT_EQ(g1.available_blocks(), kBlocks);
  auto all = g2.allocate_blocks(kBlocks);
  EXPECT_TRUE(all.has_value());
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(std::memcmp(g2_bytes.data() + target_order[i] * kStride,
                          g1_bytes.data() + pin_order[i] * kStride, kStride),
              0);
  }
}

INSTANTIATE_TEST_SUITE_P(DropOrder, OffloadFlow, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "SourcesFirst" : "TargetsFirst"; });

}  // namespace
}  // namespace kvbm
