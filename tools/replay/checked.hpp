// tools/replay/checked.hpp — size arithmetic that cannot wrap silently.
//
// Every size, byte count or token count the replay derives from a flag or a trace line goes
// through these. checked_mul / checked_add return std::nullopt on overflow (for callers that turn
// it into a rejection); mul_or_throw / add_or_throw throw kvbm::replay::OverflowError whose
// message names `what` (the flag or quantity), so the user learns which input was too large.
// Pure functions on unsigned integers; thread-safe; O(1).
#pragma once

#include <concepts>
#include <optional>
#include <stdexcept>
#include <string>

namespace kvbm::replay {

/// A derived size does not fit its type. The message names the input responsible.
class OverflowError : public std::overflow_error {
 public:
  explicit OverflowError(const std::string& what) : std::overflow_error(what) {}
};

template <std::unsigned_integral T>
[[nodiscard]] constexpr std::optional<T> checked_mul(T a, T b) noexcept {
  T out{};
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

template <std::unsigned_integral T>
[[nodiscard]] constexpr std::optional<T> checked_add(T a, T b) noexcept {
  T out{};
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

template <std::unsigned_integral T>
[[nodiscard]] T mul_or_throw(T a, T b, const char* what) {
  if (const auto out = checked_mul(a, b)) return *out;
  throw OverflowError(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) +
                      " overflows a " + std::to_string(8 * sizeof(T)) + "-bit count");
}

template <std::unsigned_integral T>
[[nodiscard]] T add_or_throw(T a, T b, const char* what) {
  if (const auto out = checked_add(a, b)) return *out;
  throw OverflowError(std::string(what) + ": " + std::to_string(a) + " + " + std::to_string(b) +
                      " overflows a " + std::to_string(8 * sizeof(T)) + "-bit count");
}

/// `total += add`, throwing OverflowError naming `what` instead of wrapping.
template <std::unsigned_integral T>
void accumulate(T& total, T add, const char* what) {
  total = add_or_throw(total, add, what);
}

}  // namespace kvbm::replay
