// Exit code 0 only if an installed kvbm allocates, registers and matches a block.
#include <kvbm/kvbm.hpp>

int main() {
  auto manager = kvbm::BlockManager<kvbm::G2>::builder()
                     .block_count(2)
                     .block_size(4)
                     .registry(kvbm::BlockRegistry::builder().build())
                     .build();
  kvbm::TokenBlockSequence seq({1, 2, 3, 4}, 4);
  auto block = std::move(manager.allocate_blocks(1)->front()).complete(seq.blocks()[0]);
  auto registered = manager.register_block(std::move(block));
  const auto hashes = seq.sequence_hashes();
  return manager.match_blocks(hashes).size() == 1 ? 0 : 1;
}
