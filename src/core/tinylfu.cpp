#include "kvbm/tinylfu.hpp"

#include <algorithm>
#include <array>
#include <bit>

#include "kvbm/errors.hpp"

namespace kvbm {

namespace {
constexpr std::uint64_t kLowBitOfEachNibble = 0x1111'1111'1111'1111ull;
constexpr std::uint64_t kHalveMask = 0x7777'7777'7777'7777ull;

/// The four (word, nibble) counters of a key, by double hashing (h_i = a + i*b) from one mix of
/// the key. Keys are sequence hashes (already xxh3 output), so a 64-bit finalizer is enough and
/// one mix replaces four seeded xxh3 calls. The nibble comes from the top bits, independent of
/// the word index (taking both from the low bits, as the original does, makes a word use one
/// nibble per index and wastes 15 of its 16 counters).
struct Cells {
  std::array<std::uint64_t, TinyLfu::kDepth> word;
  std::array<unsigned, TinyLfu::kDepth> shift;
};

constexpr std::uint64_t fmix64(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

Cells cells_of(u128 key, std::uint64_t width) noexcept {
  const auto lo = static_cast<std::uint64_t>(key);
  const auto hi = static_cast<std::uint64_t>(key >> 64);
  const std::uint64_t a = fmix64(lo ^ std::rotl(hi, 29) ^ 0x9E3779B97F4A7C15ull);
  const std::uint64_t b = fmix64(hi ^ std::rotl(lo, 17) ^ 0xD6E8FEB86659FD93ull) | 1;
  const bool pow2 = (width & (width - 1)) == 0;
  Cells cells{};
  for (std::uint32_t row = 0; row < TinyLfu::kDepth; ++row) {
    const std::uint64_t h = a + row * b;
    cells.word[row] = pow2 ? (h & (width - 1)) : h % width;
    cells.shift[row] = static_cast<unsigned>(h >> 60) * 4;
  }
  return cells;
}
}  // namespace

TinyLfu::TinyLfu(std::uint64_t capacity) : TinyLfu(capacity, 10 * capacity) {}

TinyLfu::TinyLfu(std::uint64_t capacity, std::uint64_t decay_after)
    : table_(capacity / 4 == 0 ? 1 : capacity / 4, 0), decay_after_{decay_after} {
  if (capacity == 0) throw ConfigError("TinyLfu: capacity must be greater than 0");
}

void TinyLfu::increment(u128 key) noexcept {
  const Cells cells = cells_of(key, table_.size());
  // The four words are independent cache misses in a large table: start them all first.
  for (std::uint32_t row = 0; row < kDepth; ++row) __builtin_prefetch(&table_[cells.word[row]], 1);
  bool changed = false;
  for (std::uint32_t row = 0; row < kDepth; ++row) {  // in row order: rows may share a counter
    std::uint64_t& word = table_[cells.word[row]];
    const unsigned shift = cells.shift[row];
    if (((word >> shift) & 0xF) < kMaxCount) {
      word += std::uint64_t{1} << shift;
      changed = true;
    }
  }
  if (changed && ++size_ >= decay_after_ && decay_after_ != 0) halve();
}

std::uint32_t TinyLfu::estimate(u128 key) const noexcept {
  const Cells cells = cells_of(key, table_.size());
  for (std::uint32_t row = 0; row < kDepth; ++row) __builtin_prefetch(&table_[cells.word[row]], 0);
  std::uint32_t best = kMaxCount;
  for (std::uint32_t row = 0; row < kDepth; ++row) {
    const auto counter =
        static_cast<std::uint32_t>((table_[cells.word[row]] >> cells.shift[row]) & 0xF);
    best = std::min(best, counter);
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
