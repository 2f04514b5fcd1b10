#include "kvbm/registry.hpp"

#include <cassert>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/detail/reserve_more.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/tinylfu.hpp"
#include "registry_core.hpp"

namespace kvbm {
namespace detail {

void EntryTable::reserve_one() {
  const std::size_t capacity = slots_ ? mask_ + 1 : 0;
  if ((used_ + 1) * 4 <= capacity * 3) return;
  std::size_t grown = 16;
  while (grown * 3 < (size_ + 1) * 4 * 2) grown *= 2;  // at most 3/8 full after growing
  auto fresh = std::make_unique<RegistryEntry*[]>(grown);  // the only step that can throw
  const std::size_t mask = grown - 1;
  for (std::size_t i = 0; i < capacity; ++i) {
    RegistryEntry* e = slots_[i];
    if (e == nullptr || e == tombstone()) continue;
    std::size_t j = e->hash.mix() & mask;
    while (fresh[j] != nullptr) j = (j + 1) & mask;
    fresh[j] = e;
  }
  slots_ = std::move(fresh);
  mask_ = mask;
  used_ = size_;
}

void EntryTable::insert(RegistryEntry* entry) noexcept {
  std::size_t i = entry->hash.mix() & mask_;
  while (slots_[i] != nullptr && slots_[i] != tombstone()) i = (i + 1) & mask_;
  used_ += slots_[i] == nullptr ? 1 : 0;
  slots_[i] = entry;
  ++size_;
}

void EntryTable::erase(const SequenceHash& hash) noexcept {
  for (std::size_t i = hash.mix() & mask_;; i = (i + 1) & mask_) {
    RegistryEntry* e = slots_[i];
    assert(e != nullptr);
    if (e != tombstone() && e->hash == hash) {
      // A tombstone only where a probe chain runs through; an empty slot ends chains sooner.
      slots_[i] = slots_[(i + 1) & mask_] == nullptr ? nullptr : tombstone();
      used_ -= slots_[i] == nullptr ? 1 : 0;
      --size_;
      return;
    }
  }
}

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
  if (RegistryEntry* found = shard.map.find(hash)) {
    ++found->refs;
    if (created != nullptr) *created = false;
    return found;
  }
  // Both allocations happen before anything changes: a bad_alloc leaves the shard as it was.
  shard.map.reserve_one();
  if (shard.free_list == nullptr) {
    reserve_more(shard.chunks, 1);
    auto chunk = std::make_unique<RegistryEntry[]>(kChunk);
    for (std::size_t i = 0; i < kChunk; ++i) {
      chunk[i].next_free = shard.free_list;
      shard.free_list = &chunk[i];
    }
    shard.chunks.push_back(std::move(chunk));
  }
  RegistryEntry* entry = shard.free_list;
  shard.free_list = entry->next_free;
  entry->hash = hash;
  entry->refs = 1;
  entry->presence.fill(0);
  entry->shard = index;
  entry->next_free = nullptr;
  shard.map.insert(entry);
  if (created != nullptr) *created = true;
  return entry;
}

std::unique_ptr<EntryExtras> RegistryCore::release_locked(Shard& shard,
                                                          RegistryEntry* entry) noexcept {
  assert(entry->refs > 0);
  if (--entry->refs != 0) return nullptr;
  shard.map.erase(entry->hash);
  entry->next_free = shard.free_list;
  shard.free_list = entry;
  return std::move(entry->extras);
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
  std::unique_ptr<EntryExtras> forgotten;  // attachments die after the shard lock is released
  std::lock_guard lock{shard.mutex};
  forgotten = release_locked(shard, entry);
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
  std::unique_ptr<EntryExtras> forgotten;  // attachments die after the shard lock is released
  std::lock_guard lock{shard.mutex};
  assert(entry->presence[tier] > 0);
  --entry->presence[tier];
  forgotten = release_locked(shard, entry);
}

bool RegistryCore::is_registered(const SequenceHash& hash) const {
  const Shard& shard = shards_[shard_of(hash)];
  std::lock_guard lock{shard.mutex};
  return shard.map.find(hash) != nullptr;
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
    const RegistryEntry* entry = shard.map.find(hashes[i]);
    out[i] = entry != nullptr && entry->presence[tier] > 0;
  }
  return out;
}

