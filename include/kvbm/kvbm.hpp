// kvbm/kvbm.hpp — umbrella header: the logical block manager and the host backend of the
// device side (host streams, device block tables, transfer engine). CUDA-only headers live in
// kvbm/cuda/ and come with the kvbm::cuda target.
#pragma once

#include "kvbm/block_manager.hpp"
#include "kvbm/blocks.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/eviction.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/device_block_table.hpp"
#include "kvbm/frequency.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/metrics.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/pin.hpp"
#include "kvbm/registry.hpp"
#include "kvbm/sequence_hash.hpp"
#include "kvbm/stream_ref.hpp"
#include "kvbm/tinylfu.hpp"
#include "kvbm/tokens.hpp"
#include "kvbm/transfer_engine.hpp"
#include "kvbm/types.hpp"
