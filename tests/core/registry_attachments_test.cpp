// Typed attachments per hash (attach_unique / attach / get) and touch callbacks (on_touch) on the
// shared BlockRegistry: modes exclusive per type, mutable access, lifetime tied to the hash's
// registration (blocks of any tier, WeakBlocks), callbacks outside locks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/test_helpers.hpp"

namespace kvbm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using test::register_hash;
using test::synth_hash;

struct Fixture {
  std::shared_ptr<test::CountingTracker> tracker = std::make_shared<test::CountingTracker>();
  BlockRegistry registry = BlockRegistry::builder().frequency_tracker(tracker).build();
  BlockManager<G1> g1 = BlockManager<G1>::builder()
                            .block_count(4)
                            .block_size(test::kTestBlockSize)
                            .registry(registry)
                            .lru_backend()
                            .build();
};

/// Sets a flag when destroyed (to observe attachment lifetime).
struct DropFlag {
  std::shared_ptr<std::atomic<int>> drops;
  explicit DropFlag(std::shared_ptr<std::atomic<int>> d) : drops{std::move(d)} {}
  DropFlag(DropFlag&& other) noexcept : drops{std::move(other.drops)} {}
  DropFlag(const DropFlag&) = delete;
  ~DropFlag() {
    if (drops) drops->fetch_add(1);
  }
};

TEST(RegistryAttachments, UniqueAttachReplaceAndGet) {
  Fixture f;
  const auto h = synth_hash(100);
  auto block = register_hash(f.g1, h);
  EXPECT_TRUE(f.registry.attach_unique<int>(h, 5));
  EXPECT_EQ(f.registry.get<int>(h).unique(), 5);
  EXPECT_TRUE(f.registry.attach_unique<int>(h, 7));  // replaces
  EXPECT_EQ(f.registry.get<int>(h).unique(), 7);
  EXPECT_EQ(f.registry.get<int>(h).count(), 1u);
  EXPECT_THAT(f.registry.get<int>(h).all(), ElementsAre(7));
  EXPECT_EQ(f.registry.get<int>(h).with_multiple([](int&) {}), 0u);
  EXPECT_FALSE(f.registry.get<double>(h).unique().has_value());
}

TEST(RegistryAttachments, MultipleAttachKeepsOrder) {
  Fixture f;
  const auto h = synth_hash(101);
  auto block = register_hash(f.g1, h);
  EXPECT_TRUE(f.registry.attach<std::string>(h, "a"));
  EXPECT_TRUE(f.registry.attach<std::string>(h, "b"));
  EXPECT_TRUE(f.registry.attach<std::string>(h, "c"));
  auto view = f.registry.get<std::string>(h);
  EXPECT_THAT(view.all(), ElementsAre("a", "b", "c"));
  EXPECT_FALSE(view.with_unique([](std::string&) {}));
  std::string joined;
  EXPECT_EQ(view.with_multiple([&](std::string& s) { joined += s; }), 3u);
  EXPECT_EQ(joined, "abc");
}

TEST(RegistryAttachments, TypeUsedBothWaysIsAnError) {
  Fixture f;
  const auto h = synth_hash(102);
  auto block = register_hash(f.g1, h);
  ASSERT_TRUE(f.registry.attach_unique<int>(h, 1));
  try {
    f.registry.attach<int>(h, 2);
    FAIL() << "attach after attach_unique must throw";
  } catch (const AttachmentError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("attach_unique"));
  }
  ASSERT_TRUE(f.registry.attach<long>(h, 3));
  EXPECT_THROW(f.registry.attach_unique<long>(h, 4), AttachmentError);
  // Nothing changed, and the error is a kvbm::Error.
  EXPECT_EQ(f.registry.get<int>(h).unique(), 1);
  EXPECT_THAT(f.registry.get<long>(h).all(), ElementsAre(3));
  EXPECT_THROW(f.registry.attach<int>(h, 2), Error);
}

TEST(RegistryAttachments, DifferentTypesAndHashesAreIndependent) {
  Fixture f;
  const auto h1 = synth_hash(103);
  const auto h2 = synth_hash(104);
  auto b1 = register_hash(f.g1, h1);
  auto b2 = register_hash(f.g1, h2);
  EXPECT_TRUE(f.registry.attach_unique<int>(h1, 1));
  EXPECT_TRUE(f.registry.attach<int>(h2, 2));  // the other mode on another hash is fine
  EXPECT_TRUE(f.registry.attach<std::string>(h1, "x"));
  EXPECT_EQ(f.registry.get<int>(h1).unique(), 1);
  EXPECT_THAT(f.registry.get<int>(h2).all(), ElementsAre(2));
  EXPECT_THAT(f.registry.get<std::string>(h1).all(), ElementsAre("x"));
  EXPECT_TRUE(f.registry.get<std::string>(h2).all().empty());
}

