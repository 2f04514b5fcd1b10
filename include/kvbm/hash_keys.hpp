// kvbm/hash_keys.hpp — what besides the tokens names a KV block: tenant salt, LoRA adapter and
// multimodal items, folded into the positional lineage hash so blocks computed under different
// keys never match.
//
// Folding (see src/core/hash_keys.cpp):
//   seed        = 0 when cache_salt and lora_name are both empty (bit-exact with dynamo-tokens and
//                 kvbm::TokenBlockSequence), else xxh3_64 over a tagged, length-prefixed encoding
//                 of both; it seeds every block's token hash, so every block of the chain differs.
//   block_hash  = hash_token_block(block tokens, seed); when multimodal items overlap the block,
//                 xxh3_64 over [block_hash, item hashes in order] (LE, seed 0): the same
//                 placeholder tokens with different images give different blocks, and, through the
//                 chain, different blocks for everything after them.
// Value type: copy freely; no synchronisation (const use from many threads is safe).
// Complexity: O(items) per block for multimodal lookups; O(1) otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvbm/sequence_hash.hpp"
#include "kvbm/tokens.hpp"

namespace kvbm {

/// One multimodal item (an image, an audio clip) spliced into the prompt as placeholder tokens:
/// `hash` identifies its content; it covers prompt tokens [offset, offset + length).
struct MultimodalItem {
  std::uint64_t hash = 0;
  std::size_t offset = 0;
  std::size_t length = 0;
  friend bool operator==(const MultimodalItem&, const MultimodalItem&) = default;
};

class HashKeys {
 public:
  HashKeys() = default;

  /// A tenant's secret: requests with different salts never share a block (the mitigation for
  /// the prefix-cache timing side channel). Empty: no salt.
  HashKeys& set_cache_salt(std::string salt);
  /// The LoRA adapter the KV is computed under; empty: the base model.
  HashKeys& set_lora_name(std::string name);
  /// Adds an item; items may be added in any order (they are kept sorted by offset). A zero
  /// length is refused with ConfigError.
  HashKeys& add_multimodal_item(MultimodalItem item);

  [[nodiscard]] const std::string& cache_salt() const noexcept { return cache_salt_; }
  [[nodiscard]] const std::string& lora_name() const noexcept { return lora_name_; }
  [[nodiscard]] std::span<const MultimodalItem> multimodal_items() const noexcept {
    return items_;
  }
  /// True when the keys change no hash.
  [[nodiscard]] bool empty() const noexcept {
    return cache_salt_.empty() && lora_name_.empty() && items_.empty();
  }

  /// The seed of every block's token hash (0 for no salt and no LoRA).
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
  /// Hashes of the items overlapping block `block_index` (tokens [i*bs, (i+1)*bs)), in offset
  /// order: what a KV event's `extra_keys` carries for that block.
  [[nodiscard]] std::vector<std::uint64_t> block_extra_keys(std::size_t block_index,
                                                            std::uint32_t block_size) const;
  /// The keyed block hash of one full block whose first token is at block_index * tokens.size().
  [[nodiscard]] std::uint64_t block_hash(std::span<const Token> tokens,
                                         std::size_t block_index) const;
  /// Throws ConfigError when an item does not lie inside a prompt of `prompt_tokens` tokens.
  void validate(std::size_t prompt_tokens) const;

  friend bool operator==(const HashKeys& a, const HashKeys& b) {
    return a.cache_salt_ == b.cache_salt_ && a.lora_name_ == b.lora_name_ && a.items_ == b.items_;
  }

 private:
  void refresh_seed() noexcept;

  std::string cache_salt_;
  std::string lora_name_;
  std::vector<MultimodalItem> items_;
  std::uint64_t seed_ = 0;
};

/// The sequence hashes of the full blocks of `tokens` under `keys` (position 0 first). With empty
/// keys equal to TokenBlockSequence(tokens, block_size, 0).sequence_hashes().
[[nodiscard]] std::vector<SequenceHash> keyed_sequence_hashes(std::span<const Token> tokens,
                                                              std::uint32_t block_size,
                                                              const HashKeys& keys);

}  // namespace kvbm
