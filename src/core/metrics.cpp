#include "kvbm/metrics.hpp"

namespace kvbm {

std::ostream& operator<<(std::ostream& os, const MetricsSnapshot& m) {
  return os << "allocations=" << m.allocations << " (from reset " << m.allocations_from_reset
            << ") evictions=" << m.evictions << " registrations=" << m.registrations
            << " duplicates=" << m.duplicate_blocks << " dedup=" << m.registration_dedup
            << " stagings=" << m.stagings << " match=" << m.match_blocks_returned << '/'
            << m.match_hashes_requested << " scan=" << m.scan_blocks_returned << '/'
            << m.scan_hashes_requested << " | inflight mutable=" << m.inflight_mutable
            << " immutable=" << m.inflight_immutable << " reset_pool=" << m.reset_pool_size
            << " inactive_pool=" << m.inactive_pool_size;
}

}  // namespace kvbm
