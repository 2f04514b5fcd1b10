// TransferEngine on the host backend: bytes end to end, coalescing counted, fences, validation.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <atomic>
#include <random>
#include <thread>
#include <stdexcept>
#include <vector>

#include "kvbm/errors.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/transfer_engine.hpp"

namespace kvbm {
namespace {

/// Host memory standing in for a tier's KV bytes; block b is filled with a pattern of (tag, b).
struct Arena {
  Arena(std::size_t blocks, std::size_t stride, std::uint8_t tag) : bytes(blocks * stride) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<std::byte>((tag * 31 + i / stride * 7 + i) & 0xff);
    }
  }
  std::vector<std::byte> bytes;
};

std::size_t count_runs(const std::vector<BlockId>& src, const std::vector<BlockId>& dst) {
  std::size_t runs = 0;
  for (std::size_t i = 0; i < src.size(); ++i) {
    if (i == 0 || src[i] != src[i - 1] + 1 || dst[i] != dst[i - 1] + 1) ++runs;
  }
  return runs;
}

TEST(TransferEngine, CopiesBytesAndCoalescesRuns) {
  constexpr std::size_t kStride = 256;
  Arena g1{64, kStride, 1};
  Arena g2{64, kStride, 2};
  const Arena g2_before = g2;
  const PhysicalPool src{ManagerId{1}, g1.bytes.data(), 64, kStride, MemoryKind::PinnedHost};
  const PhysicalPool dst{ManagerId{2}, g2.bytes.data(), 64, kStride, MemoryKind::Host};
  HostStream stream;
  TransferEngine engine{make_host_copy_backend()};
  const std::vector<BlockId> src_ids{0, 1, 2, 3, 10, 11, 20};
  const std::vector<BlockId> dst_ids{5, 6, 7, 8, 30, 31, 40};
  engine.copy_blocks(src, src_ids, dst, dst_ids, stream).wait();

  const auto stats = engine.stats();
  EXPECT_EQ(stats.calls, 1U);
  EXPECT_EQ(stats.copies, 3U);  // [0..3]->[5..8], [10,11]->[30,31], [20]->[40]
  EXPECT_EQ(stats.blocks, 7U);
  EXPECT_EQ(stats.bytes, 7U * kStride);
  for (BlockId b = 0; b < 64; ++b) {
    const auto it = std::find(dst_ids.begin(), dst_ids.end(), b);
    const std::byte* want = it == dst_ids.end()
                                ? g2_before.bytes.data() + b * kStride
                                : g1.bytes.data() + src_ids[static_cast<std::size_t>(it - dst_ids.begin())] * kStride;
    EXPECT_EQ(std::memcmp(g2.bytes.data() + b * kStride, want, kStride), 0) << "block " << b;
  }
}

TEST(TransferEngine, StridedPoolsCopyOnlyBlockBytes) {
  // Blocks of 48 bytes inside 64-byte strides; the 16-byte gaps must stay untouched.
  Arena a{16, 64, 3};
  Arena b{16, 64, 4};
  const Arena b_before = b;
  const PhysicalPool src{ManagerId{1}, a.bytes.data(), 16, 64, MemoryKind::Host, 48};
  const PhysicalPool dst{ManagerId{2}, b.bytes.data(), 16, 64, MemoryKind::Host, 48};
  HostStream stream;
  TransferEngine engine{make_host_copy_backend()};
  engine.copy_blocks(src, std::vector<BlockId>{4, 5, 6}, dst, std::vector<BlockId>{0, 1, 2}, stream)
      .wait();
  EXPECT_EQ(engine.stats().copies, 1U);
  for (std::size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(std::memcmp(b.bytes.data() + k * 64, a.bytes.data() + (4 + k) * 64, 48), 0);
    EXPECT_EQ(std::memcmp(b.bytes.data() + k * 64 + 48, b_before.bytes.data() + k * 64 + 48, 16), 0);
  }
}

TEST(TransferEngine, FenceCoversTheCopyInFlight) {
  Arena a{8, 128, 5};
  Arena b{8, 128, 6};
  const Arena b_before = b;
  const PhysicalPool src{ManagerId{1}, a.bytes.data(), 8, 128, MemoryKind::PinnedHost};
  const PhysicalPool dst{ManagerId{2}, b.bytes.data(), 8, 128, MemoryKind::PinnedHost};
  HostStream stream;
  HostGate gate;
  stream.wait(gate.fence());
  TransferEngine engine{make_host_copy_backend()};
  const Fence fence = engine.copy_blocks(src, std::vector<BlockId>{1, 2}, dst,
                                         std::vector<BlockId>{3, 4}, stream);
  EXPECT_FALSE(fence.ready());
  EXPECT_EQ(std::memcmp(b.bytes.data(), b_before.bytes.data(), b.bytes.size()), 0);
  gate.open();
  fence.wait();
  EXPECT_EQ(std::memcmp(b.bytes.data() + 3 * 128, a.bytes.data() + 1 * 128, 256), 0);
}

