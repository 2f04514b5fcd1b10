// kvbm/registry.hpp — the sequence-hash registry shared by the managers of every tier.
//
// The registry knows which hashes are registered anywhere (a block of some tier holds it, or a
// WeakBlock still names it), which tier holds each hash (presence), and how often each hash was
// used (optional frequency tracker). BlockRegistry is a cheap handle: copies share one registry.
//
// Thread safety: every method is safe to call concurrently. Internally the registry is sharded by
// hash and its locks are leaves: nothing is called back while they are held.
// Complexity: O(1) expected per hash.
// Presence is exact at every quiescent point: it is updated inside the owning manager's critical
// section, so it never lags a completed call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvbm/frequency.hpp"
#include "kvbm/sequence_hash.hpp"

namespace kvbm {

namespace detail {
class RegistryCore;
template <class Tier>
inline constexpr char tier_tag = 0;
/// Address unique to each tier type: the key of per-tier presence.
template <class Tier>
const void* tier_key() noexcept {
  return &tier_tag<Tier>;
}
}  // namespace detail

class BlockRegistry {
 public:
  class Builder {
   public:
    /// Counts usage in a TinyLFU sketch of the given size (required by the multi-LRU backend).
    Builder& frequency_tracker(FrequencyTrackingCapacity capacity);
    /// Counts usage in a tracker of the caller's (for example one that records touches).
    Builder& frequency_tracker(std::shared_ptr<FrequencyTracker> tracker);
    [[nodiscard]] BlockRegistry build() const;

   private:
    std::shared_ptr<FrequencyTracker> tracker_;
  };

  [[nodiscard]] static Builder builder() { return Builder{}; }

  /// True while any block of any tier holds `hash` (primary, duplicate or cached), or a
  /// WeakBlock names it.
  [[nodiscard]] bool is_registered(const SequenceHash& hash) const;
  /// Number of registered hashes.
  [[nodiscard]] std::size_t registered_count() const;

  /// For each hash: whether a block of tier `Tier` holds it (primary, duplicate or inactive).
  template <class Tier>
  [[nodiscard]] std::vector<bool> check_presence(std::span<const SequenceHash> hashes) const {
    return check_presence(detail::tier_key<Tier>(), hashes);
  }

  [[nodiscard]] bool has_frequency_tracking() const noexcept;
  /// The tracker's estimate for `hash`, 0 without a tracker.
  [[nodiscard]] std::uint32_t count(const SequenceHash& hash) const;
  /// One touch of `hash` in the tracker (no-op without one).
  void touch(const SequenceHash& hash) const;
  [[nodiscard]] const std::shared_ptr<FrequencyTracker>& frequency_tracker() const noexcept;

  friend bool operator==(const BlockRegistry& a, const BlockRegistry& b) noexcept {
    return a.core_ == b.core_;
  }

  /// For the library's managers; not for users.
  [[nodiscard]] const std::shared_ptr<detail::RegistryCore>& core() const noexcept { return core_; }

 private:
  explicit BlockRegistry(std::shared_ptr<detail::RegistryCore> core) : core_{std::move(core)} {}
  [[nodiscard]] std::vector<bool> check_presence(const void* tier,
                                                 std::span<const SequenceHash> hashes) const;

  std::shared_ptr<detail::RegistryCore> core_;
};

}  // namespace kvbm
