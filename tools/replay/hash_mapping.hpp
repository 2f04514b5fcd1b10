// tools/replay/hash_mapping.hpp — trace hash ids -> kvbm SequenceHashes.
//
// A trace names each 512-token prompt block by an id; equal ids mean equal prefixes. We turn the
// chain of ids into the SequenceHashes a real tokenizer would produce for it, so lineage-aware
// policies see the real prefix tree:
//   block_hash(id, sub)  = kvbm::hash_token_block([id lo32, id hi32, sub], salt)
//   current(position 0)  = block_hash
//   current(position p)  = kvbm::chain_sequence_hash(current(p - 1), block_hash)
//   SequenceHash         = SequenceHash::from_parts(current, current(p - 1), p)
// When the pool's block size is smaller than the trace's, each trace block becomes
// trace_block_size / block_size consecutive kvbm blocks (sub = 0, 1, ...).
// Value type, no state beyond its settings; thread-safe for concurrent const use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kvbm/sequence_hash.hpp"
#include "replay/trace.hpp"

namespace kvbm::replay {

class HashMapper {
 public:
  /// `block_size` must be a power of two dividing `trace_block_size`; throws
  /// std::invalid_argument otherwise.
  explicit HashMapper(std::uint32_t block_size = kTraceBlockSize, std::uint64_t salt = 0,
                      std::uint32_t trace_block_size = kTraceBlockSize);

  [[nodiscard]] std::uint32_t block_size() const noexcept { return block_size_; }
  [[nodiscard]] std::uint32_t blocks_per_trace_block() const noexcept { return per_trace_block_; }
  [[nodiscard]] std::uint64_t salt() const noexcept { return salt_; }

  /// How many kvbm blocks a prompt of `trace_blocks` trace blocks maps to, or std::nullopt when
  /// that chain is longer than SequenceHash positions allow (2^24): such a request cannot be
  /// named and callers count it as rejected. O(1).
  [[nodiscard]] std::optional<std::size_t> block_count(std::size_t trace_blocks) const noexcept;

  /// The request's prompt as kvbm block hashes, position 0 first. Throws
  /// kvbm::PositionOutOfRange (before allocating) when block_count() is std::nullopt.
  [[nodiscard]] std::vector<SequenceHash> map(std::span<const std::uint64_t> hash_ids) const;
  /// Same, appending into `out` (cleared first) to reuse its capacity.
  void map_into(std::span<const std::uint64_t> hash_ids, std::vector<SequenceHash>& out) const;

 private:
  std::uint32_t block_size_;
  std::uint32_t per_trace_block_;
  std::uint64_t salt_;
};

}  // namespace kvbm::replay
