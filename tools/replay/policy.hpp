// tools/replay/policy.hpp — the registries and managers the replay builds for an eviction backend.
//
// The replay's "policy" is a kvbm::EvictionBackend; its CLI spelling is kvbm::to_string's. A
// registry for a backend that needs frequency tracking (multi-lru) carries a TinyLFU tracker;
// the others have none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "kvbm/block_manager.hpp"
#include "kvbm/eviction.hpp"
#include "kvbm/registry.hpp"

namespace kvbm::replay {

using Policy = EvictionBackend;

/// A registry suited to every backend in `policies` (with frequency tracking if one needs it).
[[nodiscard]] BlockRegistry make_registry(std::initializer_list<Policy> policies);

/// Builds a manager with `policy`; throws kvbm::ConfigError if the backend is unavailable.
template <class Tier>
[[nodiscard]] BlockManager<Tier> make_manager(Policy policy, std::size_t blocks,
                                              std::uint32_t block_size,
                                              const BlockRegistry& registry,
                                              std::shared_ptr<KvEventSink> events = nullptr) {
  return BlockManager<Tier>::builder()
      .event_sink(std::move(events))
      .block_count(blocks)
      .block_size(block_size)
      .registry(registry)
      .duplication_policy(DuplicationPolicy::Reject)
      .backend(policy)
      .build();
}

}  // namespace kvbm::replay
