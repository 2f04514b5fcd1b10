// An offload connector on the host backend: a small G1 cache backed by a larger G2 cache.
//
// Prompt A fills G1 and is offloaded to G2 as it is registered; prompt B then needs every G1
// slot, so G1 evicts A (safe: A is in G2); prompt A comes back, misses in G1, hits in G2 and is
// onboarded into G1 slots. Every block carries a readable label ("A/0", "B/2", ...) so the
// bytes can be followed through the tiers. The connector is examples/offload_connector.hpp.
#include "offload_connector.hpp"

#include <kvbm/kvbm.hpp>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kG1Blocks = 4;
constexpr std::size_t kG2Blocks = 8;
constexpr std::uint32_t kTokensPerBlock = 4;
constexpr std::size_t kBlockBytes = 32;  // KV bytes per block (tiny, to print them)

/// Host memory standing in for a tier's KV buffer; the library never owns these bytes.
struct KvBuffer {
  explicit KvBuffer(std::size_t blocks) : bytes(blocks * kBlockBytes) {}
  std::vector<std::byte> bytes;
};

std::string label_at(const kvbm::PhysicalPool& pool, kvbm::BlockId id) {
  const auto* p = reinterpret_cast<const char*>(pool.address(id));
  return std::string(p, strnlen(p, pool.block_bytes()));
}

void write_label(const kvbm::PhysicalPool& pool, kvbm::BlockId id, const std::string& label) {
  std::memset(pool.address(id), 0, pool.block_bytes());
  std::memcpy(pool.address(id), label.data(), label.size());
}

/// A prompt: its token blocks' hashes and a label per block.
struct Prompt {
  Prompt(char name, kvbm::Token first_token) : name{name} {
    std::vector<kvbm::Token> tokens(kG1Blocks * kTokensPerBlock);
    std::iota(tokens.begin(), tokens.end(), first_token);
    hashes = kvbm::TokenBlockSequence(tokens, kTokensPerBlock).sequence_hashes();
  }
  [[nodiscard]] std::string label(std::size_t block) const {
    return std::string{name} + "/" + std::to_string(block);
  }
  char name;
  std::vector<kvbm::SequenceHash> hashes;
};

/// The "prefill kernel": allocates G1 blocks through the connector, writes the prompt's bytes,
/// stages and stores them (registration starts the offload to G2).
std::vector<kvbm::ImmutableBlock<kvbm::G1>> prefill(kvbm::examples::OffloadConnector& connector,
                                                    const kvbm::PhysicalPool& g1_pool,
                                                    const Prompt& prompt) {
  auto allocation = connector.allocate(prompt.hashes.size()).value();
  std::cout << "  allocated " << allocation.blocks.size() << " G1 blocks, G1 evicted "
            << allocation.evicted.size() << " hashes";
  if (!allocation.evicted.empty()) {
    const auto in_g2 = connector.g1().registry().check_presence<kvbm::G2>(allocation.evicted);
    std::cout << " (" << std::count(in_g2.begin(), in_g2.end(), true) << " of them safe in G2)";
  }
  std::cout << "\n";
  std::vector<kvbm::CompleteBlock<kvbm::G1>> staged;
  for (std::size_t i = 0; i < allocation.blocks.size(); ++i) {
    write_label(g1_pool, allocation.blocks[i].block_id(), prompt.label(i));
    staged.push_back(std::move(allocation.blocks[i]).stage(prompt.hashes[i], kTokensPerBlock));
  }
  auto stored = connector.store(std::move(staged));
  std::cout << "  wrote";
  for (const auto& block : stored) {
    std::cout << " G1[" << block.block_id() << "]=\"" << label_at(g1_pool, block.block_id()) << '"';
  }
  std::cout << ", registered; offloads in flight: " << connector.offloads_in_flight() << "\n";
  return stored;
}

}  // namespace

int main() {
  auto registry = kvbm::BlockRegistry::builder().build();  // shared: one hash space, two tiers
  auto g1 = kvbm::BlockManager<kvbm::G1>::builder()
                .block_count(kG1Blocks).block_size(kTokensPerBlock).registry(registry)
                .lru_backend().build();
  auto g2 = kvbm::BlockManager<kvbm::G2>::builder()
                .block_count(kG2Blocks).block_size(kTokensPerBlock).registry(registry)
                .duplication_policy(kvbm::DuplicationPolicy::Reject)
                .lru_backend().build();
  KvBuffer g1_buffer{kG1Blocks};  // on a GPU: device memory (MemoryKind::Device)
  KvBuffer g2_buffer{kG2Blocks};  // on a GPU: pinned host memory (MemoryKind::PinnedHost)
  const kvbm::PhysicalPool g1_pool{g1.id(), g1_buffer.bytes.data(), kG1Blocks, kBlockBytes,
                                   kvbm::MemoryKind::Host};
  const kvbm::PhysicalPool g2_pool{g2.id(), g2_buffer.bytes.data(), kG2Blocks, kBlockBytes,
                                   kvbm::MemoryKind::Host};
  kvbm::HostStream stream;  // on a GPU: a CUDA stream and make_cuda_transfer_engine
  kvbm::TransferEngine engine{kvbm::make_host_copy_backend()};
  kvbm::examples::OffloadConnector connector{g1, g1_pool, g2, g2_pool, engine, stream};

  std::cout << "kvbm offload connector: G1 " << kG1Blocks << " blocks over G2 " << kG2Blocks
            << " blocks, " << kBlockBytes << " bytes each, host backend\n";

  const Prompt a{'A', 1000};
  const Prompt b{'B', 2000};

  std::cout << "1. prefill prompt A\n";
  prefill(connector, g1_pool, a);  // the request finishes at once: A's blocks are cached in G1
  connector.drain();
  std::cout << "  offload landed: G2 holds " << connector.stats().offloads_completed
            << " blocks; A's G1 blocks are evictable now\n";

  std::cout << "2. prefill prompt B (needs all of G1)\n";
  prefill(connector, g1_pool, b);
  connector.drain();

  std::cout << "3. prompt A again\n";
  auto onboarding = connector.start_onboarding(a.hashes);
  std::cout << "  G1 hit " << onboarding.cached.size() << ", G2 hit " << onboarding.arriving.size()
            << ": copying G2 ->";
  for (const auto& block : onboarding.arriving) std::cout << " G1[" << block.block_id() << "]";
  std::cout << " (fence ready: " << std::boolalpha << onboarding.ready.ready() << ")\n";
  const auto prefix = connector.finish_onboarding(std::move(onboarding));
  bool intact = prefix.size() == a.hashes.size();
  std::cout << "  onboarded and registered:";
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const std::string label = label_at(g1_pool, prefix[i].block_id());
    intact = intact && label == a.label(i) && prefix[i].sequence_hash() == a.hashes[i];
    std::cout << " G1[" << prefix[i].block_id() << "]=\"" << label << '"';
  }
  std::cout << "\n  A's bytes after offload, eviction and onboarding: "
            << (intact ? "intact" : "CORRUPTED") << "\n";

  const auto& s = connector.stats();
  std::cout << "stats: offloaded " << s.offloads_completed << "/" << s.offloads_started
            << ", skipped " << s.offloads_skipped << ", onboarded " << s.onboarded
            << ", G1 evictions safe in G2 " << s.evicted_in_g2 << ", lost " << s.evicted_lost
            << "\n  G1 " << g1.metrics() << "\n  G2 " << g2.metrics() << "\n";
  g1.check_invariants();
  g2.check_invariants();
  return intact ? 0 : 1;
}
