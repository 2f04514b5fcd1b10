// bench/memory_bench.cpp — resident bytes per block of a BlockManager, per eviction backend.
//
// For each backend, a fresh process (fork) measures its resident set (/proc/self/statm) before
// and after building a pool of N blocks (default 1M, `--blocks=N` style via KVBM_MEMORY_BLOCKS):
//   empty   the built manager, nothing allocated yet;
//   filled  every slot registered once and released, so the whole pool is cached (inactive) —
//           the steady state of a warm cache. Hashes form chains of 64 blocks, so the lineage
//           backend holds real prefix trees.
// The counters are bytes_per_block (resident growth / N) and resident_MiB; the timing columns
// are meaningless here. The registry, its TinyLFU tracker (multi-LRU only) and the manager are
// all counted: that is what a user's process pays. Run it in the release build:
//   build/release/bench/kvbm_memory_bench
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvbm/kvbm.hpp"

namespace {

using Manager = kvbm::BlockManager<kvbm::G1>;

std::size_t pool_blocks() {
  if (const char* env = std::getenv("KVBM_MEMORY_BLOCKS")) return std::strtoull(env, nullptr, 10);
  return std::size_t{1} << 20;
}

std::size_t resident_bytes() {
  long pages = 0;
  long resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64: distinct, well-spread hash parts
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Resident growth of building (and, when `fill`, filling) an `n`-block pool, in this process.
std::size_t measure(kvbm::EvictionBackend backend, kvbm::LineageEviction order, std::size_t n,
                    bool fill) {
  const std::size_t before = resident_bytes();
  auto registry = kvbm::BlockRegistry::builder();
  if (kvbm::needs_frequency_tracker(backend)) {
    registry.frequency_tracker(kvbm::FrequencyTrackingCapacity::Medium);
  }
  auto builder = Manager::builder().block_count(n).block_size(16).registry(registry.build());
  builder.backend(backend);
  if (backend == kvbm::EvictionBackend::Lineage) builder.lineage_backend(order);
  auto manager = builder.build();
  if (fill) {
    constexpr std::size_t kChain = 64;
    constexpr std::size_t kBatch = 4096;
    for (std::size_t first = 0; first < n; first += kBatch) {
      const std::size_t count = std::min(kBatch, n - first);
      auto blocks = manager.allocate_blocks(count).value();
      std::vector<kvbm::CompleteBlock<kvbm::G1>> staged;
      staged.reserve(count);
      for (std::size_t j = 0; j < count; ++j) {
        const std::size_t i = first + j;
        const auto position = static_cast<std::uint32_t>(i % kChain);
        const auto hash = kvbm::SequenceHash::from_parts(
            mix(i), position == 0 ? std::nullopt : std::optional<std::uint64_t>(mix(i - 1)),
            position);
        staged.push_back(std::move(blocks[j]).stage(hash, 16));
      }
      auto registered = manager.register_blocks(std::move(staged));
      std::vector<kvbm::ImmutableBlock<kvbm::G1>> tail_first(registered.rbegin(),
                                                             registered.rend());
      registered.clear();
      manager.release_blocks(std::move(tail_first));  // the whole pool ends up cached
    }
    if (manager.metrics().inactive_pool_size != static_cast<std::int64_t>(n)) std::abort();
  }
  return resident_bytes() - before;
}

void BM_ResidentBytesPerBlock(benchmark::State& state, kvbm::EvictionBackend backend,
                              kvbm::LineageEviction order, bool fill) {
  const std::size_t n = pool_blocks();
  std::size_t grown = 0;
  for (auto _ : state) {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
      state.SkipWithError("pipe failed");
      return;
    }
    const pid_t child = fork();
    if (child == 0) {  // a clean heap: nothing an earlier measurement freed is reused
      close(pipe_fds[0]);
      const std::size_t bytes = measure(backend, order, n, fill);
      const ssize_t written = write(pipe_fds[1], &bytes, sizeof bytes);
      _exit(written == sizeof bytes ? 0 : 1);
    }
    close(pipe_fds[1]);
    const ssize_t got = read(pipe_fds[0], &grown, sizeof grown);
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (got != sizeof grown || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("measuring child failed");
      return;
    }
  }
  state.counters["blocks"] = static_cast<double>(n);
  state.counters["bytes_per_block"] = static_cast<double>(grown) / static_cast<double>(n);
  state.counters["resident_MiB"] = static_cast<double>(grown) / (1024.0 * 1024.0);
}

void register_all() {
  struct Named {
    const char* name;
    kvbm::EvictionBackend backend;
    kvbm::LineageEviction order;
  };
  const Named backends[] = {
      {"fifo", kvbm::EvictionBackend::Fifo, kvbm::LineageEviction::Tick},
      {"lru", kvbm::EvictionBackend::Lru, kvbm::LineageEviction::Tick},
      {"multi-lru", kvbm::EvictionBackend::MultiLru, kvbm::LineageEviction::Tick},
      {"lineage-tick", kvbm::EvictionBackend::Lineage, kvbm::LineageEviction::Tick},
      {"lineage-fifo", kvbm::EvictionBackend::Lineage, kvbm::LineageEviction::Fifo},
  };
  for (const auto& b : backends) {
    for (const bool fill : {false, true}) {
      const std::string name = std::string("resident_bytes/") + b.name + (fill ? "/filled" : "/empty");
      benchmark::RegisterBenchmark(name.c_str(), BM_ResidentBytesPerBlock, b.backend, b.order, fill)
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
