#include "replay/policy.hpp"

#include "kvbm/frequency.hpp"

namespace kvbm::replay {

BlockRegistry make_registry(std::initializer_list<Policy> policies) {
  auto builder = BlockRegistry::builder();
  for (const Policy policy : policies) {
    if (needs_frequency_tracker(policy)) {
      builder.frequency_tracker(FrequencyTrackingCapacity::Medium);
      break;
    }
  }
  return builder.build();
}

}  // namespace kvbm::replay
