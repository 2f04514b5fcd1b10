// tools/replay/policy.hpp — eviction-policy names and the managers the replay builds.
//
// Policy names are the CLI spellings: lru, fifo, multi-lru, lineage. A registry for multi-lru
// carries a TinyLFU frequency tracker (the backend needs one); the others have none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvbm/block_manager.hpp"
#include "kvbm/registry.hpp"

namespace kvbm::replay {

enum class Policy : std::uint8_t { Lru, Fifo, MultiLru, Lineage };

[[nodiscard]] std::string_view policy_name(Policy policy) noexcept;
/// nullopt for an unknown name.
[[nodiscard]] std::optional<Policy> parse_policy(std::string_view name) noexcept;
/// Every policy, in CLI order.
[[nodiscard]] const std::vector<Policy>& all_policies() noexcept;

/// A registry suited to every policy in `policies` (with frequency tracking if one is multi-lru).
[[nodiscard]] BlockRegistry make_registry(std::initializer_list<Policy> policies);

/// Builds a manager with `policy`; throws kvbm::ConfigError if the backend is unavailable.
template <class Tier>
[[nodiscard]] BlockManager<Tier> make_manager(Policy policy, std::size_t blocks,
                                              std::uint32_t block_size,
                                              const BlockRegistry& registry) {
  auto builder = BlockManager<Tier>::builder();
  builder.block_count(blocks)
      .block_size(block_size)
      .registry(registry)
      .duplication_policy(DuplicationPolicy::Reject);
  switch (policy) {
    case Policy::Lru:
      builder.lru_backend();
      break;
    case Policy::Fifo:
      builder.fifo_backend();
      break;
    case Policy::MultiLru:
      builder.multi_lru_backend();
      break;
    case Policy::Lineage:
      builder.lineage_backend();
      break;
  }
  return builder.build();
}

}  // namespace kvbm::replay
