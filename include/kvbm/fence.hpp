// kvbm/fence.hpp — kvbm::Fence: one completion of asynchronous work, over any backend.
//
// A fence stands for work enqueued on a stream (a CUDA stream or a kvbm host stream): it is
// ready once that work has finished. Slots carry fences: a slot is never handed out again while
// one of its fences is not ready (deferred reclaim).
// Ownership: copyable; copies share one completion. A default-constructed fence is ready.
// Thread safety: ready() and wait() may be called concurrently from any thread.
// ready() never blocks; wait() blocks until the work has finished.
#pragma once

#include <memory>
#include <utility>

namespace kvbm {

namespace detail {
/// Backend hook: one implementation per stream kind (host worker, CUDA event).
class FenceState {
 public:
  virtual ~FenceState() = default;
  [[nodiscard]] virtual bool ready() const = 0;
  virtual void wait() const = 0;
};
}  // namespace detail

class Fence {
 public:
  Fence() noexcept = default;
  explicit Fence(std::shared_ptr<const detail::FenceState> state) noexcept
      : state_{std::move(state)} {}

  [[nodiscard]] bool ready() const { return state_ == nullptr || state_->ready(); }
  void wait() const {
    if (state_ != nullptr) state_->wait();
  }
  /// The backend state (nullptr for an always-ready fence); for backends, not for users.
  [[nodiscard]] const std::shared_ptr<const detail::FenceState>& state() const noexcept {
    return state_;
  }

 private:
  std::shared_ptr<const detail::FenceState> state_;
};

}  // namespace kvbm
