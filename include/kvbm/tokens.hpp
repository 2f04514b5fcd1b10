// kvbm/tokens.hpp — token blocks and their hashes.
//
// block_hash    = xxh3_64(little-endian u32 tokens of the block, seed = salt)
// sequence hash = block 0: its block_hash; block i>0: xxh3_64([parent seq hash LE, block_hash LE], seed 0)
// sequence_hash() packs that chained value with its parent and position (kvbm::SequenceHash).
// Value types; a TokenBlockSequence is not synchronised (one owner at a time).
// Complexity: append() is O(1) amortised and hashes a block once, when it fills.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kvbm/sequence_hash.hpp"

namespace kvbm {

using Token = std::uint32_t;

/// One full block of tokens with its hashes.
class TokenBlock {
 public:
  TokenBlock(std::vector<Token> tokens, std::uint32_t position, std::uint64_t block_hash,
             SequenceHash sequence_hash)
      : tokens_{std::move(tokens)},
        position_{position},
        block_hash_{block_hash},
        sequence_hash_{sequence_hash} {}

  [[nodiscard]] std::span<const Token> tokens() const noexcept { return tokens_; }
  [[nodiscard]] std::size_t block_size() const noexcept { return tokens_.size(); }
  [[nodiscard]] std::uint32_t position() const noexcept { return position_; }
  [[nodiscard]] std::uint64_t block_hash() const noexcept { return block_hash_; }
  [[nodiscard]] SequenceHash sequence_hash() const noexcept { return sequence_hash_; }

 private:
  std::vector<Token> tokens_;
  std::uint32_t position_;
  std::uint64_t block_hash_;
  SequenceHash sequence_hash_;
};

/// xxh3-64 of the tokens' little-endian bytes, seeded with `salt`.
[[nodiscard]] std::uint64_t hash_token_block(std::span<const Token> tokens, std::uint64_t salt);
/// Chains a block hash onto its parent's sequence hash (xxh3-64 over 16 LE bytes, seed 0).
[[nodiscard]] std::uint64_t chain_sequence_hash(std::uint64_t parent_sequence_hash,
                                                std::uint64_t block_hash);

/// A token list split into full blocks; the tail that does not fill a block has no hash yet.
class TokenBlockSequence {
 public:
  /// Throws kvbm::ConfigError if block_size is 0.
  TokenBlockSequence(std::vector<Token> tokens, std::uint32_t block_size, std::uint64_t salt = 0);

  /// Appends one token; returns true when it completed a block (the new block is blocks().back()).
  /// Throws kvbm::PositionOutOfRange when the block would sit at position >= 2^24.
  bool append(Token token);
  void extend(std::span<const Token> tokens);

  [[nodiscard]] const std::vector<TokenBlock>& blocks() const noexcept { return blocks_; }
  [[nodiscard]] std::vector<SequenceHash> sequence_hashes() const;
  [[nodiscard]] std::span<const Token> tokens() const noexcept { return tokens_; }
  [[nodiscard]] std::size_t total_tokens() const noexcept { return tokens_.size(); }
  [[nodiscard]] std::uint32_t block_size() const noexcept { return block_size_; }
  [[nodiscard]] std::uint64_t salt() const noexcept { return salt_; }

 private:
  void seal_block();

  std::vector<Token> tokens_;
  std::vector<TokenBlock> blocks_;
  std::uint32_t block_size_;
  std::uint64_t salt_;
};

}  // namespace kvbm
