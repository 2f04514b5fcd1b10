#include "kvbm/tinylfu.hpp"

#include <xxhash.h>

#include <array>
#include <bit>

#include "kvbm/errors.hpp"

namespace kvbm {

namespace {
constexpr std::uint64_t kLowBitOfEachNibble = 0x1111'1111'1111'1111ull;
constexpr std::uint64_t kHalveMask = 0x7777'7777'7777'7777ull;

std::uint64_t row_hash(u128 key, std::uint32_t row) noexcept {
  std::array<unsigned char, 16> bytes{};
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<unsigned char>(key >> (8 * i));
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), row);
}
}  // namespace

TinyLfu::TinyLfu(std::uint64_t capacity) : TinyLfu(capacity, 10 * capacity) {}

TinyLfu::TinyLfu(std::uint64_t capacity, std::uint64_t decay_after)
    : table_(capacity / 4 == 0 ? 1 : capacity / 4, 0), decay_after_{decay_after} {
  if (capacity == 0) throw ConfigError("TinyLfu: capacity must be greater than 0");
}

void TinyLfu::increment(u128 key) noexcept {
  bool changed = false;
  for (std::uint32_t row = 0; row < kDepth; ++row) {
    const std::uint64_t h = row_hash(key, row);
    std::uint64_t& word = table_[h % table_.size()];
    const unsigned shift = static_cast<unsigned>(h & 15) * 4;
    if (((word >> shift) & 0xF) < kMaxCount) {
      word += std::uint64_t{1} << shift;
      changed = true;
    }
  }
  if (changed && ++size_ >= decay_after_ && decay_after_ != 0) halve();
}

std::uint32_t TinyLfu::estimate(u128 key) const noexcept {
  std::uint32_t best = kMaxCount;
  for (std::uint32_t row = 0; row < kDepth; ++row) {
    const std::uint64_t h = row_hash(key, row);
    const unsigned shift = static_cast<unsigned>(h & 15) * 4;
    best = std::min(best, static_cast<std::uint32_t>((table_[h % table_.size()] >> shift) & 0xF));
  }
  return best;
}

void TinyLfu::halve() noexcept {
  std::uint64_t odd = 0;
  for (auto& word : table_) {
    odd += static_cast<std::uint64_t>(std::popcount(word & kLowBitOfEachNibble));
    word = (word >> 1) & kHalveMask;
  }
  const std::uint64_t half = size_ / 2;
  size_ = half > odd / 4 ? half - odd / 4 : 0;
}

}  // namespace kvbm