TEST(TransferEngine, RoundTripG1ToG2AndBack) {
  Arena g1{32, 64, 7};
  const Arena original = g1;
  Arena g2{32, 64, 8};
  const PhysicalPool p1{ManagerId{1}, g1.bytes.data(), 32, 64, MemoryKind::PinnedHost};
  const PhysicalPool p2{ManagerId{2}, g2.bytes.data(), 32, 64, MemoryKind::Host};
  HostStream stream;
  TransferEngine engine{make_host_copy_backend()};
  std::vector<BlockId> ids(32);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<BlockId> reversed(ids.rbegin(), ids.rend());
  engine.copy_blocks(p1, ids, p2, reversed, stream).wait();  // offload, reversed: 32 copies
  EXPECT_EQ(engine.stats().copies, 32U);
  std::memset(g1.bytes.data(), 0, g1.bytes.size());  // G1 slots reused only after the fence
  engine.copy_blocks(p2, reversed, p1, ids, stream).wait();  // onboard back
  EXPECT_EQ(g1.bytes, original.bytes);
}

TEST(TransferEngine, RandomizedAgainstPlainCopies) {
  std::mt19937 rng{42};
  HostStream stream;
  TransferEngine engine{make_host_copy_backend()};
  std::uint64_t expected_copies = 0;
  for (int round = 0; round < 200; ++round) {
    const std::size_t stride = 8 * std::uniform_int_distribution<std::size_t>(1, 8)(rng);
    Arena a{40, stride, static_cast<std::uint8_t>(round)};
    Arena b{40, stride, static_cast<std::uint8_t>(round + 1)};
    Arena want = b;
    std::vector<BlockId> all(40);
    std::iota(all.begin(), all.end(), 0);
    std::vector<BlockId> dst_all = all;
    std::shuffle(dst_all.begin(), dst_all.end(), rng);
    const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
    // Sources: a random ascending subset with runs; destinations: runs, sometimes shuffled.
    std::vector<BlockId> src_ids(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
    const BlockId offset = std::uniform_int_distribution<BlockId>(0, 40 - static_cast<BlockId>(n))(rng);
    std::vector<BlockId> dst_ids(n);
    const bool shuffled = round % 3 == 0;
    for (std::size_t i = 0; i < n; ++i) dst_ids[i] = shuffled ? dst_all[i] : offset + static_cast<BlockId>(i);
    if (round % 5 == 0 && n > 2) {  // break a source run
      std::reverse(src_ids.begin(), src_ids.begin() + 2);
    }
    for (std::size_t i = 0; i < n; ++i) {
      std::memcpy(want.bytes.data() + dst_ids[i] * stride, a.bytes.data() + src_ids[i] * stride, stride);
    }
    const PhysicalPool src{ManagerId{1}, a.bytes.data(), 40, stride, MemoryKind::Host};
    const PhysicalPool dst{ManagerId{2}, b.bytes.data(), 40, stride, MemoryKind::Host};
    engine.copy_blocks(src, src_ids, dst, dst_ids, stream).wait();
    ASSERT_EQ(b.bytes, want.bytes) << "round " << round;
    expected_copies += count_runs(src_ids, dst_ids);
    ASSERT_EQ(engine.stats().copies, expected_copies);
  }
}

TEST(TransferEngine, RejectsInvalidCopiesBeforeEnqueueing) {
  Arena a{8, 64, 1};
  Arena b{8, 32, 2};
  const PhysicalPool p{ManagerId{1}, a.bytes.data(), 8, 64, MemoryKind::Host};
  const PhysicalPool narrow{ManagerId{2}, b.bytes.data(), 8, 32, MemoryKind::Host};
  const PhysicalPool device{ManagerId{3}, a.bytes.data(), 8, 64, MemoryKind::Device};
  HostStream stream;
  TransferEngine engine{make_host_copy_backend()};
  const std::vector<BlockId> one{1};
  EXPECT_THROW(engine.copy_blocks(p, std::vector<BlockId>{1, 2}, p, one, stream), std::invalid_argument);
  EXPECT_THROW(engine.copy_blocks(p, one, narrow, one, stream), std::invalid_argument);
  EXPECT_THROW(engine.copy_blocks(p, std::vector<BlockId>{8}, p, std::vector<BlockId>{0}, stream), std::out_of_range);
  EXPECT_THROW(engine.copy_blocks(p, std::vector<BlockId>{1, 2}, p, std::vector<BlockId>{3, 3}, stream), std::invalid_argument);
  EXPECT_THROW(engine.copy_blocks(p, std::vector<BlockId>{1, 2}, p, std::vector<BlockId>{2, 3}, stream), std::invalid_argument);
  EXPECT_THROW(engine.copy_blocks(device, one, p, std::vector<BlockId>{2}, stream), Error);
  EXPECT_THROW(engine.copy_blocks(p, one, p, std::vector<BlockId>{2}, StreamRef::cuda(nullptr)), Error);
  EXPECT_THROW((PhysicalPool{ManagerId{1}, a.bytes.data(), 8, 32, MemoryKind::Host, 64}), ConfigError);
  EXPECT_THROW((PhysicalPool{ManagerId{1}, nullptr, 8, 32, MemoryKind::Host}), ConfigError);
  EXPECT_TRUE(engine.copy_blocks(p, {}, p, {}, stream).ready());
  EXPECT_EQ(engine.stats().calls, 0U);
}

// One engine, several threads, each with its own stream and pools (and one shared stream).
TEST(TransferEngine, ConcurrentCallersShareOneEngine) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 50;
  TransferEngine engine{make_host_copy_backend()};
  HostStream shared;
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HostStream own;
      Arena a{16, 64, static_cast<std::uint8_t>(t)};
      Arena b{16, 64, static_cast<std::uint8_t>(t + 10)};
      const PhysicalPool src{ManagerId{1}, a.bytes.data(), 16, 64, MemoryKind::Host};
      const PhysicalPool dst{ManagerId{2}, b.bytes.data(), 16, 64, MemoryKind::Host};
      for (int r = 0; r < kRounds; ++r) {
        const BlockId s0 = static_cast<BlockId>(r % 7);
        HostStream& stream = r % 2 == 0 ? own : shared;
        engine.copy_blocks(src, std::vector<BlockId>{s0, s0 + 1}, dst,
                           std::vector<BlockId>{s0 + 8, s0 + 9}, stream)
            .wait();
        if (std::memcmp(b.bytes.data() + (s0 + 8) * 64, a.bytes.data() + s0 * 64, 128) != 0) {
          mismatches.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(engine.stats().calls, static_cast<std::uint64_t>(kThreads * kRounds));
  EXPECT_EQ(engine.stats().copies, static_cast<std::uint64_t>(kThreads * kRounds));
}

/// Stands in for ImmutableBlock / LifecyclePinRef / MutableBlock: records the fences attached.
struct FakeSlot {
  ManagerId manager;
  BlockId id;
  mutable std::vector<Fence> fences;
  [[nodiscard]] ManagerId manager_id() const { return manager; }
  [[nodiscard]] BlockId block_id() const { return id; }
  void add_fence(Fence fence) const { fences.push_back(std::move(fence)); }
};

TEST(TransferEngine, HandleOverloadAttachesTheFenceToEverySlot) {
  Arena a{8, 64, 1};
  Arena b{8, 64, 2};
  const PhysicalPool src{ManagerId{1}, a.bytes.data(), 8, 64, MemoryKind::PinnedHost};
  const PhysicalPool dst{ManagerId{2}, b.bytes.data(), 8, 64, MemoryKind::Host};
  std::vector<FakeSlot> pins{{ManagerId{1}, 3, {}}, {ManagerId{1}, 4, {}}};
  std::vector<FakeSlot> targets{{ManagerId{2}, 0, {}}, {ManagerId{2}, 1, {}}};
  HostStream stream;
  HostGate gate;
  stream.wait(gate.fence());
  TransferEngine engine{make_host_copy_backend()};
  const Fence fence = engine.copy_blocks(src, std::span<FakeSlot>{pins}, dst,
                                         std::span<FakeSlot>{targets}, stream);
  for (const auto& s : pins) {
    ASSERT_EQ(s.fences.size(), 1U);
    EXPECT_FALSE(s.fences[0].ready());
  }
  for (const auto& s : targets) ASSERT_EQ(s.fences.size(), 1U);
  gate.open();
  fence.wait();
  EXPECT_TRUE(pins[0].fences[0].ready());
  EXPECT_EQ(std::memcmp(b.bytes.data(), a.bytes.data() + 3 * 64, 128), 0);

  std::vector<FakeSlot> foreign{{ManagerId{9}, 0, {}}};
  EXPECT_THROW(engine.copy_blocks(src, std::span<FakeSlot>{foreign}, dst,
                                  std::span<FakeSlot>{targets}.first(1), stream),
               ForeignBlock);
}

}  // namespace
}  // namespace kvbm
