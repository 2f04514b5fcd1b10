#include "replay/hash_mapping.hpp"

#include <array>
#include <optional>
#include <stdexcept>
#include <string>

#include "kvbm/errors.hpp"
#include "kvbm/tokens.hpp"
#include "replay/checked.hpp"

namespace kvbm::replay {

HashMapper::HashMapper(std::uint32_t block_size, std::uint64_t salt, std::uint32_t trace_block_size)
    : block_size_{block_size}, per_trace_block_{0}, salt_{salt} {
  const auto power_of_two = [](std::uint32_t n) { return n != 0 && (n & (n - 1)) == 0; };
  if (!power_of_two(block_size) || trace_block_size % block_size != 0) {
    throw std::invalid_argument("block size " + std::to_string(block_size) +
                                " must be a power of two dividing the trace block size " +
                                std::to_string(trace_block_size));
  }
  per_trace_block_ = trace_block_size / block_size;
}

std::vector<SequenceHash> HashMapper::map(std::span<const std::uint64_t> hash_ids) const {
  std::vector<SequenceHash> out;
  map_into(hash_ids, out);
  return out;
}

std::optional<std::size_t> HashMapper::block_count(std::size_t trace_blocks) const noexcept {
  const auto blocks = checked_mul<std::size_t>(trace_blocks, per_trace_block_);
  if (!blocks || *blocks > SequenceHash::kMaxPosition) return std::nullopt;
  return blocks;
}

void HashMapper::map_into(std::span<const std::uint64_t> hash_ids,
                          std::vector<SequenceHash>& out) const {
  out.clear();
  const auto blocks = block_count(hash_ids.size());
  if (!blocks) {
    throw PositionOutOfRange("a prompt of " + std::to_string(hash_ids.size()) +
                             " trace blocks needs more than 2^24 block positions");
  }
  out.reserve(*blocks);
  std::optional<std::uint64_t> parent;
  std::uint32_t position = 0;
  for (const std::uint64_t id : hash_ids) {
    for (std::uint32_t sub = 0; sub < per_trace_block_; ++sub) {
      const std::array<Token, 3> pseudo_tokens{static_cast<Token>(id), static_cast<Token>(id >> 32),
                                               sub};
      const std::uint64_t block_hash = hash_token_block(pseudo_tokens, salt_);
      const std::uint64_t current = parent ? chain_sequence_hash(*parent, block_hash) : block_hash;
      out.push_back(SequenceHash::from_parts(current, parent, position));
      parent = current;
      ++position;
    }
  }
}

}  // namespace kvbm::replay
