// kvbm/kvbm.hpp — umbrella header for the host-side logical block manager.
#pragma once

#include "kvbm/block_manager.hpp"
#include "kvbm/blocks.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/eviction.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/frequency.hpp"
#include "kvbm/metrics.hpp"
#include "kvbm/pin.hpp"
#include "kvbm/registry.hpp"
#include "kvbm/sequence_hash.hpp"
#include "kvbm/tinylfu.hpp"
#include "kvbm/tokens.hpp"
#include "kvbm/types.hpp"
