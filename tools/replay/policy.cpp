#include "replay/policy.hpp"

#include "kvbm/frequency.hpp"

namespace kvbm::replay {

std::string_view policy_name(Policy policy) noexcept {
  switch (policy) {
    case Policy::Lru:
      return "lru";
    case Policy::Fifo:
      return "fifo";
    case Policy::MultiLru:
      return "multi-lru";
    case Policy::Lineage:
      return "lineage";
  }
  return "?";
}

std::optional<Policy> parse_policy(std::string_view name) noexcept {
  for (const Policy policy : all_policies()) {
    if (policy_name(policy) == name) return policy;
  }
  return std::nullopt;
}

const std::vector<Policy>& all_policies() noexcept {
  static const std::vector<Policy> kAll{Policy::Lru, Policy::Fifo, Policy::MultiLru,
                                        Policy::Lineage};
  return kAll;
}

BlockRegistry make_registry(std::initializer_list<Policy> policies) {
  auto builder = BlockRegistry::builder();
  for (const Policy policy : policies) {
    if (policy == Policy::MultiLru) {
      builder.frequency_tracker(FrequencyTrackingCapacity::Medium);
      break;
    }
  }
  return builder.build();
}

}  // namespace kvbm::replay
