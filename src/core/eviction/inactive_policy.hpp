// src/eviction/inactive_policy.hpp — the internal interface every eviction backend implements.
//
// The store keeps one hash -> slot map for primaries and cached blocks, so a cache lookup is a
// single probe there; a policy only orders the cached (inactive) slots for eviction. Slot ids
// are dense (0 .. capacity-1), so policies keep their order in arrays indexed by id.
// Called only under the owning store's mutex: implementations need no locking of their own
// (except the frequency tracker they read, which is thread-safe).
// Every operation is O(1) or O(log n), with no heap allocation in steady state.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "kvbm/detail/function_ref.hpp"
#include "kvbm/eviction.hpp"
#include "kvbm/frequency.hpp"
#include "kvbm/sequence_hash.hpp"
#include "kvbm/types.hpp"

namespace kvbm::detail {

class InactivePolicy {
 public:
  virtual ~InactivePolicy() = default;

  /// Slot `id` holding `hash` became inactive (released, or evicted-from-live by a racing lookup).
  /// Precondition: `id` is not already in the policy.
  virtual void insert(BlockId id, const SequenceHash& hash) = 0;
  /// insert(id, hash_of(id)) for every id of `ids`, in order: one call for a released batch
  /// (BlockManager::release_blocks). Same preconditions and effects as the single inserts.
  virtual void insert_many(std::span<const BlockId> ids,
                           FunctionRef<const SequenceHash&(BlockId)> hash_of) {
    for (const BlockId id : ids) insert(id, hash_of(id));
  }
  /// Slot `id` (holding `hash`) leaves the inactive pool because a lookup revived it.
  /// Precondition: `id` is in the policy.
  virtual void remove(BlockId id, const SequenceHash& hash) = 0;
  /// Slot `id`'s tenancy ended: its hash left the pool (evicted, freed on release, drained), so
  /// the slot is neither cached nor in use under that hash any more. A policy that keeps
  /// per-slot state across a hit (lineage keeps the tree node of a block in use) drops it here;
  /// the default keeps nothing. Called for every slot whose hash leaves the store's index, also
  /// for ids the policy never held or already evicted (then a no-op).
  virtual void forget(BlockId /*id*/) noexcept {}
  /// Removes up to `out.size()` victims in policy order, writes their ids to `out`, returns
  /// how many. Must return out.size() whenever size() >= out.size().
  virtual std::size_t evict(std::span<BlockId> out) = 0;
  [[nodiscard]] virtual std::size_t size() const noexcept = 0;
  [[nodiscard]] virtual bool contains(BlockId id) const noexcept = 0;
  [[nodiscard]] virtual const char* name() const noexcept = 0;
  /// A deep copy (tests read the eviction order by draining a copy; not used on hot paths).
  [[nodiscard]] virtual std::unique_ptr<InactivePolicy> clone() const = 0;
};

/// Builds the policy named by `config` for a pool of `capacity` slots. `tracker` is the
/// registry's frequency tracker (may be null). Throws ConfigError naming the problem.
std::unique_ptr<InactivePolicy> make_inactive_policy(const EvictionConfig& config,
                                                     std::size_t capacity,
                                                     std::shared_ptr<FrequencyTracker> tracker);

}  // namespace kvbm::detail
