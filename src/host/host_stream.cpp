// Host backend: HostStream / HostEvent (kvbm/host_stream.hpp).
#include "kvbm/host_stream.hpp"

#include <utility>

namespace kvbm {

void HostEvent::wait() const {
  if (done_.load(std::memory_order_acquire)) return;
  std::unique_lock lock{mutex_};
  cv_.wait(lock, [this] { return done_.load(std::memory_order_acquire); });
}

void HostEvent::signal() noexcept {
  {
    // Store under the mutex so a waiter between its predicate check and its sleep cannot miss it.
    std::lock_guard lock{mutex_};
    done_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

HostStream::HostStream() : worker_{[this] { run(); }} {}

HostStream::~HostStream() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  work_cv_.notify_all();
  worker_.join();
}

void HostStream::enqueue(Task task) {
  {
    std::lock_guard lock{mutex_};
    queue_.push_back(std::move(task));
  }
  work_cv_.notify_one();
}

Fence HostStream::record() {
  auto event = std::make_shared<HostEvent>();
  enqueue([event] { event->signal(); });
  return Fence{std::move(event)};
}

void HostStream::wait(const Fence& fence) {
  if (fence.ready()) return;  // already complete: nothing to order against
  enqueue([fence] { fence.wait(); });
}

void HostStream::synchronize() {
  record().wait();
  std::exception_ptr error;
  {
    std::lock_guard lock{mutex_};
    error = std::exchange(first_error_, nullptr);
  }
  if (error) std::rethrow_exception(error);
}

bool HostStream::idle() const {
  std::lock_guard lock{mutex_};
  return queue_.empty() && !busy_;
}

void HostStream::run() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock{mutex_};
      busy_ = false;
      work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    try {
      task();
    } catch (...) {
      std::lock_guard lock{mutex_};
      if (!first_error_) first_error_ = std::current_exception();
    }
    task = nullptr;  // destroy captures before the task counts as done
    completed_.fetch_add(1, std::memory_order_acq_rel);
  }
}

}  // namespace kvbm
