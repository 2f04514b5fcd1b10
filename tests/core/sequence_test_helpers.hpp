// tests/core/sequence_test_helpers.hpp — shared helpers of the request-sequence suites.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "core/test_helpers.hpp"

namespace kvbm::test {

using Seq = SchedulableSequence<G1>;

/// A SchedulableSequence over `prompt` with block size 4 (the test managers' size).
inline Seq make_seq(std::vector<Token> prompt, std::size_t max_output,
                    std::uint32_t block_size = kTestBlockSize, HashKeys keys = {},
                    SequenceDelegate delegate = {}) {
  return Seq::builder()
      .tokens(std::move(prompt))
      .max_output_tokens(max_output)
      .block_size(block_size)
      .hash_keys(std::move(keys))
      .delegate(std::move(delegate))
      .build();
}

/// Everything observable about a sequence, to prove a refused call changed nothing.
struct SeqSnapshot {
  SequenceState state;
  std::size_t prefill_position, kv_position, total, generated, assigned, staged, unassigned;
  std::vector<BlockId> pages;
  friend bool operator==(const SeqSnapshot&, const SeqSnapshot&) = default;
};

template <class S>
SeqSnapshot snapshot(const S& s) {
  return SeqSnapshot{s.state(),          s.prefill_position(), s.kv_position(),
                     s.total_tokens(),   s.generated_tokens(), s.assigned_blocks(),
                     s.staged_blocks(),  s.unassigned_blocks(), s.page_indices()};
}

/// Runs `call`, expects it to throw E with `kind`, and the sequence and pool to be unchanged.
template <class E, class Kind, class S, class F>
void expect_refused(S& seq, BlockManager<G1>& manager, Kind kind, F&& call) {
  const SeqSnapshot before = snapshot(seq);
  const std::size_t available = manager.available_blocks();
  try {
    call();
    ADD_FAILURE() << "expected " << to_string(kind);
  } catch (const E& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
  }
  EXPECT_EQ(snapshot(seq), before);
  EXPECT_EQ(manager.available_blocks(), available);
  manager.check_invariants();
}

/// Prefills the whole prompt in one chunk and emits `token`.
inline void prefill_all(Seq& seq, BlockManager<G1>& manager, Token token = 1000) {
  seq.schedule_prefill(seq.prefill_target() - seq.prefill_position(), manager);
  seq.apply_prefill(seq.remaining_tokens() != 0 ? std::optional<Token>(token) : std::nullopt,
                    manager);
}

/// One decode step with `token`.
inline DecodeOutcome decode(Seq& seq, BlockManager<G1>& manager, Token token) {
  seq.schedule_decode(manager);
  return seq.apply_decode(token, manager);
}

}  // namespace kvbm::test
