// tools/replay/profile_collector.hpp — internal: profile.cpp's handle on the NVTX collector in
// profile_nvtx.cpp (two files because the one defining NVTX's static-injection pointer must see
// NVTX's types without its implementation). Process-wide; thread-safe.
#pragma once

#include <vector>

#include "replay/profile.hpp"

namespace kvbm::replay::detail {

enum class CollectorState { NotInitialised, Attached, Declined };

/// While true, NVTX's initialisation (if it has not happened yet) attaches the collector.
void collector_set_want_attach(bool want);
[[nodiscard]] CollectorState collector_state();
/// False when a session already holds the collector.
[[nodiscard]] bool collector_claim_session();
/// Stops recording and frees the collector for another session.
void collector_release_session();
/// Starts the clock (events are timed from here) and recording.
void collector_start_recording();
/// Moves out every range closed while recording, ordered by start.
[[nodiscard]] std::vector<ProfileEvent> collector_take_events();

}  // namespace kvbm::replay::detail
