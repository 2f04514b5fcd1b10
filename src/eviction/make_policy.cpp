// Maps an EvictionConfig to its policy. Backends other than LRU arrive with issue 3.
#include "eviction/inactive_policy.hpp"
#include "eviction/lru_policy.hpp"
#include "kvbm/errors.hpp"

namespace kvbm::detail {

std::unique_ptr<InactivePolicy> make_inactive_policy(const EvictionConfig& config,
                                                     std::size_t capacity,
                                                     std::shared_ptr<FrequencyTracker> tracker) {
  (void)tracker;
  switch (config.backend) {
    case EvictionBackend::Lru:
      return std::make_unique<LruPolicy>(capacity);
    default:
      throw ConfigError("eviction backend not available in this build");
  }
}

}  // namespace kvbm::detail
