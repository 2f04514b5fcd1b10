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

/// The entries of one shard keyed by their hash: open addressing with linear probing over a
/// power-of-two array of entry pointers (8 bytes a slot, at most 3/4 full counting tombstones).
/// Growth allocates the new array before touching the old one, so a failed growth (bad_alloc)
/// leaves the table as it was; absl's flat_hash_map of this Debian release does not (a failed
/// resize leaves it corrupt), and it stores the 16-byte key a second time.
class EntryTable {
 public:
  [[nodiscard]] RegistryEntry* find(const SequenceHash& hash) const noexcept {
    if (size_ == 0) return nullptr;
    for (std::size_t i = hash.mix() & mask_;; i = (i + 1) & mask_) {
      RegistryEntry* e = slots_[i];
      if (e == nullptr) return nullptr;
      if (e != tombstone() && e->hash == hash) return e;
    }
  }
  /// Room for one more insert; throws std::bad_alloc with nothing changed.
  void reserve_one();
  /// Precondition: absent, and reserve_one() called since the last insert.
  void insert(RegistryEntry* entry) noexcept;
  /// Precondition: present.
  void erase(const SequenceHash& hash) noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  static RegistryEntry* tombstone() noexcept {
    return reinterpret_cast<RegistryEntry*>(std::uintptr_t{1});
  }
  std::unique_ptr<RegistryEntry*[]> slots_;
  std::size_t mask_ = 0;  // capacity - 1 (capacity 0 until the first insert)
  std::size_t size_ = 0;
  std::size_t used_ = 0;  // live + tombstones
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
    EntryTable map;
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
