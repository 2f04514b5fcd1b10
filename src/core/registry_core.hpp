// src/registry_core.hpp — the registry's shared state (internal).
//
// Entries live in per-shard slabs and are recycled through a free list, so registering a new
// hash allocates nothing in steady state. All entry fields are guarded by the entry's shard
// mutex. Shard mutexes are leaf locks: they may be taken under a manager's store lock, and
// nothing is called while one is held.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <typeindex>
#include <vector>

#include "kvbm/frequency.hpp"
#include "kvbm/registry.hpp"
#include "kvbm/sequence_hash.hpp"

namespace kvbm::detail {

inline constexpr std::size_t kMaxTiers = 8;

struct SequenceHashHasher {
  std::size_t operator()(const SequenceHash& h) const noexcept { return h.mix(); }
};

/// Typed attachments and touch callbacks of one hash, created on first use. Guarded by its own
/// mutex (not the shard's), which is never taken while a kvbm lock is held.
struct EntryExtras {
  struct Typed {
    std::type_index type;
    AttachmentMode mode;
    std::vector<std::shared_ptr<void>> values;
  };
  std::mutex mutex;
  std::vector<Typed> typed;  // a handful of types per hash: linear search
  std::vector<std::shared_ptr<const std::function<void(const SequenceHash&)>>> touch_callbacks;
};

class RegistryEntry {
 public:
  SequenceHash hash;
  std::uint32_t refs = 0;
  std::array<std::uint32_t, kMaxTiers> presence{};
  std::uint32_t shard = 0;
  RegistryEntry* next_free = nullptr;
  std::unique_ptr<EntryExtras> extras;  // null until something is attached
};

class RegistryCore {
 public:
  explicit RegistryCore(std::shared_ptr<FrequencyTracker> tracker) : tracker_{std::move(tracker)} {}
  RegistryCore(const RegistryCore&) = delete;
  RegistryCore& operator=(const RegistryCore&) = delete;

  /// Index of a tier in presence arrays, registering it on first use. Throws ConfigError
  /// when more than kMaxTiers tiers share the registry.
  std::size_t tier_index(const void* tier_key);

  /// Get-or-create with one reference; `created` tells whether the hash was new.
  RegistryEntry* acquire(const SequenceHash& hash, bool* created);
  void retain(RegistryEntry* entry) noexcept;
  void release(RegistryEntry* entry) noexcept;
  /// acquire + one presence count for `tier`.
  RegistryEntry* acquire_present(const SequenceHash& hash, std::size_t tier, bool* created);
  /// One presence count less for `tier`, then release.
  void release_present(RegistryEntry* entry, std::size_t tier) noexcept;

  [[nodiscard]] bool is_registered(const SequenceHash& hash) const;
  [[nodiscard]] std::size_t registered_count() const;
  [[nodiscard]] std::vector<bool> check_presence(const void* tier_key,
                                                 std::span<const SequenceHash> hashes) const;
  [[nodiscard]] const std::shared_ptr<FrequencyTracker>& tracker() const noexcept { return tracker_; }

  /// Runs fn(extras) for a registered `hash` under the extras mutex, holding a reference on the
  /// entry but no shard lock. `create` makes the extras on first use; returns false (fn not
  /// run) when the hash is not registered, or has no extras and !create.
  bool with_extras(const SequenceHash& hash, bool create, FunctionRef<void(EntryExtras&)> fn);

 private:
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kChunk = 256;

  struct alignas(64) Shard {
    mutable std::mutex mutex;
    absl::flat_hash_map<SequenceHash, RegistryEntry*, SequenceHashHasher> map;
    std::vector<std::unique_ptr<RegistryEntry[]>> chunks;
    RegistryEntry* free_list = nullptr;
  };

  static std::uint32_t shard_of(const SequenceHash& hash) noexcept {
    return static_cast<std::uint32_t>(hash.mix() >> 58);
  }
  RegistryEntry* acquire_locked(Shard& shard, std::uint32_t index, const SequenceHash& hash,
                                bool* created);
  /// Drops one reference; when it was the last, recycles the entry and hands back its extras
  /// so the caller destroys them after unlocking.
  [[nodiscard]] std::unique_ptr<EntryExtras> release_locked(Shard& shard,
                                                            RegistryEntry* entry) noexcept;

  std::array<Shard, kShards> shards_;
  mutable std::mutex tiers_mutex_;
  std::array<const void*, kMaxTiers> tiers_{};
  std::size_t tier_count_ = 0;
  std::shared_ptr<FrequencyTracker> tracker_;
};

}  // namespace kvbm::detail
