// bench/cuda_bench.cpp — the device benchmarks, CUDA backend (kvbm_cuda_bench; built with the
// kvbm::cuda target, run by scripts/gpu-check.sh on a machine with a GPU). Same convention as
// kvbm_bench: each benchmark's label names the floor measured in the same run.
//   transfer/cuda       TransferEngine::copy_blocks device -> pinned host, fenced, waited
//   floor/cudaMemcpy    the same bytes as one cudaMemcpyAsync per block + stream sync
//   device_table/cuda   one decode step (rows append one block each) + sync + fence wait
//   floor/cudaMemcpyH2D the bytes that step uploads (8 per changed cell), one copy + sync
// Without a device every benchmark reports "no CUDA device" as its error and nothing is timed.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kvbm/cuda/backends.hpp"
#include "kvbm/cuda/error.hpp"
#include "kvbm/cuda/event.hpp"
#include "kvbm/cuda/stream.hpp"
#include "kvbm/physical_pool.hpp"

namespace {

constexpr std::size_t kPoolBlocks = 64;

bool have_device(benchmark::State& state) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    static_cast<void>(cudaGetLastError());
    state.SkipWithError((std::string("no CUDA device: ") + cudaGetErrorName(err)).c_str());
    return false;
  }
  return true;
}

/// A device pool and a pinned host pool of kPoolBlocks blocks each (RAII).
struct Pools {
  explicit Pools(std::size_t block_bytes) : bytes{kPoolBlocks * block_bytes} {
    KVBM_CUDA_TRY(cudaMalloc(&device, bytes));
    KVBM_CUDA_TRY(cudaMallocHost(&pinned, bytes));
    KVBM_CUDA_TRY(cudaMemset(device, 1, bytes));
  }
  Pools(const Pools&) = delete;
  Pools& operator=(const Pools&) = delete;
  ~Pools() {
    KVBM_CUDA_ASSERT_OK(cudaFreeHost(pinned));
    KVBM_CUDA_ASSERT_OK(cudaFree(device));
  }
  std::size_t bytes;
  void* device{nullptr};
  void* pinned{nullptr};
};

std::vector<kvbm::BlockId> copy_ids(std::size_t count, bool contiguous) {
  std::vector<kvbm::BlockId> ids(count);
  for (std::size_t i = 0; i < count; ++i) ids[i] = static_cast<kvbm::BlockId>(contiguous ? i : 2 * i);
  return ids;
}

// args: block bytes, blocks per copy, contiguous (1) or scattered (0).
void transfer_cuda(benchmark::State& state) {
  if (!have_device(state)) return;
  const auto block_bytes = static_cast<std::size_t>(state.range(0));
  const auto count = static_cast<std::size_t>(state.range(1));
  state.SetLabel("floor/cudaMemcpy/" + std::to_string(state.range(0)) + "/" +
                 std::to_string(state.range(1)) + "/" + std::to_string(state.range(2)));
  Pools pools{block_bytes};
  kvbm::EventPool events;
  kvbm::CudaStream stream;
  const kvbm::PhysicalPool g1{kvbm::ManagerId::next(), pools.device, kPoolBlocks, block_bytes,
                              kvbm::MemoryKind::Device};
  const kvbm::PhysicalPool g2{kvbm::ManagerId::next(), pools.pinned, kPoolBlocks, block_bytes,
                              kvbm::MemoryKind::PinnedHost};
  const auto engine = kvbm::make_cuda_transfer_engine(events);
  const auto ids = copy_ids(count, state.range(2) != 0);
  for (auto _ : state) engine->copy_blocks(g1, ids, g2, ids, stream).wait();
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(count * block_bytes));
}

void floor_cuda_memcpy(benchmark::State& state) {
  if (!have_device(state)) return;
  const auto block_bytes = static_cast<std::size_t>(state.range(0));
  const auto count = static_cast<std::size_t>(state.range(1));
  Pools pools{block_bytes};
  kvbm::CudaStream stream;
  const auto ids = copy_ids(count, state.range(2) != 0);
  auto* src = static_cast<std::byte*>(pools.device);
  auto* dst = static_cast<std::byte*>(pools.pinned);
  for (auto _ : state) {
    for (const kvbm::BlockId id : ids) {
      KVBM_CUDA_TRY(cudaMemcpyAsync(dst + id * block_bytes, src + id * block_bytes, block_bytes,
                                    cudaMemcpyDeviceToHost, stream.value()));
    }
    stream.synchronize();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(count * block_bytes));
}

// args: rows, columns, rows changed per step.
void device_table_cuda(benchmark::State& state) {
  if (!have_device(state)) return;
  kvbm::DeviceBlockTableConfig config;
  config.max_requests = static_cast<std::int32_t>(state.range(0));
  config.max_blocks_per_request = static_cast<std::int32_t>(state.range(1));
  const auto changed = static_cast<std::int32_t>(state.range(2));
  state.SetLabel("floor/cudaMemcpyH2D/" + std::to_string(state.range(2)));
  kvbm::EventPool events;
  kvbm::CudaStream stream;
  const auto table = kvbm::make_cuda_device_block_table(config, events);
  std::int32_t next_block = 0;
  std::int32_t first_row = 0;
  for (auto _ : state) {
    for (std::int32_t i = 0; i < changed; ++i) {
      const std::int32_t row = (first_row + i) % config.max_requests;
      if (table->row_length(row) == config.max_blocks_per_request) table->clear(row);
      const std::int32_t block = next_block++ & 0x3FFFFFFF;
      table->append(row, std::span(&block, 1));
    }
    first_row = (first_row + changed) % config.max_requests;
    table->sync(stream).wait();
  }
  state.counters["bytes_per_sync"] =
      benchmark::Counter(static_cast<double>(table->stats().bytes_uploaded) /
                         static_cast<double>(std::max<std::uint64_t>(1, table->stats().syncs)));
  state.SetItemsProcessed(state.iterations() * changed);
}

// The bytes one decode step uploads (index + value per changed cell), one pinned H2D copy.
void floor_cuda_h2d(benchmark::State& state) {
  if (!have_device(state)) return;
  const auto bytes = static_cast<std::size_t>(state.range(0)) * 2 * sizeof(std::int32_t);
  Pools pools{bytes};
  kvbm::CudaStream stream;
  for (auto _ : state) {
    KVBM_CUDA_TRY(cudaMemcpyAsync(pools.device, pools.pinned, bytes, cudaMemcpyHostToDevice,
                                  stream.value()));
    stream.synchronize();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void register_all() {
  const auto copies = [](benchmark::internal::Benchmark* b) {
    for (const std::int64_t block_bytes : {64 << 10, 1 << 20}) {
      for (const std::int64_t contiguous : {1, 0}) b->Args({block_bytes, 32, contiguous});
    }
  };
  benchmark::RegisterBenchmark("floor/cudaMemcpy", floor_cuda_memcpy)->Apply(copies)->UseRealTime();
  benchmark::RegisterBenchmark("transfer/cuda", transfer_cuda)->Apply(copies)->UseRealTime();
  benchmark::RegisterBenchmark("floor/cudaMemcpyH2D", floor_cuda_h2d)->Arg(64)->UseRealTime();
  benchmark::RegisterBenchmark("device_table/cuda", device_table_cuda)
      ->Args({256, 256, 64})
      ->Args({4096, 1024, 64})
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
