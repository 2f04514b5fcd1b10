// src/eviction/multi_lru_policy.hpp — four LRU levels tiered by a TinyLFU frequency estimate.
//
// At insert the policy reads the tracker's estimate f of hash.as_u128() once and files the slot
// in level 0 (f < t1, cold), 1 (f < t2), 2 (f < t3) or 3 (very hot). A resident slot is never
// re-tiered; a cache hit removes it and its next release re-tiers it with the updated count.
// Victims come from the coldest non-empty level, least recently released first within a level.
// Each level can hold every slot (the distribution across levels is unpredictable).
// Complexity: O(1) per operation (at most 4 level probes) plus one tracker count() per insert;
// no allocation after construction.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "eviction/lru_policy.hpp"

namespace kvbm::detail {

class MultiLruPolicy final : public InactivePolicy {
 public:
  static constexpr std::size_t kLevels = 4;

  /// Throws ConfigError if `thresholds` are invalid or `tracker` is null.
  MultiLruPolicy(std::size_t capacity, MultiLruThresholds thresholds,
                 std::shared_ptr<FrequencyTracker> tracker);

  /// Throws ConfigError unless t1 >= 1, t1 < t2 < t3 and t3 <= 15.
  static void validate(const MultiLruThresholds& thresholds);
  /// Level for an estimate under `thresholds`: 0 cold .. 3 very hot.
  [[nodiscard]] static std::size_t level_for(std::uint32_t frequency,
                                             const MultiLruThresholds& thresholds) noexcept;

  /// Throws std::logic_error if `id` is already present.
  void insert(BlockId id, const SequenceHash& hash) override;
  /// Throws std::logic_error if `id` is not present.
  void remove(BlockId id, const SequenceHash& hash) override;
  std::size_t evict(std::span<BlockId> out) override;
  [[nodiscard]] std::size_t size() const noexcept override { return size_; }
  [[nodiscard]] bool contains(BlockId id) const noexcept override {
    return id < level_.size() && level_[id] != kAbsent;
  }
  [[nodiscard]] const char* name() const noexcept override { return "multi-lru"; }
  [[nodiscard]] std::unique_ptr<InactivePolicy> clone() const override {
    return std::make_unique<MultiLruPolicy>(*this);
  }

  /// Level holding `id`, or -1 when absent (tests and diagnostics).
  [[nodiscard]] int level_of(BlockId id) const noexcept {
    return contains(id) ? static_cast<int>(level_[id]) : -1;
  }
  [[nodiscard]] std::size_t level_size(std::size_t level) const noexcept {
    return levels_[level].size();
  }

 private:
  static constexpr std::uint8_t kAbsent = 0xFF;

  std::array<IdList, kLevels> levels_;
  std::vector<std::uint8_t> level_;
  MultiLruThresholds thresholds_;
  std::shared_ptr<FrequencyTracker> tracker_;
  std::size_t size_ = 0;
};

}  // namespace kvbm::detail
