// kvbm/errors.hpp — the exception hierarchy thrown at the API edge.
//
// Every failing call leaves the caller's objects intact: a block passed to a call that throws is
// still owned by the caller (or was returned to its pool), never leaked or freed twice.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace kvbm {

/// Base of every exception kvbm throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Invalid builder configuration; the message names the offending setting.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A block was completed or staged with a block size other than its pool's.
/// The block passed in is untouched and still owned by the caller.
class BlockSizeMismatch : public Error {
 public:
  BlockSizeMismatch(std::size_t expected, std::size_t actual)
      : Error("block size mismatch: expected " + std::to_string(expected) + " tokens, got " +
              std::to_string(actual)),
        expected_{expected},
        actual_{actual} {}
  [[nodiscard]] std::size_t expected() const noexcept { return expected_; }
  [[nodiscard]] std::size_t actual() const noexcept { return actual_; }

 private:
  std::size_t expected_;
  std::size_t actual_;
};

/// A handle was used after it was moved from (or consumed by a transition): it names no slot.
class InvalidHandle : public Error {
 public:
  using Error::Error;
};

/// A sequence-hash position outside the representable range (>= 2^24).
class PositionOutOfRange : public Error {
 public:
  using Error::Error;
};

/// A block handed to a manager that does not own it (or that is not in the state the call needs).
/// Nothing was consumed: the caller still owns every block it passed.
class ForeignBlock : public Error {
 public:
  using Error::Error;
};

}  // namespace kvbm
