// Multi-level LRU: levels chosen once per release from the TinyLFU estimate, cold level first.
#include "eviction/multi_lru_policy.hpp"

#include <stdexcept>
#include <string>

#include "kvbm/errors.hpp"

namespace kvbm::detail {

MultiLruPolicy::MultiLruPolicy(std::size_t capacity, MultiLruThresholds thresholds,
                               std::shared_ptr<FrequencyTracker> tracker)
    : levels_{IdList{capacity}, IdList{capacity}, IdList{capacity}, IdList{capacity}},
      level_(capacity, kAbsent),
      thresholds_{thresholds},
      tracker_{std::move(tracker)} {
  validate(thresholds_);
  if (tracker_ == nullptr) {
    throw ConfigError("multi-LRU backend requires a registry with frequency tracking");
  }
}

void MultiLruPolicy::validate(const MultiLruThresholds& t) {
  const auto text = [&] {
    return " (got " + std::to_string(t.t1) + ", " + std::to_string(t.t2) + ", " +
           std::to_string(t.t3) + ")";
  };
  if (!(t.t1 < t.t2 && t.t2 < t.t3)) {
    throw ConfigError("multi-LRU thresholds must be in ascending order" + text());
  }
  if (t.t3 > 15) {
    throw ConfigError("multi-LRU thresholds must be <= 15 (the TinyLFU counter maximum)" + text());
  }
  if (t.t1 < 1) {
    throw ConfigError("multi-LRU threshold t1 must be >= 1" + text());
  }
}

std::size_t MultiLruPolicy::level_for(std::uint32_t f, const MultiLruThresholds& t) noexcept {
  if (f < t.t1) return 0;
  if (f < t.t2) return 1;
  if (f < t.t3) return 2;
  return 3;
}

void MultiLruPolicy::insert(BlockId id, const SequenceHash& hash) {
  if (contains(id)) {
    throw std::logic_error("multi-lru policy: block " + std::to_string(id) + " already exists");
  }
  const auto level = level_for(tracker_->count(hash.as_u128()), thresholds_);
  levels_[level].push_back(id);
  level_[id] = static_cast<std::uint8_t>(level);
  ++size_;
}

void MultiLruPolicy::remove(BlockId id, const SequenceHash&) {
  if (!contains(id)) {
    throw std::logic_error("multi-lru policy: block " + std::to_string(id) + " not found");
  }
  levels_[level_[id]].unlink(id);
  level_[id] = kAbsent;
  --size_;
}

std::size_t MultiLruPolicy::evict(std::span<BlockId> out) {
  std::size_t n = 0;
  std::size_t level = 0;
  while (n < out.size() && level < kLevels) {
    if (levels_[level].empty()) {
      ++level;
      continue;
    }
    const BlockId id = levels_[level].pop_front();
    level_[id] = kAbsent;
    --size_;
    out[n++] = id;
  }
  return n;
}

}  // namespace kvbm::detail
