// kvbm/detail/reserve_more.hpp — geometric room-making for vectors that are appended to in
// steps (internal).
//
// reserve(size() + extra) allocates exactly that much, so a vector that grows by one call's worth
// at a time is reallocated and copied whole at every call: quadratic over its life. (push_back
// and resize already grow geometrically; only explicit reservations need this.) Strong
// guarantee: a throwing reserve leaves the vector as it was. Amortised O(1) per element.
#pragma once

#include <algorithm>
#include <cstddef>

namespace kvbm::detail {

/// The slow path of reserve_more, out of line so the check stays small where it is inlined.
template <class Vector>
[[gnu::noinline]] void grow_for(Vector& v, std::size_t extra) {
  v.reserve(std::max(v.size() + extra, 2 * v.capacity()));
}

/// Makes room for `extra` more elements, at least doubling the capacity when it grows.
template <class Vector>
inline void reserve_more(Vector& v, std::size_t extra) {
  if (v.capacity() - v.size() < extra) [[unlikely]] grow_for(v, extra);
}

}  // namespace kvbm::detail
