#include "kvbm/sequence_hash.hpp"

#include <atomic>
#include <iomanip>
#include <string>

#include "kvbm/errors.hpp"
#include "kvbm/types.hpp"

namespace kvbm {

SequenceHash SequenceHash::from_parts(std::uint64_t current, std::optional<std::uint64_t> parent,
                                      std::uint32_t position) {
  if (position >= kMaxPosition) {
    throw PositionOutOfRange("sequence hash position " + std::to_string(position) +
                             " is out of range (must be < 2^24)");
  }
  const unsigned mode = mode_for(position);
  const unsigned f_bits = fragment_bits(mode);
  const u128 fragment = parent.value_or(0) & ((std::uint64_t{1} << f_bits) - 1);
  const u128 value = (static_cast<u128>(mode) << 126) |
                     (static_cast<u128>(position) << (64 + f_bits)) |
                     (static_cast<u128>(current) << f_bits) | fragment;
  return from_u128(value);
}

std::ostream& operator<<(std::ostream& os, const SequenceHash& h) {
  const auto flags = os.flags();
  os << "SequenceHash{pos " << std::dec << h.position() << ", 0x" << std::hex << std::setfill('0')
     << std::setw(16) << h.high() << ':' << std::setw(16) << h.low() << '}';
  os.flags(flags);
  return os;
}

ManagerId ManagerId::next() noexcept {
  // Process-wide by definition: ids must differ across every pool of the process.
  static std::atomic<std::uint64_t> counter{0};
  return ManagerId{counter.fetch_add(1, std::memory_order_relaxed) + 1};
}

}  // namespace kvbm
