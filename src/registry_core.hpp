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
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "kvbm/frequency.hpp"
#include "kvbm/sequence_hash.hpp"

namespace kvbm::detail {

inline constexpr std::size_t kMaxTiers = 8;

struct SequenceHashHasher {
  std::size_t operator()(const SequenceHash& h) const noexcept { return h.mix(); }
};

class RegistryEntry {
 public:
  SequenceHash hash;
  std::uint32_t refs = 0;
  std::array<std::uint32_t, kMaxTiers> presence{};
  std::uint32_t shard = 0;
  RegistryEntry* next_free = nullptr;
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
  void release_locked(Shard& shard, RegistryEntry* entry) noexcept;

  std::array<Shard, kShards> shards_;
  mutable std::mutex tiers_mutex_;
  std::array<const void*, kMaxTiers> tiers_{};
  std::size_t tier_count_ = 0;
  std::shared_ptr<FrequencyTracker> tracker_;
};

}  // namespace kvbm::detail
