#include "kvbm/tokens.hpp"

#include <xxhash.h>

#include <array>
#include <bit>
#include <cstring>

#include "kvbm/errors.hpp"

namespace kvbm {

namespace {
void store_le64(unsigned char* out, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}
}  // namespace

std::uint64_t hash_token_block(std::span<const Token> tokens, std::uint64_t salt) {
  if constexpr (std::endian::native == std::endian::little) {
    return XXH3_64bits_withSeed(tokens.data(), tokens.size_bytes(), salt);
  } else {
    std::vector<unsigned char> bytes(tokens.size() * 4);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<unsigned char>(tokens[i] >> (8 * b));
    }
    return XXH3_64bits_withSeed(bytes.data(), bytes.size(), salt);
  }
}

std::uint64_t chain_sequence_hash(std::uint64_t parent_sequence_hash, std::uint64_t block_hash) {
  std::array<unsigned char, 16> bytes{};
  store_le64(bytes.data(), parent_sequence_hash);
  store_le64(bytes.data() + 8, block_hash);
  return XXH3_64bits_withSeed(bytes.data(), bytes.size(), 0);
}

TokenBlockSequence::TokenBlockSequence(std::vector<Token> tokens, std::uint32_t block_size,
                                       std::uint64_t salt)
    : block_size_{block_size}, salt_{salt} {
  if (block_size == 0) throw ConfigError("TokenBlockSequence: block_size must be greater than 0");
  tokens_.reserve(tokens.size());
  blocks_.reserve(tokens.size() / block_size);
  extend(tokens);
}

bool TokenBlockSequence::append(Token token) {
  tokens_.push_back(token);
  if (tokens_.size() % block_size_ != 0) return false;
  try {
    seal_block();
  } catch (...) {
    tokens_.pop_back();
    throw;
  }
  return true;
}

void TokenBlockSequence::extend(std::span<const Token> tokens) {
  for (Token t : tokens) append(t);
}

void TokenBlockSequence::seal_block() {
  const auto position = static_cast<std::uint32_t>(blocks_.size());
  const std::span<const Token> block{tokens_.data() + tokens_.size() - block_size_, block_size_};
  const std::uint64_t block_hash = hash_token_block(block, salt_);
  std::optional<std::uint64_t> parent;
  std::uint64_t chained = block_hash;
  if (!blocks_.empty()) {
    parent = blocks_.back().sequence_hash().current_fragment();
    chained = chain_sequence_hash(*parent, block_hash);
  }
  const SequenceHash hash = SequenceHash::from_parts(chained, parent, position);
  blocks_.emplace_back(std::vector<Token>(block.begin(), block.end()), position, block_hash, hash);
}

std::vector<SequenceHash> TokenBlockSequence::sequence_hashes() const {
  std::vector<SequenceHash> out;
  out.reserve(blocks_.size());
  for (const auto& b : blocks_) out.push_back(b.sequence_hash());
  return out;
}

}  // namespace kvbm
