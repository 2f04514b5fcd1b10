// The steady state allocates no heap memory per block: the number of allocations a whole
// allocate -> stage -> register -> match -> drop cycle makes does not grow with the batch size
// (only the result vectors the calls return are allocated, once per call).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "test_helpers.hpp"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_allocations{0};
}  // namespace

// Counts every allocation of the process while a test window is open. Sized/aligned variants
// forward here through the standard library's defaults.
void* operator new(std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace kvbm::test {
namespace {

std::size_t allocations_per_cycle(BlockManager<G1>& manager, std::size_t batch, std::uint64_t& next) {
  auto cycle = [&] {
    std::vector<SequenceHash> hashes;
    hashes.reserve(batch);
    for (std::size_t i = 0; i < batch; ++i) hashes.push_back(synth_hash(next++, 0));
    auto blocks = manager.allocate_blocks(batch).value();  // evicts the previous cycle's blocks
    std::vector<CompleteBlock<G1>> staged;
    staged.reserve(batch);
    for (std::size_t i = 0; i < batch; ++i) {
      staged.push_back(std::move(blocks[i]).stage(hashes[i], manager.block_size()));
    }
    auto registered = manager.register_blocks(std::move(staged));
    auto matched = manager.match_blocks(hashes);
    EXPECT_EQ(matched.size(), batch);
  };
  // Warm up until every slot has been evicted and re-registered twice: registry slabs and hash
  // maps have then reached their steady-state size.
  for (std::size_t warmup = 0; warmup < 2 * manager.total_blocks() / batch + 4; ++warmup) cycle();
  g_allocations.store(0);
  g_counting.store(true);
  constexpr int kCycles = 16;
  for (int i = 0; i < kCycles; ++i) cycle();
  g_counting.store(false);
  return g_allocations.load() / kCycles;
}

TEST(HeapAllocation, PerCycleCountDoesNotGrowWithBatchSize) {
  for (const bool with_tracker : {false, true}) {
    SCOPED_TRACE(with_tracker ? "with TinyLFU tracker" : "without tracker");
    auto builder = BlockRegistry::builder();
    if (with_tracker) builder.frequency_tracker(FrequencyTrackingCapacity::Small);
    auto manager = BlockManager<G1>::builder()
                       .block_count(256)
                       .block_size(kTestBlockSize)
                       .registry(builder.build())
                       .build();
    std::uint64_t next = 1;
    const std::size_t small = allocations_per_cycle(manager, 4, next);
    const std::size_t large = allocations_per_cycle(manager, 128, next);
    // A per-block allocation would add >= 124 per cycle between the two batch sizes. What may
    // remain is amortized growth of small registry shard tables to their high-water mark.
    EXPECT_LE(large, small + 3) << "allocations per cycle grew with the batch size";
    EXPECT_LE(large, 10u) << "a cycle is five calls, each returning about one vector";
    manager.check_invariants();
  }
}

TEST(HeapAllocation, AppendingMatchIntoAReusedVectorAllocatesNothing) {
  auto manager = BlockManager<G1>::builder()
                     .block_count(64)
                     .block_size(kTestBlockSize)
                     .registry(BlockRegistry::builder()
                                   .frequency_tracker(FrequencyTrackingCapacity::Small)
                                   .build())
                     .build();
  std::vector<SequenceHash> hashes;
  for (std::uint64_t i = 0; i < 32; ++i) hashes.push_back(synth_hash(100 + i, 0));
  auto blocks = manager.allocate_blocks(hashes.size()).value();
  std::vector<CompleteBlock<G1>> staged;
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    staged.push_back(std::move(blocks[i]).stage(hashes[i], manager.block_size()));
  }
  auto held = manager.register_blocks(std::move(staged));
  while (held.size() > 16) held.pop_back();  // the rest is cached: matching revives it, dropping caches it
  std::vector<ImmutableBlock<G1>> reused;
  EXPECT_EQ(manager.match_blocks(hashes, reused), hashes.size());  // sizes `reused` once
  reused.clear();
  g_allocations.store(0);
  g_counting.store(true);
  for (int i = 0; i < 16; ++i) {
    const std::size_t found = manager.match_blocks(hashes, reused);
    reused.clear();
    if (found != hashes.size()) break;
  }
  g_counting.store(false);
  EXPECT_EQ(g_allocations.load(), 0u);
  EXPECT_EQ(manager.match_blocks(hashes, reused), hashes.size());
  manager.check_invariants();
}

}  // namespace
}  // namespace kvbm::test
