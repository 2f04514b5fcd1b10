// Host backend: HostStream / HostEvent / HostGate / Fence ordering.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kvbm/fence.hpp"
#include "kvbm/host_stream.hpp"

namespace kvbm {
namespace {

/// Fences complete inside their task: wait until the worker also returned from it.
void wait_idle(const HostStream& stream) {
  while (!stream.idle()) std::this_thread::yield();
}

TEST(HostStream, RunsTasksInEnqueueOrder) {
  HostStream stream;
  std::vector<int> order;  // touched only by the worker until synchronize()
  for (int i = 0; i < 1000; ++i) stream.enqueue([&order, i] { order.push_back(i); });
  stream.synchronize();
  ASSERT_EQ(order.size(), 1000U);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_GE(stream.tasks_completed(), 1000U);
  wait_idle(stream);
  EXPECT_EQ(stream.tasks_completed(), 1001U);  // + synchronize's own record
}

TEST(HostStream, DefaultFenceIsReady) {
  Fence fence;
  EXPECT_TRUE(fence.ready());
  fence.wait();
  EXPECT_EQ(fence.state(), nullptr);
}

TEST(HostStream, RecordedFenceCompletesOnlyAfterPriorWork) {
  HostStream stream;
  HostGate gate;
  std::atomic<bool> ran{false};
  stream.wait(gate.fence());
  stream.enqueue([&ran] { ran.store(true); });
  const Fence fence = stream.record();
  const Fence copy = fence;  // copies share one completion
  EXPECT_FALSE(fence.ready());
  EXPECT_FALSE(copy.ready());
  EXPECT_FALSE(ran.load());
  EXPECT_FALSE(stream.idle());
  gate.open();
  copy.wait();
  EXPECT_TRUE(fence.ready());
  EXPECT_TRUE(ran.load());
}

TEST(HostStream, StreamWaitsOnAnotherStreamsFence) {
  HostStream producer;
  HostStream consumer;
  HostGate gate;
  std::atomic<int> value{0};
  producer.wait(gate.fence());
  producer.enqueue([&value] { value.store(42); });
  const Fence produced = producer.record();
  consumer.wait(produced);
  int seen = -1;
  consumer.enqueue([&value, &seen] { seen = value.load(); });
  const Fence consumed = consumer.record();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(consumed.ready());  // held behind the producer's gate
  gate.open();
  consumed.wait();
  EXPECT_EQ(seen, 42);
}

TEST(HostStream, WaitOnReadyFenceEnqueuesNothing) {
  HostStream stream;
  stream.synchronize();
  wait_idle(stream);
  const auto before = stream.tasks_completed();
  stream.wait(Fence{});
  stream.synchronize();
  wait_idle(stream);
  EXPECT_EQ(stream.tasks_completed(), before + 1);  // only synchronize's own record
}

TEST(HostStream, TaskExceptionIsRethrownBySynchronizeOnce) {
  HostStream stream;
  stream.enqueue([] { throw std::runtime_error("boom"); });
  const Fence after = stream.record();
  after.wait();  // fences after a failed task still complete
  EXPECT_THROW(stream.synchronize(), std::runtime_error);
  EXPECT_NO_THROW(stream.synchronize());
}

TEST(HostStream, DestructorDrainsQueuedWork) {
  std::atomic<int> count{0};
  {
    HostStream stream;
    HostGate gate;
    stream.wait(gate.fence());
    for (int i = 0; i < 100; ++i) stream.enqueue([&count] { count.fetch_add(1); });
    // gate's destructor opens it before the stream's destructor drains
  }
  EXPECT_EQ(count.load(), 100);
}

TEST(HostStream, ConcurrentProducersKeepPerProducerOrder) {
  HostStream stream;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::vector<int>> seen(kThreads);
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&stream, &seen, t] {
      for (int i = 0; i < kPerThread; ++i) {
        stream.enqueue([&seen, t, i] { seen[static_cast<std::size_t>(t)].push_back(i); });
        if (i % 97 == 0) static_cast<void>(stream.record().ready());
      }
    });
  }
  for (auto& p : producers) p.join();
  stream.synchronize();
  for (const auto& s : seen) {
    ASSERT_EQ(s.size(), static_cast<std::size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) EXPECT_EQ(s[static_cast<std::size_t>(i)], i);
  }
}

TEST(HostStream, FencesCompleteInStreamOrder) {
  HostStream stream;
  HostGate gate;
  stream.wait(gate.fence());
  std::vector<Fence> fences;
  for (int i = 0; i < 50; ++i) {
    stream.enqueue([] {});
    fences.push_back(stream.record());
  }
  for (const auto& f : fences) EXPECT_FALSE(f.ready());
  gate.open();
  // Poll from another thread while the worker completes them: once fence i is ready, every
  // earlier fence must be ready too.
  for (int round = 0; round < 1000 && !fences.back().ready(); ++round) {
    for (std::size_t i = 1; i < fences.size(); ++i) {
      if (fences[i].ready()) {
        EXPECT_TRUE(fences[i - 1].ready());
      }
    }
  }
  fences.back().wait();
  for (const auto& f : fences) EXPECT_TRUE(f.ready());
}

TEST(HostGate, OpensOnceAndFromAnyThread) {
  HostGate gate;
  const Fence fence = gate.fence();
  EXPECT_FALSE(gate.is_open());
  std::thread opener{[&gate] { gate.open(); }};
  fence.wait();
  opener.join();
  EXPECT_TRUE(gate.is_open());
  gate.open();  // idempotent
  EXPECT_TRUE(fence.ready());
}

TEST(HostEvent, ManyWaitersWakeUp) {
  auto event = std::make_shared<HostEvent>();
  const Fence fence{event};
  std::atomic<int> woke{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) waiters.emplace_back([&] { fence.wait(); woke.fetch_add(1); });
  event->signal();
  for (auto& w : waiters) w.join();
  EXPECT_EQ(woke.load(), 8);
}

}  // namespace
}  // namespace kvbm