TEST(RegistryAttachments, MutableAccessUnderTheLock) {
  Fixture f;
  const auto h = synth_hash(105);
  auto block = register_hash(f.g1, h);
  f.registry.attach_unique<std::vector<int>>(h, {1, 2});
  EXPECT_TRUE(f.registry.get<std::vector<int>>(h).with_unique([](std::vector<int>& v) { v.push_back(3); }));
  EXPECT_THAT(*f.registry.get<std::vector<int>>(h).unique(), ElementsAre(1, 2, 3));
  f.registry.attach<int>(h, 10);
  f.registry.attach<int>(h, 20);
  f.registry.get<int>(h).with_all([](int& v) { v *= 2; });
  EXPECT_THAT(f.registry.get<int>(h).all(), ElementsAre(20, 40));
}

TEST(RegistryAttachments, MoveOnlyValues) {
  Fixture f;
  const auto h = synth_hash(106);
  auto block = register_hash(f.g1, h);
  EXPECT_TRUE(f.registry.attach_unique(h, std::make_unique<int>(42)));
  int seen = 0;
  f.registry.get<std::unique_ptr<int>>(h).with_unique([&](std::unique_ptr<int>& p) { seen = *p; });
  EXPECT_EQ(seen, 42);
}

TEST(RegistryAttachments, UnregisteredHashStoresNothing) {
  Fixture f;
  const auto h = synth_hash(107);
  EXPECT_FALSE(f.registry.attach_unique<int>(h, 1));
  EXPECT_FALSE(f.registry.attach<int>(h, 1));
  EXPECT_FALSE(f.registry.on_touch(h, [](const SequenceHash&) {}));
  EXPECT_EQ(f.registry.get<int>(h).count(), 0u);
  EXPECT_FALSE(f.registry.is_registered(h));
}

TEST(RegistryAttachments, LiveWhileCachedGoneAfterEviction) {
  Fixture f;
  const auto h = synth_hash(108);
  auto drops = std::make_shared<std::atomic<int>>(0);
  {
    auto block = register_hash(f.g1, h);
    ASSERT_TRUE(f.registry.attach_unique(h, DropFlag{drops}));
  }
  // Cached in the inactive pool: still registered, attachment still there.
  EXPECT_TRUE(f.registry.is_registered(h));
  EXPECT_EQ(f.registry.get<DropFlag>(h).count(), 1u);
  EXPECT_EQ(drops->load(), 0);
  // Evicted: the registry forgets the hash and destroys its attachments.
  { auto all = f.g1.allocate_blocks(4); ASSERT_TRUE(all.has_value()); }
  EXPECT_FALSE(f.registry.is_registered(h));
  EXPECT_EQ(drops->load(), 1);
  EXPECT_EQ(f.registry.get<DropFlag>(h).count(), 0u);
  // A later registration of the same hash starts without attachments.
  auto again = register_hash(f.g1, h);
  EXPECT_EQ(f.registry.get<DropFlag>(h).count(), 0u);
}

TEST(RegistryAttachments, AWeakBlockKeepsTheHashAndItsAttachments) {
  Fixture f;
  const auto h = synth_hash(109);
  std::optional<WeakBlock<G1>> weak;
  {
    auto block = register_hash(f.g1, h);
    weak.emplace(block.downgrade());
    f.registry.attach_unique<int>(h, 9);
  }
  { auto all = f.g1.allocate_blocks(4); ASSERT_TRUE(all.has_value()); }  // evicts the block
  EXPECT_TRUE(f.registry.is_registered(h));
  EXPECT_EQ(f.registry.get<int>(h).unique(), 9);
  weak.reset();
  EXPECT_FALSE(f.registry.is_registered(h));
  EXPECT_FALSE(f.registry.get<int>(h).unique().has_value());
}

TEST(RegistryAttachments, SharedAcrossTiersAndDuplicates) {
  Fixture f;
  auto g2 = BlockManager<G2>::builder()
                .block_count(4)
                .block_size(test::kTestBlockSize)
                .registry(f.registry)
                .duplication_policy(DuplicationPolicy::Reject)
                .build();
  const auto h = synth_hash(110);
  auto a = register_hash(f.g1, h);
  auto duplicate = register_hash(f.g1, h);  // Allow: a duplicate with its own slot
  f.registry.attach_unique<std::string>(h, "meta");
  auto b = register_hash(g2, h);
  EXPECT_EQ(f.registry.get<std::string>(h).unique(), "meta");
  // Dropping the duplicate and evicting G1's copy keeps the hash registered through G2.
  { auto gone = std::move(duplicate); }
  { auto gone = std::move(a); }
  { auto all = f.g1.allocate_blocks(4); ASSERT_TRUE(all.has_value()); }
  EXPECT_THAT(f.registry.check_presence<G1>(std::vector{h}), ElementsAre(false));
  EXPECT_THAT(f.registry.check_presence<G2>(std::vector{h}), ElementsAre(true));
  EXPECT_EQ(f.registry.get<std::string>(h).unique(), "meta");
}

