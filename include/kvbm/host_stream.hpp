// kvbm/host_stream.hpp — the host backend: a stream is a worker thread, an event is a fence.
//
// HostStream runs enqueued work in FIFO order on one worker thread, with the semantics of a CUDA
// stream: work enqueued later starts after work enqueued earlier has finished; record() returns a
// Fence that becomes ready once everything enqueued before it has run; wait(fence) makes later
// work start only after the fence is ready. It is a real backend (CPU-only deployments, G2<->G3
// copies) and the backend CI exercises.
// Ownership: HostStream is move-less and owns its thread; the destructor drains queued work and
// joins (work blocked on a fence that never completes would block it: open your gates).
// Thread safety: every member may be called concurrently from any thread.
// Exceptions thrown by enqueued work are kept; synchronize() rethrows the first one. Fences
// recorded after a failed task still complete (the stream keeps running).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <atomic>

#include "kvbm/fence.hpp"

namespace kvbm {

/// A one-shot completion flag usable as a Fence: ready once signal() was called.
/// Thread safety: signal(), ready() and wait() may race freely.
class HostEvent final : public detail::FenceState {
 public:
  HostEvent() = default;
  HostEvent(const HostEvent&) = delete;
  HostEvent& operator=(const HostEvent&) = delete;

  [[nodiscard]] bool ready() const override { return done_.load(std::memory_order_acquire); }
  void wait() const override;
  /// Completes the event and wakes every waiter; idempotent.
  void signal() noexcept;

 private:
  std::atomic<bool> done_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
};

/// A test and control gate: its fence is ready once open() was called. `stream.wait(gate.fence())`
/// holds a stream "in flight" deterministically until the gate opens. The destructor opens the
/// gate, so a forgotten gate cannot deadlock a stream's destructor.
class HostGate {
 public:
  HostGate() : event_{std::make_shared<HostEvent>()} {}
  HostGate(const HostGate&) = delete;
  HostGate& operator=(const HostGate&) = delete;
  ~HostGate() { event_->signal(); }

  void open() noexcept { event_->signal(); }
  [[nodiscard]] bool is_open() const noexcept { return event_->ready(); }
  [[nodiscard]] Fence fence() const { return Fence{event_}; }

 private:
  std::shared_ptr<HostEvent> event_;
};

class HostStream {
 public:
  using Task = std::function<void()>;

  HostStream();
  HostStream(const HostStream&) = delete;
  HostStream& operator=(const HostStream&) = delete;
  /// Runs every task still queued (in order), then joins the worker.
  ~HostStream();

  /// Enqueues `task`; it runs after every task enqueued before it.
  void enqueue(Task task);
  /// A fence that becomes ready once every task enqueued before this call has run.
  [[nodiscard]] Fence record();
  /// Later tasks start only once `fence` is ready (the worker blocks in fence.wait(); works for
  /// fences of any backend).
  void wait(const Fence& fence);
  /// Blocks until everything enqueued so far has run; rethrows the first task exception (once).
  void synchronize();
  /// True when no enqueued task is pending or running. Never blocks. (A fence completes inside
  /// its task, so right after a fence becomes ready idle() may still briefly say false.)
  [[nodiscard]] bool idle() const;
  /// Tasks run so far (diagnostics, tests).
  [[nodiscard]] std::uint64_t tasks_completed() const noexcept {
    return completed_.load(std::memory_order_acquire);
  }
  /// True when called from this stream's worker thread.
  [[nodiscard]] bool on_worker_thread() const noexcept {
    return std::this_thread::get_id() == worker_.get_id();
  }

 private:
  void run();

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;
  std::deque<Task> queue_;
  bool stopping_{false};
  bool busy_{false};
  std::exception_ptr first_error_;
  std::atomic<std::uint64_t> completed_{0};
  std::thread worker_;  // last: starts after every other member is constructed
};

}  // namespace kvbm
