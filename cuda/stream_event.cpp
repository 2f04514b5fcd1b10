// CUDA backend: events, the event pool and CUDA fences (kvbm/cuda/event.hpp).
#include <atomic>
#include <mutex>
#include <vector>

#include "kvbm/cuda/event.hpp"

namespace kvbm {

bool CudaEvent::query() const {
  const cudaError_t status = cudaEventQuery(event_);
  if (status == cudaSuccess) return true;
  if (status == cudaErrorNotReady) {
    static_cast<void>(cudaGetLastError());  // not sticky, but keep the runtime's slot clean
    return false;
  }
  KVBM_CUDA_TRY(status);
  return false;
}

struct EventPool::State {
  std::mutex mutex;
  std::vector<cudaEvent_t> free;  // idle events, recorded again only when handed out
  std::size_t created{0};

  cudaEvent_t acquire() {
    {
      std::lock_guard lock{mutex};
      if (!free.empty()) {
        cudaEvent_t event = free.back();
        free.pop_back();
        return event;
      }
      // Creation serialised per pool: concurrent cudaEventCreate is expensive (PyTorch's note).
      cudaEvent_t event = nullptr;
      KVBM_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
      ++created;
      return event;
    }
  }
  void release(cudaEvent_t event) noexcept {
    std::lock_guard lock{mutex};
    free.push_back(event);  // never destroyed while locked; destroyed with the state
  }
  ~State() {
    for (cudaEvent_t event : free) KVBM_CUDA_ASSERT_OK(cudaEventDestroy(event));
  }
};

namespace {

/// One pooled event generation, shared by every copy of the Fence.
class CudaEventFence final : public detail::FenceState {
 public:
  CudaEventFence(std::shared_ptr<EventPool::State> pool, cudaEvent_t event) noexcept
      : pool_{std::move(pool)}, event_{event} {}
  CudaEventFence(const CudaEventFence&) = delete;
  CudaEventFence& operator=(const CudaEventFence&) = delete;
  ~CudaEventFence() override { pool_->release(event_); }

  // Never throws (the block store polls fences from noexcept code): an event that reports an
  // error is simply not ready, so the slots it guards stay out of circulation; wait() then
  // throws the CudaError.
  bool ready() const override {
    if (done_.load(std::memory_order_acquire)) return true;
    const cudaError_t status = cudaEventQuery(event_);
    if (status == cudaSuccess) {
      done_.store(true, std::memory_order_release);
      return true;
    }
    static_cast<void>(cudaGetLastError());  // NotReady is not sticky; clear the slot anyway
    return false;
  }
  void wait() const override {
    if (done_.load(std::memory_order_acquire)) return;
    KVBM_CUDA_TRY(cudaEventSynchronize(event_));
    done_.store(true, std::memory_order_release);
  }
  [[nodiscard]] cudaEvent_t event() const noexcept { return event_; }

 private:
  std::shared_ptr<EventPool::State> pool_;
  cudaEvent_t event_;
  mutable std::atomic<bool> done_{false};
};

}  // namespace

EventPool::EventPool() : state_{std::make_shared<State>()} {}
EventPool::~EventPool() = default;

Fence EventPool::record(CudaStreamView stream) {
  cudaEvent_t event = state_->acquire();
  const cudaError_t status = cudaEventRecord(event, stream);
  if (status != cudaSuccess) {
    state_->release(event);
    KVBM_CUDA_TRY(status);
  }
  return Fence{std::make_shared<const CudaEventFence>(state_, event)};
}

std::size_t EventPool::created() const noexcept {
  std::lock_guard lock{state_->mutex};
  return state_->created;
}

std::size_t EventPool::idle() const noexcept {
  std::lock_guard lock{state_->mutex};
  return state_->free.size();
}

cudaEvent_t fence_event(const Fence& fence) noexcept {
  const auto* state = dynamic_cast<const CudaEventFence*>(fence.state().get());
  return state == nullptr ? nullptr : state->event();
}

void stream_wait(CudaStreamView stream, const Fence& fence) {
  if (fence.ready()) return;
  if (cudaEvent_t event = fence_event(fence); event != nullptr) {
    KVBM_CUDA_TRY(cudaStreamWaitEvent(stream, event, 0));
  } else {
    fence.wait();  // a host-backend fence: order on the host
  }
}

}  // namespace kvbm