// ---------------------------------------------------------------------------------------------
// touch callbacks

TEST(RegistryTouchCallbacks, FireWithTheHashOnTouch) {
  Fixture f;
  const auto h = synth_hash(200);
  auto block = register_hash(f.g1, h);
  std::vector<SequenceHash> seen;
  ASSERT_TRUE(f.registry.on_touch(h, [&](const SequenceHash& x) { seen.push_back(x); }));
  const auto before = f.tracker->touches(h);
  f.registry.touch(h);
  EXPECT_THAT(seen, ElementsAre(h));
  EXPECT_EQ(f.tracker->touches(h), before + 1);  // the tracker still counts it
}

TEST(RegistryTouchCallbacks, MultipleCallbacksRunInOrder) {
  Fixture f;
  const auto h = synth_hash(201);
  auto block = register_hash(f.g1, h);
  std::vector<int> order;
  f.registry.on_touch(h, [&](const SequenceHash&) { order.push_back(1); });
  f.registry.on_touch(h, [&](const SequenceHash&) { order.push_back(2); });
  f.registry.touch(h);
  f.registry.touch(h);
  EXPECT_THAT(order, ElementsAre(1, 2, 1, 2));
}

TEST(RegistryTouchCallbacks, NoCallbacksIsANoOpAndOtherHashesDoNotFire) {
  Fixture f;
  const auto h1 = synth_hash(202);
  const auto h2 = synth_hash(203);
  auto b1 = register_hash(f.g1, h1);
  auto b2 = register_hash(f.g1, h2);
  int fired = 0;
  f.registry.on_touch(h1, [&](const SequenceHash&) { ++fired; });
  f.registry.touch(h2);
  f.registry.touch(synth_hash(999));  // not registered at all
  EXPECT_EQ(fired, 0);
  f.registry.touch(h1);
  EXPECT_EQ(fired, 1);
}

TEST(RegistryTouchCallbacks, CallbacksRunOutsideLocksAndMayUseTheRegistry) {
  Fixture f;
  const auto h = synth_hash(204);
  auto block = register_hash(f.g1, h);
  f.registry.attach_unique<int>(h, 0);
  f.registry.on_touch(h, [&](const SequenceHash& x) {
    f.registry.get<int>(x).with_unique([](int& v) { ++v; });
    (void)f.g1.match_blocks(std::vector{x});  // a manager call from inside the callback
  });
  f.registry.touch(h);
  f.registry.touch(h);
  EXPECT_EQ(f.registry.get<int>(h).unique(), 2);
}

TEST(RegistryTouchCallbacks, ManagerTouchesCountButRunNoCallbacks) {
  Fixture f;
  const auto h = synth_hash(205);
  { auto block = register_hash(f.g1, h); }
  int fired = 0;
  f.registry.on_touch(h, [&](const SequenceHash&) { ++fired; });
  const auto before = f.tracker->touches(h);
  { auto hit = f.g1.match_blocks(std::vector{h}); ASSERT_EQ(hit.size(), 1u); }
  EXPECT_EQ(f.tracker->touches(h), before + 1);
  EXPECT_EQ(fired, 0);
}

// ---------------------------------------------------------------------------------------------
// concurrency: attaching and reading while other threads register, match and evict the hash

TEST(RegistryAttachments, ConcurrentAttachReadAndEviction) {
  Fixture f;
  const auto h = synth_hash(300);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (int i = 0; i < 2000; ++i) {
      { auto block = register_hash(f.g1, h); }
      if (i % 3 == 0) { auto all = f.g1.allocate_blocks(4); }
    }
    stop = true;
  });
  std::thread attacher([&] {
    std::size_t stored = 0;
    while (!stop.load()) {
      stored += f.registry.attach<int>(h, 1) ? 1 : 0;
      (void)f.registry.get<int>(h).count();
      f.registry.on_touch(h, [](const SequenceHash&) {});
      f.registry.touch(h);
    }
    (void)stored;
  });
  churn.join();
  attacher.join();
  f.g1.check_invariants();
}

}  // namespace
}  // namespace kvbm
