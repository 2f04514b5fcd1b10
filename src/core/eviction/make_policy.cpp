// Maps an EvictionConfig to its policy.
#include "eviction/fifo_policy.hpp"
#include "eviction/inactive_policy.hpp"
#include "eviction/lineage_policy.hpp"
#include "eviction/lru_policy.hpp"
#include "eviction/multi_lru_policy.hpp"
#include "kvbm/errors.hpp"

namespace kvbm::detail {

std::unique_ptr<InactivePolicy> make_inactive_policy(const EvictionConfig& config,
                                                     std::size_t capacity,
                                                     std::shared_ptr<FrequencyTracker> tracker) {
  switch (config.backend) {
    case EvictionBackend::Fifo:
      return std::make_unique<FifoPolicy>(capacity);
    case EvictionBackend::Lru:
      return std::make_unique<LruPolicy>(capacity);
    case EvictionBackend::MultiLru:
      return std::make_unique<MultiLruPolicy>(capacity, config.thresholds, std::move(tracker));
    case EvictionBackend::Lineage:
      return std::make_unique<LineagePolicy>(capacity, config.lineage);
  }
  throw ConfigError("unknown eviction backend");
}

}  // namespace kvbm::detail
