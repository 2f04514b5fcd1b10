// BlockManager::Builder::build: validates the settings and builds the store.
#include <string>

#include "kvbm/block_manager.hpp"
#include "kvbm/errors.hpp"

namespace kvbm::detail {

StorePtr build_store(std::optional<std::size_t> block_count, std::uint32_t block_size,
                     const std::optional<BlockRegistry>& registry, DuplicationPolicy policy,
                     const EvictionConfig& eviction, bool default_reset_on_release,
                     const void* tier_key, const EventSettings& events) {
  const auto invalid = [](const std::string& what) {
    return ConfigError("Builder validation failed: " + what);
  };
  if (!block_count) throw invalid("block_count is required");
  if (*block_count == 0) throw invalid("block_count must be greater than 0");
  if (*block_count >= kInvalidBlockId) {
    throw invalid("block_count must be below " + std::to_string(kInvalidBlockId));
  }
  if (block_size == 0 || block_size > 1024 || (block_size & (block_size - 1)) != 0) {
    throw invalid("block_size must be a power of two in 1..1024 (got " +
                  std::to_string(block_size) + ")");
  }
  if (!registry) throw invalid("registry is required");
  StoreConfig config;
  config.block_count = *block_count;
  config.block_size = block_size;
  config.duplication_policy = policy;
  config.default_reset_on_release = default_reset_on_release;
  config.tier_key = tier_key;
  config.events = &events;
  return StorePtr(BlockStore::create(config, eviction, *registry));
}

}  // namespace kvbm::detail
