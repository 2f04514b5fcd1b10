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
// The names above are the backends' one spelling everywhere (CLI flags, benchmark names):
// to_string / parse_eviction_backend convert, all_eviction_backends() lists them. All of these
// are pure functions, safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace kvbm {

enum class EvictionBackend : std::uint8_t { Fifo, Lru, MultiLru, Lineage };

/// Every backend, in the order tools list them (lru, fifo, multi-lru, lineage).
[[nodiscard]] constexpr std::array<EvictionBackend, 4> all_eviction_backends() noexcept {
  return {EvictionBackend::Lru, EvictionBackend::Fifo, EvictionBackend::MultiLru,
          EvictionBackend::Lineage};
}

/// The backend's name: "fifo", "lru", "multi-lru" or "lineage".
[[nodiscard]] constexpr std::string_view to_string(EvictionBackend backend) noexcept {
  switch (backend) {
    case EvictionBackend::Fifo:
      return "fifo";
    case EvictionBackend::Lru:
      return "lru";
    case EvictionBackend::MultiLru:
      return "multi-lru";
    case EvictionBackend::Lineage:
      return "lineage";
  }
  return "unknown";
}

/// The backend named `name` (exact, lower case, as to_string writes it). Throws ConfigError
/// naming the valid names for anything else.
[[nodiscard]] EvictionBackend parse_eviction_backend(std::string_view name);

/// Whether the backend reads the registry's frequency tracker (the registry must have one).
[[nodiscard]] constexpr bool needs_frequency_tracker(EvictionBackend backend) noexcept {
  return backend == EvictionBackend::MultiLru;
}

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
