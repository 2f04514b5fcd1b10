// NVTX ranges are really emitted, without a GPU: ctest runs this binary with
// NVTX_INJECTION64_PATH pointing at the recording injection library (nvtx_injection.cpp).
#include <gtest/gtest.h>

#include "nvtx_records.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvbm/device_block_table.hpp"
#include "kvbm/host/backends.hpp"
#include "kvbm/host_stream.hpp"
#include "kvbm/nvtx.hpp"
#include "kvbm/physical_pool.hpp"
#include "kvbm/transfer_engine.hpp"

namespace kvbm {
namespace {

void helper_with_range() { KVBM_NVTX_RANGE("test_helper"); }

TEST(Nvtx, RangesAreEmittedInTheKvbmDomain) {
#if !defined(KVBM_NVTX_ENABLED)
  GTEST_SKIP() << "built with KVBM_NVTX=OFF: ranges compiled out";
#else
  if (std::getenv("NVTX_INJECTION64_PATH") == nullptr) {
    GTEST_SKIP() << "NVTX_INJECTION64_PATH not set (run through ctest)";
  }
  helper_with_range();
  HostStream stream;
  DeviceBlockTableConfig config;
  config.max_requests = 2;
  config.max_blocks_per_request = 2;
  const auto table_owner = make_host_device_block_table(config);
  DeviceBlockTable& table = *table_owner;
  table.append(0, std::vector<std::int32_t>{1, 2});
  table.sync(stream).wait();
  table.prepare_batch(stream, std::vector<BatchEntry>{{0, 0, 3}}).wait();
  std::vector<std::byte> a(256);
  std::vector<std::byte> b(256);
  const PhysicalPool pa{ManagerId{1}, a.data(), 4, 64, MemoryKind::Host};
  const PhysicalPool pb{ManagerId{2}, b.data(), 4, 64, MemoryKind::Host};
  TransferEngine engine{make_host_copy_backend()};
  engine.copy_blocks(pa, std::vector<BlockId>{0, 1, 2}, pb, std::vector<BlockId>{1, 2, 3}, stream)
      .wait();

  const auto records = test::take_nvtx_records();
  ASSERT_FALSE(records.empty()) << "the injection library recorded nothing";
  EXPECT_TRUE(test::contains_record(records, "domain:kvbm"));
  EXPECT_TRUE(test::contains_record(records, "push:kvbm:test_helper"));
  EXPECT_TRUE(test::contains_record(records, "push:kvbm:DeviceBlockTable::sync#2"));
  EXPECT_TRUE(test::contains_record(records, "push:kvbm:DeviceBlockTable::prepare_batch#1"));
  EXPECT_TRUE(test::contains_record(records, "push:kvbm:TransferEngine::copy_blocks#3"));
  const auto pushes = std::count_if(records.begin(), records.end(),
                                    [](const std::string& r) { return r.rfind("push:kvbm:", 0) == 0; });
  const auto pops = std::count(records.begin(), records.end(), std::string{"pop:kvbm"});
  EXPECT_EQ(pushes, pops);
#endif
}

}  // namespace
}  // namespace kvbm
