// kvbm/kvbm.hpp — umbrella header of the kvbm::kvbm target: the logical block manager
// (kvbm::core), the backend-neutral device side (kvbm::device: fences, device block tables,
// transfer engine) and the host backend (kvbm::host: host streams and the factories in
// kvbm/host/backends.hpp). CUDA-only headers live in kvbm/cuda/ and come with kvbm::cuda.
#pragma once

#include "kvbm/block_manager.hpp"
#include "kvbm/blocks.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/eviction.hpp"
#include "kvbm/fence.hpp"
#include "kvbm/device_block_table.hpp"
#include "kvbm/frequency.hpp"
#include "kvbm/hash_keys.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/metrics.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/pin.hpp"
#include "kvbm/registry.hpp"
#include "kvbm/request_sequence.hpp"
#include "kvbm/schedulable_sequence.hpp"
#include "kvbm/sequence_hash.hpp"
#include "kvbm/sequence_state.hpp"
#include "kvbm/stream_ref.hpp"
#include "kvbm/tinylfu.hpp"
#include "kvbm/tokens.hpp"
#include "kvbm/transfer_engine.hpp"
#include "kvbm/types.hpp"
