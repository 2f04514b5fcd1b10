// tools/replay/synthetic_tokens.hpp — token ids for trace blocks, so the replay's KV events are
// ones a token-hashing router (Dynamo) indexes. A Mooncake trace names blocks by id only.
//
// Rule (deterministic, documented in docs/replay.md): the kvbm block at chain position p whose
// trace block id is `id` holds block_size tokens
//   token[j] = high 32 bits of splitmix64(id XOR splitmix64(p * block_size + j)),  j < block_size
// (splitmix64 as in Vigna's reference: add 0x9E3779B97F4A7C15, then the two xor-shift-multiply
// rounds 0xBF58476D1CE4E5B9 / 0x94D049BB133111EB, then x ^ (x >> 31)).
// The block's sequence hash stays the HashMapper's, so hit rates and results do not change.
// Not synchronised; one per replay.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "kvbm/tokens.hpp"

namespace kvbm::replay {

/// kvbm::wire_hash of each hash, sorted ascending (the --cache-dump format).
[[nodiscard]] std::vector<std::uint64_t> wire_hashes_sorted(std::span<const SequenceHash> hashes);

[[nodiscard]] std::vector<Token> synthetic_tokens(std::uint64_t id, std::uint32_t position,
                                                  std::uint32_t block_size);

class SyntheticTokens {
 public:
  SyntheticTokens(std::uint32_t block_size, std::uint32_t blocks_per_trace_block)
      : block_size_{block_size}, per_trace_block_{blocks_per_trace_block} {}
  /// Remembers the trace id behind each of a request's hashes (from HashMapper::map).
  void note(std::span<const std::uint64_t> hash_ids, std::span<const SequenceHash> hashes);
  /// The TokenBlock for a noted hash. Throws std::out_of_range for a hash never noted.
  [[nodiscard]] TokenBlock block(const SequenceHash& hash) const;

 private:
  std::uint32_t block_size_;
  std::uint32_t per_trace_block_;
  std::unordered_map<SequenceHash, std::uint64_t> ids_;
};

}  // namespace kvbm::replay