bool RegistryCore::with_extras(const SequenceHash& hash, bool create,
                               FunctionRef<void(EntryExtras&)> fn) {
  Shard& shard = shards_[shard_of(hash)];
  RegistryEntry* entry = nullptr;
  {
    std::lock_guard lock{shard.mutex};
    entry = shard.map.find(hash);
    if (entry == nullptr) return false;
    if (entry->extras == nullptr) {
      if (!create) return false;
      entry->extras = std::make_unique<EntryExtras>();
    }
    ++entry->refs;  // keeps entry and extras alive while fn runs without the shard lock
  }
  struct Unref {
    RegistryCore* core;
    RegistryEntry* entry;
    ~Unref() { core->release(entry); }
  } unref{this, entry};
  EntryExtras& extras = *entry->extras;  // only released with the entry: stable while we hold it
  std::lock_guard lock{extras.mutex};
  fn(extras);
  return true;
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
  // Callbacks are copied under the attachments lock and run after it is released.
  std::vector<std::shared_ptr<const std::function<void(const SequenceHash&)>>> callbacks;
  core_->with_extras(hash, false,
                     [&](detail::EntryExtras& extras) { callbacks = extras.touch_callbacks; });
  for (const auto& callback : callbacks) (*callback)(hash);
}

bool BlockRegistry::on_touch(const SequenceHash& hash,
                             std::function<void(const SequenceHash&)> callback) const {
  auto shared = std::make_shared<const std::function<void(const SequenceHash&)>>(std::move(callback));
  return core_->with_extras(hash, true, [&](detail::EntryExtras& extras) {
    extras.touch_callbacks.push_back(std::move(shared));
  });
}

bool BlockRegistry::attach_erased(const SequenceHash& hash, const std::type_info& type,
                                  detail::AttachmentMode mode, std::shared_ptr<void> value) const {
  std::shared_ptr<void> replaced;  // a replaced unique value dies after the lock is released
  const char* conflict = nullptr;
  const bool registered = core_->with_extras(hash, true, [&](detail::EntryExtras& extras) {
    for (auto& typed : extras.typed) {
      if (typed.type != std::type_index(type)) continue;
      if (typed.mode != mode) {
        conflict = typed.mode == detail::AttachmentMode::Unique ? "attach_unique" : "attach";
        return;
      }
      if (mode == detail::AttachmentMode::Unique) {
        replaced = std::exchange(typed.values.front(), std::move(value));
      } else {
        typed.values.push_back(std::move(value));
      }
      return;
    }
    extras.typed.push_back({std::type_index(type), mode, {}});
    extras.typed.back().values.push_back(std::move(value));
  });
  if (conflict != nullptr) {
    throw AttachmentError(std::string("attachment type ") + type.name() +
                          " is already attached to this hash with " + conflict + "; use " +
                          conflict + " for it, not " +
                          (mode == detail::AttachmentMode::Unique ? "attach_unique" : "attach"));
  }
  return registered;
}

bool BlockRegistry::visit_attachments(detail::RegistryCore& core, const SequenceHash& hash,
                                      const std::type_info& type,
                                      detail::AttachmentVisitor visit) {
  bool found = false;
  core.with_extras(hash, false, [&](detail::EntryExtras& extras) {
    for (const auto& typed : extras.typed) {
      if (typed.type != std::type_index(type)) continue;
      found = !typed.values.empty();
      visit(typed.mode, typed.values);
      return;
    }
  });
  return found;
}
const std::shared_ptr<FrequencyTracker>& BlockRegistry::frequency_tracker() const noexcept {
  return core_->tracker();
}

}  // namespace kvbm
