#include "replay/synthetic_tokens.hpp"

#include <algorithm>

#include "kvbm/kv_events.hpp"

namespace kvbm::replay {

namespace {
constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

std::vector<std::uint64_t> wire_hashes_sorted(std::span<const SequenceHash> hashes) {
  std::vector<std::uint64_t> out;
  out.reserve(hashes.size());
  for (const auto& h : hashes) out.push_back(wire_hash(h));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Token> synthetic_tokens(std::uint64_t id, std::uint32_t position,
                                    std::uint32_t block_size) {
  std::vector<Token> tokens(block_size);
  for (std::uint32_t j = 0; j < block_size; ++j) {
    const std::uint64_t index = std::uint64_t{position} * block_size + j;
    tokens[j] = static_cast<Token>(splitmix64(id ^ splitmix64(index)) >> 32);
  }
  return tokens;
}

void SyntheticTokens::note(std::span<const std::uint64_t> hash_ids,
                           std::span<const SequenceHash> hashes) {
  for (std::size_t p = 0; p < hashes.size(); ++p) {
    ids_.try_emplace(hashes[p], hash_ids[p / per_trace_block_]);
  }
}

TokenBlock SyntheticTokens::block(const SequenceHash& hash) const {
  const std::uint64_t id = ids_.at(hash);
  return TokenBlock(synthetic_tokens(id, hash.position(), block_size_), hash.position(), 0, hash);
}

}  // namespace kvbm::replay
