// kvbm/tinylfu.hpp — TinyLFU count-min sketch used for frequency-tiered eviction.
//
// 4-bit saturating counters packed 16 per 64-bit word, depth 4, width max(1, capacity/4) words.
// Every increment that changes a counter counts towards the sample size; after 10 x capacity
// counted increments all counters halve (aging). estimate() is the minimum of the four counters,
// never below the true count of a key until the first halving.
// Thread safety: TinyLfu itself is not synchronised; TinyLfuTracker wraps it in a mutex.
// Cells: blocked — a key's four counters are four distinct nibbles of one word, chosen from one
// 64-bit mix of the key (keys are already hashes): one cache line and one load/store per
// increment. Complexity: O(1) per operation; halving is O(width).
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "kvbm/frequency.hpp"

namespace kvbm {

namespace detail {
struct TinyLfuCells;  // a key's word and four nibbles; defined in tinylfu.cpp
}  // namespace detail

class TinyLfu {
 public:
  static constexpr std::uint32_t kDepth = 4;
  static constexpr std::uint32_t kMaxCount = 15;

  /// `capacity` = number of keys the sketch is sized for; must be > 0.
  explicit TinyLfu(std::uint64_t capacity);
  /// Like above with an explicit aging period (counted increments between halvings); 0 = never.
  TinyLfu(std::uint64_t capacity, std::uint64_t decay_after);

  void increment(u128 key) noexcept;
  /// Exactly increment() of each key in order (aging included), but pipelined: the cells of the
  /// next keys are hashed and prefetched while the current key's counters are updated.
  void increment_many(std::span<const SequenceHash> keys) noexcept;
  [[nodiscard]] std::uint32_t estimate(u128 key) const noexcept;
  /// Halves every counter now (what aging does automatically).
  void halve() noexcept;

  [[nodiscard]] std::uint64_t width_words() const noexcept { return table_.size(); }
  [[nodiscard]] std::uint64_t sample_size() const noexcept { return size_; }
  [[nodiscard]] std::uint64_t decay_after() const noexcept { return decay_after_; }

 private:
  void apply(const detail::TinyLfuCells& cells) noexcept;

  std::vector<std::uint64_t> table_;
  std::uint64_t size_ = 0;
  std::uint64_t decay_after_;
};

/// FrequencyTracker over a TinyLfu guarded by one mutex (a leaf lock).
class TinyLfuTracker final : public FrequencyTracker {
 public:
  explicit TinyLfuTracker(FrequencyTrackingCapacity capacity)
      : sketch_{static_cast<std::uint64_t>(capacity)} {}
  explicit TinyLfuTracker(TinyLfu sketch) : sketch_{std::move(sketch)} {}

  void touch(u128 key) override {
    std::lock_guard lock{mutex_};
    sketch_.increment(key);
  }
  void touch_many(std::span<const SequenceHash> keys) override {
    std::lock_guard lock{mutex_};
    sketch_.increment_many(keys);
  }
  [[nodiscard]] std::uint32_t count(u128 key) const override {
    std::lock_guard lock{mutex_};
    return sketch_.estimate(key);
  }

 private:
  mutable std::mutex mutex_;
  TinyLfu sketch_;
};

}  // namespace kvbm
