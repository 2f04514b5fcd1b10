// bench/transfer_bench.cpp — host-backend TransferEngine throughput against memcpy of the same
// bytes, and DeviceBlockTable sync bytes per step against table size. Part of kvbm_bench
// (registered from block_manager_bench.cpp's main), same floor convention: the label names the
// floor benchmark measured in the same run (memcpy of the same bytes for the transfers).
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "kvbm/device_block_table.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/transfer_engine.hpp"

namespace {

constexpr std::size_t kPoolBlocks = 64;  // room for 32 scattered blocks

// Block ids of one copy: `count` ids, consecutive (coalescable) or every other one (one copy per
// block).
std::vector<kvbm::BlockId> copy_ids(std::size_t count, bool contiguous) {
  std::vector<kvbm::BlockId> ids(count);
  for (std::size_t i = 0; i < count; ++i) {
    ids[i] = static_cast<kvbm::BlockId>(contiguous ? i : 2 * i);
  }
  return ids;
}

std::string transfer_suffix(benchmark::State& state) {
  return std::to_string(state.range(0)) + "/" + std::to_string(state.range(1)) + "/" +
         std::to_string(state.range(2));
}

// args: block bytes, blocks per copy, contiguous (1) or scattered (0).
void transfer_host(benchmark::State& state) {
  const auto block_bytes = static_cast<std::size_t>(state.range(0));
  const auto count = static_cast<std::size_t>(state.range(1));
  const bool contiguous = state.range(2) != 0;
  state.SetLabel("floor/memcpy/" + transfer_suffix(state) + "/real_time");
  std::vector<std::byte> src(kPoolBlocks * block_bytes, std::byte{1});
  std::vector<std::byte> dst(kPoolBlocks * block_bytes);
  const kvbm::PhysicalPool src_pool(kvbm::ManagerId::next(), src.data(), kPoolBlocks, block_bytes,
                                    kvbm::MemoryKind::Host);
  const kvbm::PhysicalPool dst_pool(kvbm::ManagerId::next(), dst.data(), kPoolBlocks, block_bytes,
                                    kvbm::MemoryKind::Host);
  const auto ids = copy_ids(count, contiguous);
  kvbm::HostStream stream;
  kvbm::TransferEngine engine{kvbm::make_host_copy_backend()};
  for (auto _ : state) {
    engine.copy_blocks(src_pool, ids, dst_pool, ids, stream).wait();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(count * block_bytes));
}

// The same bytes with one memcpy per block on the calling thread.
void floor_memcpy(benchmark::State& state) {
  const auto block_bytes = static_cast<std::size_t>(state.range(0));
  const auto count = static_cast<std::size_t>(state.range(1));
  const bool contiguous = state.range(2) != 0;
  std::vector<std::byte> src(kPoolBlocks * block_bytes, std::byte{1});
  std::vector<std::byte> dst(kPoolBlocks * block_bytes);
  const auto ids = copy_ids(count, contiguous);
  for (auto _ : state) {
    for (const kvbm::BlockId id : ids) {
      std::memcpy(dst.data() + id * block_bytes, src.data() + id * block_bytes, block_bytes);
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(count * block_bytes));
}

// One decode step of a DeviceBlockTable: `changed` rows each append one block, then sync.
// args: rows, columns, rows changed per step. Reports bytes uploaded per sync; no floor (the
// point is that the bytes do not grow with the table; the time is mostly the host stream's
// thread handoff).
void device_table_sync(benchmark::State& state) {
  kvbm::DeviceBlockTableConfig config;
  config.max_requests = static_cast<std::int32_t>(state.range(0));
  config.max_blocks_per_request = static_cast<std::int32_t>(state.range(1));
  const auto changed = static_cast<std::int32_t>(state.range(2));
  const auto table_owner = kvbm::make_host_device_block_table(config);
  kvbm::DeviceBlockTable& table = *table_owner;
  kvbm::HostStream stream;
  std::int32_t next_block = 0;
  std::int32_t first_row = 0;
  const auto baseline = table.stats();
  for (auto _ : state) {
    for (std::int32_t i = 0; i < changed; ++i) {
      const std::int32_t row = (first_row + i) % config.max_requests;
      if (table.row_length(row) == config.max_blocks_per_request) table.clear(row);
      const std::int32_t block = next_block++ & 0x3FFFFFFF;
      table.append(row, std::span(&block, 1));
    }
    first_row = (first_row + changed) % config.max_requests;
    table.sync(stream).wait();
  }
  const auto stats = table.stats();
  const auto syncs = stats.syncs - baseline.syncs;
  state.counters["bytes_per_sync"] = benchmark::Counter(
      syncs == 0 ? 0.0
                 : static_cast<double>(stats.bytes_uploaded - baseline.bytes_uploaded) /
                       static_cast<double>(syncs));
  state.counters["table_bytes"] =
      benchmark::Counter(4.0 * config.max_requests * config.max_blocks_per_request);
  state.SetItemsProcessed(state.iterations() * changed);
}

}  // namespace

void register_transfer_benchmarks() {
  const auto copies = [](benchmark::internal::Benchmark* b) {
    for (const std::int64_t block_bytes : {64 << 10, 1 << 20}) {
      for (const std::int64_t contiguous : {1, 0}) b->Args({block_bytes, 32, contiguous});
    }
  };
  benchmark::RegisterBenchmark("floor/memcpy", floor_memcpy)->Apply(copies)->UseRealTime();
  benchmark::RegisterBenchmark("transfer/host", transfer_host)->Apply(copies)->UseRealTime();
  benchmark::RegisterBenchmark("device_table/sync", device_table_sync)
      ->Args({256, 256, 64})
      ->Args({1024, 1024, 64})
      ->Args({4096, 1024, 64})
      ->UseRealTime();
}
