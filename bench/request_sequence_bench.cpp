// bench/request_sequence_bench.cpp — one decode step of SchedulableSequence against the same
// work done with direct BlockManager calls, at 1, 64 and 1024 concurrent sequences.
//
//   sequence_decode_step/<n>         schedule_decode + apply_decode on each of n sequences
//   floor/manual_decode_step/<n>     the same step by hand: a block allocated when the token
//                                    starts one; when a block's KV completes, its keyed hash
//                                    chained and the block staged + registered
// Both count one item per sequence-step (ns per sequence-step in docs/benchmarks.md); the label
// names the floor, so scripts/bench.sh prints the ratio, measured in the same run. Prompts are
// 64 tokens, block size 16; sequences that reach max_output_tokens are restarted with the timer
// paused.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvbm/kvbm.hpp"

namespace {

using kvbm::G1;
using Manager = kvbm::BlockManager<G1>;
using Sequence = kvbm::SchedulableSequence<G1>;

constexpr std::uint32_t kBs = 16;
constexpr std::size_t kPrompt = 64;
constexpr std::size_t kMaxOutput = 2048;

// Room for every sequence's longest row, plus its prompt blocks twice: a restarted sequence's
// prompt registrations become duplicates that keep the cached primaries alive.
Manager make_pool(std::size_t sequences) {
  return Manager::builder()
      .block_count(sequences * ((kPrompt + kMaxOutput) / kBs + kPrompt / kBs + 2))
      .block_size(kBs)
      .registry(kvbm::BlockRegistry::builder().build())
      .lru_backend()
      .build();
}

std::vector<std::uint32_t> prompt_of(std::size_t i) {
  std::vector<std::uint32_t> tokens(kPrompt);
  for (std::size_t t = 0; t < kPrompt; ++t) tokens[t] = static_cast<std::uint32_t>(i * 7919 + t);
  return tokens;
}

Sequence start_sequence(std::size_t i, Manager& pool) {
  auto seq = Sequence::builder()
                 .tokens(prompt_of(i))
                 .max_output_tokens(kMaxOutput)
                 .block_size(kBs)
                 .build();
  seq.schedule_prefill(kPrompt, pool);
  seq.apply_prefill(1, pool);
  return seq;
}

void sequence_decode_step(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Manager pool = make_pool(n);
  std::vector<Sequence> seqs;
  seqs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) seqs.push_back(start_sequence(i, pool));
  std::uint32_t token = 2;
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) {
      Sequence& seq = seqs[i];
      if (seq.is_complete()) {
        state.PauseTiming();
        seq.release();
        seq = start_sequence(i, pool);
        state.ResumeTiming();
      }
      seq.schedule_decode(pool);
      benchmark::DoNotOptimize(seq.apply_decode(token++, pool));
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetLabel("floor/manual_decode_step/" + std::to_string(n));
}

// What an engine does without the sequence API, keeping the same rules (keyed hashes, register
// when KV is computed, last block first on release).
struct Manual {
  std::vector<std::uint32_t> tokens;
  std::vector<kvbm::SequenceHash> hashes;
  std::vector<kvbm::ImmutableBlock<G1>> registered;
  std::vector<kvbm::MutableBlock<G1>> open;  // blocks whose KV is not complete
  std::size_t kv = 0;
  std::size_t generated = 0;
  kvbm::HashKeys keys;

  void hash_block(std::size_t index) {
    const std::span<const std::uint32_t> block{tokens.data() + index * kBs, kBs};
    const std::uint64_t h = keys.block_hash(block, index);
    std::optional<std::uint64_t> parent;
    std::uint64_t current = h;
    if (index != 0) {
      parent = hashes.back().current_fragment();
      current = kvbm::chain_sequence_hash(*parent, h);
    }
    hashes.push_back(
        kvbm::SequenceHash::from_parts(current, parent, static_cast<std::uint32_t>(index)));
  }
  void push(std::uint32_t token) {
    tokens.push_back(token);
    if (tokens.size() % kBs == 0) hash_block(tokens.size() / kBs - 1);
  }
  void register_front(Manager& pool) {
    const std::size_t index = registered.size();
    auto staged = std::move(open.front()).stage(hashes[index], kBs);
    open.erase(open.begin());
    registered.push_back(pool.register_block(std::move(staged)));
  }
  void start(std::size_t i, Manager& pool) {
    tokens.clear();
    hashes.clear();
    for (const std::uint32_t t : prompt_of(i)) push(t);
    auto blocks = pool.allocate_blocks(kPrompt / kBs);
    if (!blocks) throw std::runtime_error("manual_decode_step: pool exhausted");
    for (auto& b : *blocks) open.push_back(std::move(b));
    kv = kPrompt;
    while (registered.size() < kv / kBs) register_front(pool);
    push(1);
    generated = 1;
  }
  void release() {
    while (!open.empty()) open.pop_back();
    while (!registered.empty()) registered.pop_back();
  }
  void step(Manager& pool, std::uint32_t token) {
    if (kv / kBs >= registered.size() + open.size()) {  // the dangling token starts a block
      auto block = pool.allocate_blocks(1);
      if (!block) throw std::runtime_error("manual_decode_step: pool exhausted");
      open.push_back(std::move(block->front()));
    }
    push(token);
    ++generated;
    ++kv;
    if (kv % kBs == 0) register_front(pool);
  }
};

void manual_decode_step(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Manager pool = make_pool(n);
  std::vector<Manual> seqs(n);
  for (std::size_t i = 0; i < n; ++i) {
    seqs[i].tokens.reserve(kPrompt + kMaxOutput);
    seqs[i].start(i, pool);
  }
  std::uint32_t token = 2;
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) {
      Manual& seq = seqs[i];
      if (seq.generated >= kMaxOutput) {
        state.PauseTiming();
        seq.release();
        seq.start(i, pool);
        state.ResumeTiming();
      }
      seq.step(pool, token++);
      benchmark::DoNotOptimize(seq.kv);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

BENCHMARK(manual_decode_step)->Name("floor/manual_decode_step")->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK(sequence_decode_step)->Arg(1)->Arg(64)->Arg(1024);

}  // namespace
