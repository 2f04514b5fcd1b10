#include "kvbm/tinylfu.hpp"

#include <algorithm>
#include <array>
#include <bit>

#include "kvbm/errors.hpp"

namespace kvbm {

namespace {
constexpr std::uint64_t kLowBitOfEachNibble = 0x1111'1111'1111'1111ull;
constexpr std::uint64_t kHalveMask = 0x7777'7777'7777'7777ull;

}  // namespace

/// The four counters of a key: four nibbles of ONE word (a blocked count-min sketch: row r is
/// nibble 4r + k of the word, k in 0..3, so the rows are distinct counters). One mix of the key
/// (keys are sequence hashes, already xxh3 output, so a 64-bit finalizer suffices) gives the word
/// from its high bits and the four nibbles from its low bits; an increment is then one load, a
/// few register operations and one store, and a key costs one cache line instead of four.
/// Keeps the count-min guarantee (an estimate is never below the true count before a halving)
/// and the per-counter load of the unblocked layout (4 increments per key over 16 x width
/// counters); a crowded word raises all four of its keys' estimates together, which costs some
/// accuracy at high load.
struct detail::TinyLfuCells {
  std::uint64_t word;
  std::uint64_t low_bits;  ///< the lowest bit of each of the key's four nibbles
};

namespace {
using Cells = detail::TinyLfuCells;

constexpr std::uint64_t fmix64(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

// Row r of a key takes nibble 4r + (2 bits of the mix at bit 2r), so the low 8 bits of the mix
// name all four nibbles: a table of the 256 patterns replaces the per-row shifts, which were a
// quarter of a touch's instructions.
constexpr std::array<std::uint64_t, 256> make_low_bits_table() noexcept {
  std::array<std::uint64_t, 256> table{};
  for (std::uint64_t byte = 0; byte < 256; ++byte) {
    for (std::uint32_t row = 0; row < TinyLfu::kDepth; ++row) {
      const auto nibble = 4 * row + static_cast<std::uint32_t>((byte >> (2 * row)) & 3);
      table[byte] |= std::uint64_t{1} << (4 * nibble);
    }
  }
  return table;
}
constexpr std::array<std::uint64_t, 256> kLowBitsOf = make_low_bits_table();
static_assert(TinyLfu::kDepth == 4, "kLowBitsOf spends 2 bits of the mix per row, 8 in all");
static_assert(kLowBitsOf[0] == 0x0001'0001'0001'0001ull);      // nibbles 0, 4, 8, 12
static_assert(kLowBitsOf[0xFF] == 0x1000'1000'1000'1000ull);   // nibbles 3, 7, 11, 15

inline Cells cells_of(u128 key, std::uint64_t width) noexcept {
  const auto lo = static_cast<std::uint64_t>(key);
  const auto hi = static_cast<std::uint64_t>(key >> 64);
  const std::uint64_t h = fmix64(lo ^ std::rotl(hi, 29) ^ 0x9E3779B97F4A7C15ull);
  // Lemire's multiply-shift maps the high bits onto [0, width) for any width, no division.
  const auto word = static_cast<std::uint64_t>((static_cast<unsigned __int128>(h) * width) >> 64);
  return Cells{word, kLowBitsOf[h & 0xFF]};
}
}  // namespace

TinyLfu::TinyLfu(std::uint64_t capacity) : TinyLfu(capacity, 10 * capacity) {}

TinyLfu::TinyLfu(std::uint64_t capacity, std::uint64_t decay_after)
    : table_(capacity / 4 == 0 ? 1 : capacity / 4, 0), decay_after_{decay_after} {
  if (capacity == 0) throw ConfigError("TinyLfu: capacity must be greater than 0");
}

inline void TinyLfu::apply(const Cells& cells) noexcept {
  std::uint64_t& word = table_[cells.word];
  const std::uint64_t w = word;
  // Bit 4k of `saturated` is set iff nibble k is 15; the key's other nibbles get +1 each, with
  // no carry out of a nibble (each is below 15).
  const std::uint64_t saturated = w & (w >> 1) & (w >> 2) & (w >> 3);
  const std::uint64_t increments = cells.low_bits & ~saturated;
  word = w + increments;
  if (increments != 0 && ++size_ >= decay_after_ && decay_after_ != 0) halve();
}

void TinyLfu::increment(u128 key) noexcept {
  apply(cells_of(key, table_.size()));
}

void TinyLfu::increment_many(std::span<const SequenceHash> keys) noexcept {
  // A ring of cells computed kAhead keys early: the hashing and the table misses of the next
  // keys overlap the current key's read-modify-writes. Cells depend only on the key and the
  // width, so a halving mid-batch does not invalidate them.
  constexpr std::size_t kAhead = 4;
  const std::uint64_t width = table_.size();
  std::array<Cells, kAhead> ring;
  const std::size_t n = keys.size();
  const auto load = [&](std::size_t i) {
    Cells& cells = ring[i % kAhead];
    cells = cells_of(keys[i].as_u128(), width);
    __builtin_prefetch(&table_[cells.word], 1);
  };
  for (std::size_t i = 0; i < std::min(n, kAhead); ++i) load(i);
  for (std::size_t i = 0; i < n; ++i) {
    const Cells cells = ring[i % kAhead];
    if (i + kAhead < n) load(i + kAhead);
    apply(cells);
  }
}

std::uint32_t TinyLfu::estimate(u128 key) const noexcept {
  const Cells cells = cells_of(key, table_.size());
  const std::uint64_t w = table_[cells.word];
  std::uint32_t best = kMaxCount;
  for (std::uint64_t bits = cells.low_bits; bits != 0; bits &= bits - 1) {
    const auto shift = static_cast<unsigned>(std::countr_zero(bits));
    best = std::min(best, static_cast<std::uint32_t>((w >> shift) & 0xF));
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
