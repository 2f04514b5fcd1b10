// Links the installed kvbm::cuda: builds a CUDA transfer engine and copies two blocks host ->
// host on a CUDA stream. Exit code 0 when that works, or when there is no device to try it on.
#include <kvbm/cuda/backends.hpp>
#include <kvbm/kvbm.hpp>

#include <cstdio>
#include <vector>

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("consumer_cuda: linked kvbm::cuda; no CUDA device, not run");
    return 0;
  }
  kvbm::EventPool events;
  auto engine = kvbm::make_cuda_transfer_engine(events);
  std::vector<std::byte> src(256, std::byte{7});
  std::vector<std::byte> dst(256, std::byte{0});
  const kvbm::PhysicalPool from{kvbm::ManagerId{1}, src.data(), 4, 64, kvbm::MemoryKind::Host};
  const kvbm::PhysicalPool to{kvbm::ManagerId{2}, dst.data(), 4, 64, kvbm::MemoryKind::Host};
  const std::vector<kvbm::BlockId> ids{0, 1};
  engine->copy_blocks(from, ids, to, ids, kvbm::StreamRef::cuda(nullptr)).wait();
  return dst[0] == std::byte{7} && dst[127] == std::byte{7} && dst[128] == std::byte{0} ? 0 : 1;
}
