// kvbm/eviction.hpp — choices for the inactive pool's eviction order (builder options).
//
// Released registered blocks wait in the inactive pool until they are matched again (cache hit)
// or evicted to satisfy an allocation. The backend decides the eviction order:
//   fifo      — in order of release (a counter, never a timestamp)
//   lru       — least recently released first
//   multi-lru — four LRU levels chosen at release by the registry's TinyLFU estimate; coldest
//               level first (needs a registry with frequency tracking)
//   lineage   — prefix-tree aware: only leaves are evictable, so a cached parent outlives its
//               cached descendants
// Every backend is O(1) or O(log n) per operation and allocation-free in steady state.
#pragma once

#include <array>
#include <cstdint>

namespace kvbm {

enum class EvictionBackend : std::uint8_t { Fifo, Lru, MultiLru, Lineage };

/// Order among the lineage backend's evictable leaves.
enum class LineageEviction : std::uint8_t {
  Tick,  ///< by the tick at which the node first became resident (a re-exposed parent keeps it)
  Fifo,  ///< by the time the node became a leaf (a re-exposed parent goes to the back)
};

/// Multi-LRU level thresholds on the TinyLFU estimate f: level 0 if f < t1, 1 if f < t2,
/// 2 if f < t3, else 3. Must be strictly ascending with t1 >= 1 and t3 <= 15.
struct MultiLruThresholds {
  std::uint8_t t1 = 3;
  std::uint8_t t2 = 8;
  std::uint8_t t3 = 15;
};

namespace detail {
/// The default backend is lineage (Tick): on the Mooncake trace it equals LRU with one tier and
/// beats every other backend with a G2 tier behind G1 (docs/replay.md).
struct EvictionConfig {
  EvictionBackend backend = EvictionBackend::Lineage;
  MultiLruThresholds thresholds{};
  LineageEviction lineage = LineageEviction::Tick;
};
}  // namespace detail

}  // namespace kvbm
