// Walks one block through its whole life: allocate -> complete -> register -> match -> drop
// -> cached -> matched again -> evicted and reused for a new tenant.
#include <kvbm/kvbm.hpp>

#include <iostream>
#include <numeric>

int main() {
  auto registry = kvbm::BlockRegistry::builder()
                      .frequency_tracker(kvbm::FrequencyTrackingCapacity::Small)
                      .build();
  auto manager = kvbm::BlockManager<kvbm::G1>::builder()
                     .block_count(4)
                     .block_size(4)
                     .registry(registry)
                     .lru_backend()
                     .build();
  auto show = [&](const char* step) {
    std::cout << "  " << step << "\n      available " << manager.available_blocks() << "/"
              << manager.total_blocks() << " | " << manager.metrics() << "\n";
  };
  std::cout << "kvbm quickstart: one G1 pool of " << manager.total_blocks() << " blocks, "
            << manager.block_size() << " tokens each (" << manager.id() << ")\n";

  // A prompt of 8 tokens is two full blocks.
  std::vector<kvbm::Token> prompt(8);
  std::iota(prompt.begin(), prompt.end(), 100);
  kvbm::TokenBlockSequence sequence(prompt, 4, /*salt=*/42);
  const auto hashes = sequence.sequence_hashes();

  {
    auto blocks = manager.allocate_blocks(2).value();
    show("allocated 2 mutable blocks");
    std::vector<kvbm::CompleteBlock<kvbm::G1>> complete;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      complete.push_back(std::move(blocks[i]).complete(sequence.blocks()[i]));
    }
    show("completed them with the prompt's token blocks");
    auto registered = manager.register_blocks(std::move(complete));
    show("registered them (prefix cache now knows both hashes)");

    auto hit = manager.match_blocks(hashes);
    std::cout << "  match_blocks found " << hit.size() << " of " << hashes.size()
              << " blocks, ids " << hit[0].block_id() << "," << hit[1].block_id()
              << ", use_count " << hit[0].use_count() << "\n";
  }
  show("dropped every handle: both blocks are cached in the inactive pool");

  {
    auto hit = manager.match_blocks(hashes);
    std::cout << "  a later request matches " << hit.size() << " cached blocks again\n";
  }

  auto [fresh, evicted] = manager.allocate_blocks_with_evictions(4).value();
  std::cout << "  allocating all 4 blocks evicted " << evicted.size()
            << " cached blocks (least recently released first): " << evicted[0] << "\n";
  show("the evicted slots were reused as new mutable blocks");
  fresh.clear();
  show("released");
  manager.check_invariants();
  std::cout << "invariants hold: free + inactive + held == total\n";
  return 0;
}
