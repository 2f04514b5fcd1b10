// kvbm/frequency.hpp — the frequency-estimator interface the registry touches.
//
// A registry counts one touch per registration of a new hash and per block returned by
// match_blocks / scan_matches(touch=true). Implementations must be thread-safe: touch() and
// count() are called concurrently from every manager sharing the registry, never under a
// manager's lock for touch().
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "kvbm/sequence_hash.hpp"

namespace kvbm {

class FrequencyTracker {
 public:
  virtual ~FrequencyTracker() = default;
  virtual void touch(u128 key) = 0;
  /// One touch per hash; trackers with a lock override it to take the lock once per batch.
  virtual void touch_many(std::span<const SequenceHash> keys) {
    for (const SequenceHash& key : keys) touch(key.as_u128());
  }
  /// Estimated touches of `key` (an upper bound of the true count until the estimator decays).
  [[nodiscard]] virtual std::uint32_t count(u128 key) const = 0;
};

/// Sketch sizes offered by the registry builder: number of counted keys the sketch is sized for.
enum class FrequencyTrackingCapacity : std::uint32_t {
  Small = 1u << 18,
  Medium = 1u << 21,
  Large = 1u << 24,
};

}  // namespace kvbm
