#include "kvbm/registry.hpp"

#include <cassert>
#include <string>

#include "kvbm/errors.hpp"
#include "kvbm/tinylfu.hpp"
#include "registry_core.hpp"

namespace kvbm {
namespace detail {

std::size_t RegistryCore::tier_index(const void* tier_key) {
  std::lock_guard lock{tiers_mutex_};
  for (std::size_t i = 0; i < tier_count_; ++i) {
    if (tiers_[i] == tier_key) return i;
  }
  if (tier_count_ == kMaxTiers) {
    throw ConfigError("registry: at most " + std::to_string(kMaxTiers) +
                      " tiers may share one registry");
  }
  tiers_[tier_count_] = tier_key;
  return tier_count_++;
}

RegistryEntry* RegistryCore::acquire_locked(Shard& shard, std::uint32_t index,
                                            const SequenceHash& hash, bool* created) {
  auto [it, inserted] = shard.map.try_emplace(hash, nullptr);
  if (!inserted) {
    ++it->second->refs;
    if (created != nullptr) *created = false;
    return it->second;
  }
  if (shard.free_list == nullptr) {
    try {
      auto chunk = std::make_unique<RegistryEntry[]>(kChunk);
      for (std::size_t i = 0; i < kChunk; ++i) {
        chunk[i].next_free = shard.free_list;
        shard.free_list = &chunk[i];
      }
      shard.chunks.push_back(std::move(chunk));
    } catch (...) {
      shard.map.erase(it);
      throw;
    }
  }
  RegistryEntry* entry = shard.free_list;
  shard.free_list = entry->next_free;
  entry->hash = hash;
  entry->refs = 1;
  entry->presence.fill(0);
  entry->shard = index;
  entry->next_free = nullptr;
  it->second = entry;
  if (created != nullptr) *created = true;
  return entry;
}

void RegistryCore::release_locked(Shard& shard, RegistryEntry* entry) noexcept {
  assert(entry->refs > 0);
  if (--entry->refs != 0) return;
  shard.map.erase(entry->hash);
  entry->next_free = shard.free_list;
  shard.free_list = entry;
}

RegistryEntry* RegistryCore::acquire(const SequenceHash& hash, bool* created) {
  const auto index = shard_of(hash);
  Shard& shard = shards_[index];
  std::lock_guard lock{shard.mutex};
  return acquire_locked(shard, index, hash, created);
}

void RegistryCore::retain(RegistryEntry* entry) noexcept {
  Shard& shard = shards_[entry->shard];
  std::lock_guard lock{shard.mutex};
  ++entry->refs;
}

void RegistryCore::release(RegistryEntry* entry) noexcept {
  Shard& shard = shards_[entry->shard];
  std::lock_guard lock{shard.mutex};
  release_locked(shard, entry);
}

RegistryEntry* RegistryCore::acquire_present(const SequenceHash& hash, std::size_t tier,
                                             bool* created) {
  const auto index = shard_of(hash);
  Shard& shard = shards_[index];
  std::lock_guard lock{shard.mutex};
  RegistryEntry* entry = acquire_locked(shard, index, hash, created);
  ++entry->presence[tier];
  return entry;
}

void RegistryCore::release_present(RegistryEntry* entry, std::size_t tier) noexcept {
  Shard& shard = shards_[entry->shard];
  std::lock_guard lock{shard.mutex};
  assert(entry->presence[tier] > 0);
  --entry->presence[tier];
  release_locked(shard, entry);
}

bool RegistryCore::is_registered(const SequenceHash& hash) const {
  const Shard& shard = shards_[shard_of(hash)];
  std::lock_guard lock{shard.mutex};
  return shard.map.contains(hash);
}

std::size_t RegistryCore::registered_count() const {
  std::size_t total = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock{shard.mutex};
    total += shard.map.size();
  }
  return total;
}

std::vector<bool> RegistryCore::check_presence(const void* tier_key,
                                               std::span<const SequenceHash> hashes) const {
  std::vector<bool> out(hashes.size(), false);
  std::size_t tier = kMaxTiers;
  {
    std::lock_guard lock{tiers_mutex_};
    for (std::size_t i = 0; i < tier_count_; ++i) {
      if (tiers_[i] == tier_key) tier = i;
    }
  }
  if (tier == kMaxTiers) return out;
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    const Shard& shard = shards_[shard_of(hashes[i])];
    std::lock_guard lock{shard.mutex};
    const auto it = shard.map.find(hashes[i]);
    out[i] = it != shard.map.end() && it->second->presence[tier] > 0;
  }
  return out;
}

}  // namespace detail

BlockRegistry::Builder& BlockRegistry::Builder::frequency_tracker(
    FrequencyTrackingCapacity capacity) {
  tracker_ = std::make_shared<TinyLfuTracker>(capacity);
  return *this;
}

BlockRegistry::Builder& BlockRegistry::Builder::frequency_tracker(
    std::shared_ptr<FrequencyTracker> tracker) {
  tracker_ = std::move(tracker);
  return *this;
}

BlockRegistry BlockRegistry::Builder::build() const {
  return BlockRegistry(std::make_shared<detail::RegistryCore>(tracker_));
}

bool BlockRegistry::is_registered(const SequenceHash& hash) const {
  return core_->is_registered(hash);
}
std::size_t BlockRegistry::registered_count() const { return core_->registered_count(); }
std::vector<bool> BlockRegistry::check_presence(const void* tier,
                                                std::span<const SequenceHash> hashes) const {
  return core_->check_presence(tier, hashes);
}
bool BlockRegistry::has_frequency_tracking() const noexcept { return core_->tracker() != nullptr; }
std::uint32_t BlockRegistry::count(const SequenceHash& hash) const {
  return core_->tracker() ? core_->tracker()->count(hash.as_u128()) : 0;
}
void BlockRegistry::touch(const SequenceHash& hash) const {
  if (core_->tracker()) core_->tracker()->touch(hash.as_u128());
}
const std::shared_ptr<FrequencyTracker>& BlockRegistry::frequency_tracker() const noexcept {
  return core_->tracker();
}

}  // namespace kvbm
