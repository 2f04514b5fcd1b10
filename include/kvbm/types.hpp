// kvbm/types.hpp — small value types shared by the whole library.
//
// Everything here is a trivially copyable value; thread safety is that of a plain value.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>

namespace kvbm {

/// Dense index of a slot inside one manager's pool: 0 .. total_blocks()-1, fixed at build time.
using BlockId = std::uint32_t;

/// Sentinel for "no block"; never a valid id (pools are capped below it).
inline constexpr BlockId kInvalidBlockId = std::numeric_limits<BlockId>::max();

/// Storage tier tags. Any empty type works as a tier; these are the three the product ships.
/// A tier separates managers at the type level and keys per-tier presence in a shared registry.
struct G1 {};  ///< GPU (device) memory
struct G2 {};  ///< pinned host memory
struct G3 {};  ///< local disk

/// What a second registration of an already-registered sequence hash does.
enum class DuplicationPolicy : std::uint8_t {
  Allow,   ///< the second block becomes a duplicate with its own id (typical for G1)
  Reject,  ///< the caller receives the existing primary; the submitted slot is recycled
};

/// Process-unique identity of one block pool (one per manager, shared by its copies).
/// `(ManagerId, BlockId)` is the runtime address of a physical slot. Default-constructed = null.
class ManagerId {
 public:
  constexpr ManagerId() noexcept = default;
  constexpr explicit ManagerId(std::uint64_t value) noexcept : value_{value} {}

  [[nodiscard]] constexpr bool is_null() const noexcept { return value_ == 0; }
  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return value_; }
  friend constexpr bool operator==(ManagerId, ManagerId) noexcept = default;

  /// Mints a fresh id; thread-safe, never returns the null id.
  [[nodiscard]] static ManagerId next() noexcept;

 private:
  std::uint64_t value_{0};
};

inline std::ostream& operator<<(std::ostream& os, ManagerId id) {
  return id.is_null() ? (os << "ManagerId(null)") : (os << "ManagerId(" << id.value() << ')');
}

}  // namespace kvbm

template <>
struct std::hash<kvbm::ManagerId> {
  std::size_t operator()(kvbm::ManagerId id) const noexcept {
    return std::hash<std::uint64_t>{}(id.value());
  }
};
