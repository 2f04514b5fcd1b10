// NVTX ranges of the core block-manager operations (src/block_store.cpp), seen through the
// recording injection library (nvtx_injection.cpp) as in nvtx_test.cpp: one BlockManager is
// driven through allocation, eviction, registration, matching, scanning, a weak upgrade that
// revives a cached block, draining the inactive pool, and a blocking allocation that waits on a
// slot's fence; each must push its range in the "kvbm" domain, with its count as payload.
#include <gtest/gtest.h>

#include "nvtx_records.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvbm/block_manager.hpp"
#include "kvbm/fence.hpp"

namespace kvbm {
namespace {

/// A fence whose work runs when someone waits for it (like a lazily flushed stream): not ready
/// until wait() is called, so a blocking allocation deterministically has to wait on it.
class CompletesOnWait final : public detail::FenceState {
 public:
  [[nodiscard]] bool ready() const override { return done_.load(std::memory_order_acquire); }
  void wait() const override { done_.store(true, std::memory_order_release); }

 private:
  mutable std::atomic<bool> done_{false};
};

SequenceHash hash_of(std::uint64_t value) { return SequenceHash::from_parts(value, std::nullopt, 0); }

TEST(Nvtx, CoreOperationsOpenRangesInTheKvbmDomain) {
#if !defined(KVBM_NVTX_ENABLED)
  GTEST_SKIP() << "built with KVBM_NVTX=OFF: ranges compiled out";
#else
  if (std::getenv("NVTX_INJECTION64_PATH") == nullptr) {
    GTEST_SKIP() << "NVTX_INJECTION64_PATH not set (run through ctest)";
  }
  constexpr std::uint32_t kTokens = 4;
  auto manager = BlockManager<G1>::builder()
                     .block_count(4)
                     .block_size(kTokens)
                     .registry(BlockRegistry::builder().build())
                     .lru_backend()
                     .build();
  const std::vector<SequenceHash> hashes{hash_of(1), hash_of(2), hash_of(3)};

  std::optional<WeakBlock<G1>> weak;
  {
    auto fresh = manager.allocate_blocks(2);  // allocate_blocks#2
    ASSERT_TRUE(fresh.has_value());
    std::vector<CompleteBlock<G1>> staged;
    for (std::size_t i = 0; i < 2; ++i) staged.push_back(std::move((*fresh)[i]).stage(hashes[i], kTokens));
    const auto registered = manager.register_blocks(std::move(staged));  // register_blocks#2
    weak = registered[0].downgrade();
  }  // both cached
  EXPECT_EQ(manager.match_blocks(hashes).size(), 2U);   // match_blocks#3
  EXPECT_EQ(manager.scan_matches(hashes).size(), 2U);   // scan_matches#3
  EXPECT_TRUE(weak->upgrade().has_value());             // cached: upgrade_weak_block
  {
    auto all = manager.allocate_blocks_with_evictions(4);  // allocate_blocks#4, evict_inactive#2
    ASSERT_TRUE(all.has_value());
    EXPECT_EQ(all->second.size(), 2U);
  }
  {
    auto one = manager.allocate_blocks(1);  // allocate_blocks#1
    ASSERT_TRUE(one.has_value());
    const auto cached = manager.register_block(std::move(one->front()).stage(hashes[2], kTokens));
  }  // register_blocks#1, then cached
  EXPECT_EQ(manager.reset_inactive_pool(), 1U);  // reset_inactive_pool
  {
    auto fenced = manager.allocate_blocks(1);  // allocate_blocks#1
    ASSERT_TRUE(fenced.has_value());
    fenced->front().add_fence(Fence{std::make_shared<CompletesOnWait>()});
  }  // free, but fenced: a blocking allocation of every slot must wait for it
  EXPECT_EQ(manager.available_blocks(), 3U);
  EXPECT_TRUE(manager.allocate_blocks_blocking(4).has_value());  // allocate_blocks#4 x2, wait_for_fences#4
  manager.check_invariants();

  const auto records = test::take_nvtx_records();
  ASSERT_FALSE(records.empty()) << "the injection library recorded nothing";
  const auto pushed = [&](const std::string& range) {
    return std::count(records.begin(), records.end(), "push:kvbm:" + range);
  };
  EXPECT_EQ(pushed("allocate_blocks#2"), 1);
  EXPECT_EQ(pushed("allocate_blocks#1"), 2);
  EXPECT_EQ(pushed("allocate_blocks#4"), 3);  // with evictions; blocking: failed try, then success
  EXPECT_EQ(pushed("evict_inactive#2"), 1);
  EXPECT_EQ(pushed("register_blocks#2"), 1);
  EXPECT_EQ(pushed("register_blocks#1"), 1);
  EXPECT_EQ(pushed("match_blocks#3"), 1);
  EXPECT_EQ(pushed("scan_matches#3"), 1);
  EXPECT_EQ(pushed("upgrade_weak_block"), 1);
  EXPECT_EQ(pushed("reset_inactive_pool"), 1);
  EXPECT_EQ(pushed("wait_for_fences#4"), 1);
  // Nested (evict_inactive inside allocate_blocks) and balanced.
  const auto pushes = std::count_if(records.begin(), records.end(), [](const std::string& r) {
    return r.rfind("push:kvbm:", 0) == 0;
  });
  EXPECT_EQ(pushes, std::count(records.begin(), records.end(), std::string{"pop:kvbm"}));
  const auto evict = std::find(records.begin(), records.end(), "push:kvbm:evict_inactive#2");
  ASSERT_NE(evict, records.end());
  EXPECT_EQ(*std::prev(evict), "push:kvbm:allocate_blocks#4");
#endif
}

}  // namespace
}  // namespace kvbm
