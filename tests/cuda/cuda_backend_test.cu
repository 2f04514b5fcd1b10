// CUDA backend tests (nvcc). They compile and link everywhere; each test that needs a device
// skips with the runtime's reason when cudaGetDeviceCount fails or reports no device. Nothing
// here calls CUDA from a static initialiser (gtest discovery must be able to list the tests).
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cstring>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

#include "../host_backend/table_reference.hpp"
#include "kvbm/cuda/backends.hpp"
#include "kvbm/cuda/error.hpp"
#include "kvbm/cuda/event.hpp"
#include "kvbm/cuda/stream.hpp"
#include "kvbm/host_stream.hpp"

namespace kvbm {
namespace {

static_assert(std::is_trivially_copyable_v<CudaStreamView>);
static_assert(!std::is_constructible_v<CudaStreamView, int>);
static_assert(!std::is_constructible_v<CudaStreamView, std::nullptr_t>);
static_assert(std::is_convertible_v<CudaStreamView, StreamRef>);
static_assert(!std::is_copy_constructible_v<CudaStream>);
static_assert(std::is_nothrow_move_constructible_v<CudaStream>);
static_assert(std::is_base_of_v<Error, CudaError>);

class CudaBackend : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;  // left unwritten by the runtime when there is no driver
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      static_cast<void>(cudaGetLastError());
      GTEST_SKIP() << "no CUDA device: " << cudaGetErrorName(err);
    }
  }
};

// Runs with or without a device: a failing call becomes a CudaError naming the call.
TEST(CudaError, CarriesCallNameAndMessage) {
  try {
    KVBM_CUDA_TRY(cudaSetDevice(-1));
    FAIL() << "cudaSetDevice(-1) succeeded";
  } catch (const CudaError& e) {
    EXPECT_EQ(e.call(), "cudaSetDevice(-1)");
    EXPECT_NE(e.code(), cudaSuccess);
    EXPECT_STRNE(e.error_name(), "");
    EXPECT_NE(std::string{e.what()}.find(e.error_name()), std::string::npos);
    EXPECT_NE(std::string{e.what()}.find("cudaSetDevice(-1)"), std::string::npos);
  }
}

TEST_F(CudaBackend, EventPoolRecyclesEventsAndFencesComplete) {
  CudaStream stream;
  EventPool pool;
  {
    Fence first = pool.record(stream);
    first.wait();
    EXPECT_TRUE(first.ready());
    EXPECT_NE(fence_event(first), nullptr);
  }
  EXPECT_EQ(pool.created(), 1U);
  EXPECT_EQ(pool.idle(), 1U);
  const Fence second = pool.record(stream);  // reuses the returned event
  EXPECT_EQ(pool.created(), 1U);
  second.wait();
  EXPECT_EQ(fence_event(Fence{}), nullptr);
}

TEST_F(CudaBackend, StreamWaitOrdersAcrossStreams) {
  CudaStream producer;
  CudaStream consumer;
  EventPool pool;
  int* device = nullptr;
  KVBM_CUDA_TRY(cudaMalloc(&device, sizeof(int)));
  KVBM_CUDA_TRY(cudaMemsetAsync(device, 0x2a, sizeof(int), producer.value()));
  stream_wait(consumer, pool.record(producer));
  int host = 0;
  KVBM_CUDA_TRY(cudaMemcpyAsync(&host, device, sizeof(int), cudaMemcpyDeviceToHost, consumer.value()));
  pool.record(consumer).wait();
  EXPECT_EQ(host, 0x2a2a2a2a);
  KVBM_CUDA_TRY(cudaFree(device));
}

TEST_F(CudaBackend, HostStreamCanWaitOnACudaFence) {
  CudaStream stream;
  EventPool pool;
  HostStream host;
  host.wait(pool.record(stream));
  host.synchronize();
}

TEST_F(CudaBackend, DeviceBlockTableMatchesReference) {
  CudaStream stream;
  EventPool pool;
  for (std::uint32_t seed = 1; seed <= 10; ++seed) {
    std::mt19937 rng{seed};
    DeviceBlockTableConfig config;
    config.max_requests = 16;
    config.max_blocks_per_request = 12;
    config.block_size = 4;
    config.max_batch_requests = 8;
    config.max_batch_tokens = 96;
    auto table = make_cuda_device_block_table(config, pool);
    testing::ReferenceTable model{config};
    std::vector<std::int32_t> snapshot(16 * 12);
    for (int step = 0; step < 30; ++step) {
      for (int e = 0; e < 5; ++e) testing::random_edit(rng, *table, model);
      table->sync(stream);
      table->download_table(stream, snapshot).wait();
      ASSERT_EQ(snapshot, model.dense());
      const auto batch = testing::random_batch(rng, model);
      table->prepare_batch(stream, batch);
      BatchLayoutsHost got;
      table->download_layouts(stream, got).wait();
      const auto want = model.layouts(batch);
      ASSERT_EQ(got.slot_mapping, want.slot_mapping);
      ASSERT_EQ(got.kv_indptr, want.kv_indptr);
      ASSERT_EQ(got.kv_indices, want.kv_indices);
      ASSERT_EQ(got.kv_last_page_len, want.kv_last_page_len);
    }
  }
}

TEST_F(CudaBackend, TransferEngineDeviceHostRoundTrip) {
  constexpr std::size_t kStride = 512;
  constexpr BlockId kBlocks = 32;
  CudaStream stream;
  EventPool pool;
  void* device = nullptr;
  void* pinned = nullptr;
  KVBM_CUDA_TRY(cudaMalloc(&device, kBlocks * kStride));
  KVBM_CUDA_TRY(cudaMallocHost(&pinned, kBlocks * kStride));
  std::vector<std::byte> original(kBlocks * kStride);
  for (std::size_t i = 0; i < original.size(); ++i) original[i] = static_cast<std::byte>(i * 13);
  KVBM_CUDA_TRY(cudaMemcpy(device, original.data(), original.size(), cudaMemcpyHostToDevice));
  const PhysicalPool g1{ManagerId{1}, device, kBlocks, kStride, MemoryKind::Device};
  const PhysicalPool g2{ManagerId{2}, pinned, kBlocks, kStride, MemoryKind::PinnedHost};
  auto engine = make_cuda_transfer_engine(pool);
  std::vector<BlockId> ids(kBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  engine->copy_blocks(g1, ids, g2, ids, stream).wait();  // one coalesced copy
  EXPECT_EQ(engine->stats().copies, 1U);
  EXPECT_EQ(std::memcmp(pinned, original.data(), original.size()), 0);
  KVBM_CUDA_TRY(cudaMemset(device, 0, kBlocks * kStride));
  engine->copy_blocks(g2, ids, g1, ids, stream).wait();
  std::vector<std::byte> back(original.size());
  KVBM_CUDA_TRY(cudaMemcpy(back.data(), device, back.size(), cudaMemcpyDeviceToHost));
  EXPECT_EQ(back, original);
  KVBM_CUDA_TRY(cudaFreeHost(pinned));
  KVBM_CUDA_TRY(cudaFree(device));
}

}  // namespace
}  // namespace kvbm
