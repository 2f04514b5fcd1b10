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
//
// Attachments: typed values per registered hash (attach_unique<T> / attach<T> / get<T>), and
// touch callbacks (on_touch). They live exactly as long as the registry knows the hash, and are
// destroyed when it forgets it (the last block and WeakBlock naming it are gone) — possibly
// inside a manager call, so attachment destructors must not call back into kvbm. Closures given
// to Attachments<T>::with_* run under that hash's attachments lock (taken with no other kvbm lock
// held): they may call other kvbm APIs, but not the attachment APIs of the same hash.
// Lock order: store mutex -> registry shard mutex (leaf); attachments lock -> anything.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <typeindex>
#include <typeinfo>
#include <vector>

#include "kvbm/detail/function_ref.hpp"
#include "kvbm/errors.hpp"
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
/// How a type is attached to one hash: one value (attach_unique) or a list (attach).
enum class AttachmentMode : std::uint8_t { Unique, Multiple };
/// Type-erased visitor over the values of one type attached to one hash.
using AttachmentVisitor =
    FunctionRef<void(AttachmentMode, std::span<const std::shared_ptr<void>>)>;
}  // namespace detail

/// A type was attached to one hash both with attach_unique and with attach.
class AttachmentError : public Error {
 public:
  using Error::Error;
};

class BlockRegistry;

/// The values of type T attached to one hash: what BlockRegistry::get<T>(hash) returns. A view
/// that looks the hash up on each call; empty once the registry forgets the hash.
template <class T>
class Attachments {
 public:
  /// Calls f(T&) on the unique T (attach_unique) under the attachments lock; whether one exists.
  template <class F>
  bool with_unique(F&& f) const;
  /// Calls f(T&) on each T added with attach(), in order; returns how many.
  template <class F>
  std::size_t with_multiple(F&& f) const;
  /// Calls f(T&) on every T, whichever way it was attached; returns how many.
  template <class F>
  std::size_t with_all(F&& f) const;
  /// A copy of the unique T, if any.
  [[nodiscard]] std::optional<T> unique() const
    requires std::copy_constructible<T>;
  /// Copies of every T (the unique one, or the attach() list in order).
  [[nodiscard]] std::vector<T> all() const
    requires std::copy_constructible<T>;
  [[nodiscard]] std::size_t count() const {
    return with_all([](T&) {});
  }

 private:
  friend class BlockRegistry;
  Attachments(const BlockRegistry& registry, const SequenceHash& hash);
  template <class F>
  std::size_t visit(bool unique, bool multiple, F& f) const;

  std::shared_ptr<detail::RegistryCore> core_;
  SequenceHash hash_;
};

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

  // ---- attachments and touch callbacks (per registered hash) ----

  /// Attaches `value` as the one T of `hash`, replacing (and destroying) any previous one.
  /// Returns false, storing nothing, when `hash` is not registered. Throws AttachmentError if
  /// T is already attached to `hash` with attach().
  template <class T>
  bool attach_unique(const SequenceHash& hash, T value) const {
    return attach_erased(hash, typeid(T), detail::AttachmentMode::Unique,
                         std::make_shared<T>(std::move(value)));
  }
  /// Appends `value` to the list of Ts of `hash`. Returns false, storing nothing, when `hash` is
  /// not registered. Throws AttachmentError if T is already attached with attach_unique().
  template <class T>
  bool attach(const SequenceHash& hash, T value) const {
    return attach_erased(hash, typeid(T), detail::AttachmentMode::Multiple,
                         std::make_shared<T>(std::move(value)));
  }
  /// The Ts attached to `hash`.
  template <class T>
  [[nodiscard]] Attachments<T> get(const SequenceHash& hash) const {
    return Attachments<T>(*this, hash);
  }
  /// Adds a callback that touch(hash) runs (after the tracker touch, outside every lock, with
  /// the hash). Returns false, storing nothing, when `hash` is not registered. Managers' own
  /// touches (matches, registrations) count in the tracker only and run no callbacks.
  bool on_touch(const SequenceHash& hash, std::function<void(const SequenceHash&)> callback) const;

  friend bool operator==(const BlockRegistry& a, const BlockRegistry& b) noexcept {
    return a.core_ == b.core_;
  }

  /// For the library's managers; not for users.
  [[nodiscard]] const std::shared_ptr<detail::RegistryCore>& core() const noexcept { return core_; }

 private:
  explicit BlockRegistry(std::shared_ptr<detail::RegistryCore> core) : core_{std::move(core)} {}
  [[nodiscard]] std::vector<bool> check_presence(const void* tier,
                                                 std::span<const SequenceHash> hashes) const;
  bool attach_erased(const SequenceHash& hash, const std::type_info& type,
                     detail::AttachmentMode mode, std::shared_ptr<void> value) const;
  /// Runs `visit` on the values of `type` attached to `hash` (if any) under its attachments
  /// lock; returns whether there were any.
  static bool visit_attachments(detail::RegistryCore& core, const SequenceHash& hash,
                                const std::type_info& type, detail::AttachmentVisitor visit);
  template <class T>
  friend class Attachments;

  std::shared_ptr<detail::RegistryCore> core_;
};

// ---- Attachments<T> ----

template <class T>
Attachments<T>::Attachments(const BlockRegistry& registry, const SequenceHash& hash)
    : core_{registry.core()}, hash_{hash} {}

template <class T>
template <class F>
std::size_t Attachments<T>::visit(bool unique, bool multiple, F& f) const {
  std::size_t visited = 0;
  BlockRegistry::visit_attachments(
      *core_, hash_, typeid(T),
      [&](detail::AttachmentMode mode, std::span<const std::shared_ptr<void>> values) {
        if (mode == detail::AttachmentMode::Unique ? !unique : !multiple) return;
        for (const auto& value : values) {
          f(*static_cast<T*>(value.get()));
          ++visited;
        }
      });
  return visited;
}

template <class T>
template <class F>
bool Attachments<T>::with_unique(F&& f) const {
  return visit(true, false, f) != 0;
}

template <class T>
template <class F>
std::size_t Attachments<T>::with_multiple(F&& f) const {
  return visit(false, true, f);
}

template <class T>
template <class F>
std::size_t Attachments<T>::with_all(F&& f) const {
  return visit(true, true, f);
}

template <class T>
std::optional<T> Attachments<T>::unique() const
  requires std::copy_constructible<T>
{
  std::optional<T> out;
  with_unique([&](T& value) { out.emplace(value); });
  return out;
}

template <class T>
std::vector<T> Attachments<T>::all() const
  requires std::copy_constructible<T>
{
  std::vector<T> out;
  with_all([&](T& value) { out.push_back(value); });
  return out;
}

}  // namespace kvbm
