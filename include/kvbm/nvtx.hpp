// kvbm/nvtx.hpp — NVTX3 ranges in the "kvbm" domain, for kvbm's own sources.
//
// Usage, at the top of a public operation (one registered string per call site, registered once):
//   KVBM_NVTX_RANGE("allocate_blocks");                  // push/pop for the enclosing scope
//   KVBM_NVTX_RANGE_PAYLOAD("copy_blocks", n_blocks);    // same, with a uint64 payload (a count)
// Cost: with no tool attached each range is one indirect call to a no-op (NVTX's init stub patches
// itself); with the CMake option KVBM_NVTX=OFF (KVBM_NVTX_ENABLED undefined) the macros expand to
// nothing and nvtx3 is not included. Needs the `CUDA::nvtx3` target (header-only; no GPU needed).
// This header includes nvtx3.hpp when enabled: include it from .cpp/.cu files, not from public
// headers that users include.
#pragma once

#if defined(KVBM_NVTX_ENABLED)

#ifndef NVTX3_CPP_REQUIRE_EXPLICIT_VERSION
#define NVTX3_CPP_REQUIRE_EXPLICIT_VERSION
#endif
#include <nvtx3/nvtx3.hpp>

#include <cstdint>

namespace kvbm::nvtx {

/// The NVTX domain every kvbm range lives in.
struct Domain {
  static constexpr char const* name{"kvbm"};
};

using RegisteredString = ::nvtx3::v1::registered_string_in<Domain>;
using ScopedRange = ::nvtx3::v1::scoped_range_in<Domain>;
using EventAttributes = ::nvtx3::v1::event_attributes;
using Payload = ::nvtx3::v1::payload;

}  // namespace kvbm::nvtx

#define KVBM_NVTX_CONCAT_INNER(a, b) a##b
#define KVBM_NVTX_CONCAT(a, b) KVBM_NVTX_CONCAT_INNER(a, b)

/// Opens a range named `literal` (a string literal) until the end of the enclosing scope.
#define KVBM_NVTX_RANGE(literal) KVBM_NVTX_RANGE_IMPL(literal, __COUNTER__)
/// As KVBM_NVTX_RANGE, with an unsigned 64-bit payload (a count: blocks, cells, bytes).
#define KVBM_NVTX_RANGE_PAYLOAD(literal, count) \
  KVBM_NVTX_RANGE_PAYLOAD_IMPL(literal, count, __COUNTER__)

#define KVBM_NVTX_RANGE_IMPL(literal, id)                                                       \
  static ::kvbm::nvtx::RegisteredString const KVBM_NVTX_CONCAT(kvbm_nvtx_name_, id){literal}; \
  static ::kvbm::nvtx::EventAttributes const KVBM_NVTX_CONCAT(kvbm_nvtx_attr_, id){            \
      KVBM_NVTX_CONCAT(kvbm_nvtx_name_, id)};                                                  \
  ::kvbm::nvtx::ScopedRange const KVBM_NVTX_CONCAT(kvbm_nvtx_range_, id) {                     \
    KVBM_NVTX_CONCAT(kvbm_nvtx_attr_, id)                                                      \
  }

#define KVBM_NVTX_RANGE_PAYLOAD_IMPL(literal, count, id)                                        \
  static ::kvbm::nvtx::RegisteredString const KVBM_NVTX_CONCAT(kvbm_nvtx_name_, id){literal}; \
  ::kvbm::nvtx::ScopedRange const KVBM_NVTX_CONCAT(kvbm_nvtx_range_, id) {                     \
    ::kvbm::nvtx::EventAttributes {                                                            \
      KVBM_NVTX_CONCAT(kvbm_nvtx_name_, id),                                                   \
          ::kvbm::nvtx::Payload { static_cast<std::uint64_t>(count) }                          \
    }                                                                                          \
  }

#else  // KVBM_NVTX_ENABLED

#define KVBM_NVTX_RANGE(literal) static_assert(true, "")
#define KVBM_NVTX_RANGE_PAYLOAD(literal, count) static_cast<void>(count)

#endif  // KVBM_NVTX_ENABLED
