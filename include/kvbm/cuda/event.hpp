// kvbm/cuda/event.hpp — CudaEvent (owning), EventPool (recycled events) and CUDA fences.
//
// A CUDA fence (record_fence) shares ownership of one pooled event generation: the event returns
// to its pool only when the last Fence copy dies, so a copy can never watch an event that was
// re-recorded. Completion is cached: once cudaEventQuery succeeded, ready() is one atomic load.
// Events are created with cudaEventDisableTiming (cheapest record/query), under the pool mutex
// only for the free list; no CUDA call is made while holding it except cudaEventCreate.
// A CUDA fence's ready() never throws: an event reporting an error is "not ready" (the slots it
// guards stay out of circulation) and wait() throws the CudaError.
// Thread safety: EventPool and fences are safe from any thread. The pool's state lives until its
// last fence is gone (the EventPool object itself may go earlier).
// CUDA library only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <utility>

#include "kvbm/cuda/error.hpp"
#include "kvbm/cuda/stream.hpp"
#include "kvbm/fence.hpp"

namespace kvbm {

/// One owning cudaEvent_t (move-only). Default flags: cudaEventDisableTiming.
class CudaEvent {
 public:
  explicit CudaEvent(unsigned int flags = cudaEventDisableTiming) {
    KVBM_CUDA_TRY(cudaEventCreateWithFlags(&event_, flags));
  }
  CudaEvent(CudaEvent&& other) noexcept : event_{std::exchange(other.event_, nullptr)} {}
  CudaEvent& operator=(CudaEvent&& other) noexcept {
    if (this != &other) {
      reset();
      event_ = std::exchange(other.event_, nullptr);
    }
    return *this;
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  ~CudaEvent() { reset(); }

  [[nodiscard]] cudaEvent_t value() const noexcept { return event_; }
  void record(CudaStreamView stream) const { KVBM_CUDA_TRY(cudaEventRecord(event_, stream)); }
  /// True when the captured work completed (never blocks); throws CudaError on a real error.
  [[nodiscard]] bool query() const;
  void synchronize() const { KVBM_CUDA_TRY(cudaEventSynchronize(event_)); }
  /// Gives up ownership.
  [[nodiscard]] cudaEvent_t release() noexcept { return std::exchange(event_, nullptr); }

 private:
  void reset() noexcept {
    if (event_ != nullptr) KVBM_CUDA_ASSERT_OK(cudaEventDestroy(std::exchange(event_, nullptr)));
  }
  cudaEvent_t event_{nullptr};
};

class EventPool {
 public:
  /// Events of the current device. Creates nothing up front.
  EventPool();
  ~EventPool();
  EventPool(const EventPool&) = delete;
  EventPool& operator=(const EventPool&) = delete;

  /// Records a pooled event on `stream` and returns it as a Fence.
  [[nodiscard]] Fence record(CudaStreamView stream);
  /// Events created so far / currently idle in the pool (diagnostics, tests).
  [[nodiscard]] std::size_t created() const noexcept;
  [[nodiscard]] std::size_t idle() const noexcept;

  struct State;  // shared with the fences (src: cuda/stream_event.cpp)

 private:
  std::shared_ptr<State> state_;
};

/// Records `stream` into an event from `pool`: ready once the stream's prior work completed.
[[nodiscard]] inline Fence record_fence(CudaStreamView stream, EventPool& pool) {
  return pool.record(stream);
}

/// Makes `stream` wait for `fence`: a GPU-side cudaStreamWaitEvent for a CUDA fence (the host
/// never blocks); for a host-backend fence the calling thread blocks until it is ready (a CUDA
/// stream cannot wait on host work without stalling a driver thread).
void stream_wait(CudaStreamView stream, const Fence& fence);

/// The event behind a CUDA fence, or nullptr for a fence of another backend.
[[nodiscard]] cudaEvent_t fence_event(const Fence& fence) noexcept;

}  // namespace kvbm
