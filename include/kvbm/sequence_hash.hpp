// kvbm/sequence_hash.hpp — the 128-bit positional lineage hash that names a KV block.
//
// Layout, most significant bit first: [mode:2][position:P][current:64][parent fragment:F]
//   mode 0: position < 2^8  (P = 8,  F = 54)
//   mode 1: position < 2^16 (P = 16, F = 46)
//   mode 2: position < 2^24 (P = 24, F = 38)
// `current` is the block's full 64-bit chained sequence hash; the parent fragment is the low F
// bits of the parent's current hash, which is what links a child to its parent in a prefix tree.
// Equality and std::hash are over all 128 bits. Bit-compatible with dynamo-tokens.
// Value type: trivially copyable, no synchronisation needed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>

namespace kvbm {

using u128 = unsigned __int128;

class SequenceHash {
 public:
  /// Positions must be below this bound.
  static constexpr std::uint32_t kMaxPosition = 1u << 24;

  constexpr SequenceHash() noexcept = default;

  /// Packs a hash. Throws kvbm::PositionOutOfRange when position >= 2^24.
  [[nodiscard]] static SequenceHash from_parts(std::uint64_t current,
                                               std::optional<std::uint64_t> parent,
                                               std::uint32_t position);
  /// Rebuilds a hash from its packed form (no validation beyond the layout).
  [[nodiscard]] static constexpr SequenceHash from_u128(u128 value) noexcept {
    SequenceHash h;
    h.hi_ = static_cast<std::uint64_t>(value >> 64);
    h.lo_ = static_cast<std::uint64_t>(value);
    return h;
  }

  [[nodiscard]] constexpr unsigned mode() const noexcept { return static_cast<unsigned>(hi_ >> 62); }
  [[nodiscard]] constexpr std::uint32_t position() const noexcept {
    const unsigned p = position_bits(mode());
    return static_cast<std::uint32_t>((hi_ >> (62 - p)) & ((std::uint64_t{1} << p) - 1));
  }
  /// The full 64-bit chained sequence hash of this block.
  [[nodiscard]] constexpr std::uint64_t current_fragment() const noexcept {
    const unsigned f = fragment_bits(mode());
    return static_cast<std::uint64_t>(as_u128() >> f);
  }
  /// The stored (truncated) fragment of the parent's sequence hash; 0 for position 0.
  [[nodiscard]] constexpr std::uint64_t parent_fragment() const noexcept {
    return lo_ & mask(fragment_bits(mode()));
  }
  /// The key under which a child at `child_position` stores this block as its parent.
  [[nodiscard]] constexpr std::uint64_t fragment_for_child_position(
      std::uint32_t child_position) const noexcept {
    return current_fragment() & mask(fragment_bits(mode_for(child_position)));
  }

  [[nodiscard]] constexpr u128 as_u128() const noexcept {
    return (static_cast<u128>(hi_) << 64) | lo_;
  }
  [[nodiscard]] constexpr std::uint64_t high() const noexcept { return hi_; }
  [[nodiscard]] constexpr std::uint64_t low() const noexcept { return lo_; }

  friend constexpr bool operator==(const SequenceHash&, const SequenceHash&) noexcept = default;

  /// Cheap 64-bit mix of the two halves, for hash tables.
  [[nodiscard]] constexpr std::size_t mix() const noexcept {
    std::uint64_t x = hi_ * 0x9E3779B97F4A7C15ull ^ lo_;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return static_cast<std::size_t>(x);
  }

  static constexpr unsigned mode_for(std::uint32_t position) noexcept {
    return position < (1u << 8) ? 0u : position < (1u << 16) ? 1u : 2u;
  }
  static constexpr unsigned position_bits(unsigned mode) noexcept { return 8u * (mode + 1); }
  static constexpr unsigned fragment_bits(unsigned mode) noexcept {
    return 62u - position_bits(mode);
  }

 private:
  static constexpr std::uint64_t mask(unsigned bits) noexcept {
    return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
  }

  std::uint64_t hi_{0};
  std::uint64_t lo_{0};
};

std::ostream& operator<<(std::ostream& os, const SequenceHash& h);

}  // namespace kvbm

template <>
struct std::hash<kvbm::SequenceHash> {
  std::size_t operator()(const kvbm::SequenceHash& h) const noexcept { return h.mix(); }
};
