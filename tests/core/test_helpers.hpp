// tests/core/test_helpers.hpp — shared fixtures for the core acceptance suite.
//
// Mirrors the original crate's `testing` module: LRU managers with block size 4, iota token
// blocks salted with 42, a frequency tracker that counts every touch exactly, and synthetic
// sequence hashes built directly from their parts.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvbm/kvbm.hpp"

namespace kvbm::test {

inline constexpr std::uint64_t kTestSalt = 42;
inline constexpr std::uint32_t kTestBlockSize = 4;

// ---------------------------------------------------------------- tokens and hashes

/// Tokens start, start+1, ..., start+size-1.
inline std::vector<Token> iota_tokens(Token start, std::size_t size) {
  std::vector<Token> tokens(size);
  std::iota(tokens.begin(), tokens.end(), start);
  return tokens;
}

/// One full block (position 0) of iota tokens, salt 42 — `create_iota_token_block`.
inline TokenBlock iota_block(Token start, std::uint32_t size = kTestBlockSize) {
  TokenBlockSequence seq(iota_tokens(start, size), size, kTestSalt);
  return seq.blocks().front();
}

/// A chain of `count` full blocks of iota tokens starting at `start` (salt 42).
inline TokenBlockSequence iota_sequence(Token start, std::size_t count,
                                        std::uint32_t size = kTestBlockSize) {
  return TokenBlockSequence(iota_tokens(start, count * size), size, kTestSalt);
}

/// A synthetic hash: current = value at `position`, parent = value-1 for position > 0.
inline SequenceHash synth_hash(std::uint64_t value, std::uint32_t position = 0) {
  return SequenceHash::from_parts(
      value, position == 0 ? std::nullopt : std::optional<std::uint64_t>(value - 1), position);
}

// ---------------------------------------------------------------- frequency tracking

/// Exact, thread-safe touch counter (the original's MeteredFrequencyTracker).
class CountingTracker final : public FrequencyTracker {
 public:
  void touch(u128 key) override {
    std::lock_guard lock(mu_);
    ++counts_[key];
    ++total_;
  }
  [[nodiscard]] std::uint32_t count(u128 key) const override {
    std::lock_guard lock(mu_);
    auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
  }
  [[nodiscard]] std::uint32_t touches(const SequenceHash& h) const { return count(h.as_u128()); }
  [[nodiscard]] std::uint64_t total() const {
    std::lock_guard lock(mu_);
    return total_;
  }
  void reset() {
    std::lock_guard lock(mu_);
    counts_.clear();
    total_ = 0;
  }

 private:
  struct KeyHash {
    std::size_t operator()(u128 k) const noexcept {
      return SequenceHash::from_u128(k).mix();
    }
  };
  mutable std::mutex mu_;
  std::unordered_map<u128, std::uint32_t, KeyHash> counts_;
  std::uint64_t total_ = 0;
};

// ---------------------------------------------------------------- managers

struct ManagerOptions {
  std::size_t block_count = 10;
  std::uint32_t block_size = kTestBlockSize;
  DuplicationPolicy policy = DuplicationPolicy::Allow;
  bool default_reset_on_release = false;
  EvictionBackend backend = EvictionBackend::Lru;
  LineageEviction lineage = LineageEviction::Tick;
};

template <class Builder>
Builder& apply_backend(Builder& b, EvictionBackend backend, LineageEviction lineage) {
  b.backend(backend);
  return backend == EvictionBackend::Lineage ? b.lineage_backend(lineage) : b;
}

inline BlockRegistry make_registry() {
  return BlockRegistry::builder().frequency_tracker(FrequencyTrackingCapacity::Medium).build();
}

template <class Tier = G1>
BlockManager<Tier> make_manager(const ManagerOptions& o, const BlockRegistry& registry) {
  auto builder = BlockManager<Tier>::builder();
  builder.block_count(o.block_count)
      .block_size(o.block_size)
      .registry(registry)
      .duplication_policy(o.policy)
      .default_reset_on_release(o.default_reset_on_release);
  return apply_backend(builder, o.backend, o.lineage).build();
}

/// `create_test_manager(n)`: LRU, block size 4, registry with a Medium TinyLFU tracker.
template <class Tier = G1>
BlockManager<Tier> create_test_manager(std::size_t block_count,
                                       DuplicationPolicy policy = DuplicationPolicy::Allow) {
  ManagerOptions o;
  o.block_count = block_count;
  o.policy = policy;
  return make_manager<Tier>(o, make_registry());
}

/// A manager whose registry records every frequency touch exactly.
template <class Tier = G1>
struct Metered {
  std::shared_ptr<CountingTracker> tracker;
  BlockRegistry registry;
  BlockManager<Tier> manager;
};

template <class Tier = G1>
Metered<Tier> create_metered_manager(ManagerOptions o = {}) {
  auto tracker = std::make_shared<CountingTracker>();
  auto registry = BlockRegistry::builder().frequency_tracker(tracker).build();
  auto manager = make_manager<Tier>(o, registry);
  return Metered<Tier>{std::move(tracker), std::move(registry), std::move(manager)};
}

// ---------------------------------------------------------------- block helpers

template <class Tier>
MutableBlock<Tier> allocate_one(BlockManager<Tier>& m) {
  auto blocks = m.allocate_blocks(1);
  if (!blocks || blocks->size() != 1) throw std::runtime_error("allocate_one: pool exhausted");
  return std::move(blocks->front());
}

/// Allocate, stage with `hash`, register: one ImmutableBlock.
template <class Tier>
ImmutableBlock<Tier> register_hash(BlockManager<Tier>& m, const SequenceHash& hash) {
  auto cb = allocate_one(m).stage(hash, m.block_size());
  return m.register_block(std::move(cb));
}

/// Allocate, complete with `tb`, register.
template <class Tier>
ImmutableBlock<Tier> register_token_block(BlockManager<Tier>& m, const TokenBlock& tb) {
  auto cb = allocate_one(m).complete(tb);
  return m.register_block(std::move(cb));
}

/// Registers every full block of `seq` in one batch call.
template <class Tier>
std::vector<ImmutableBlock<Tier>> register_sequence(BlockManager<Tier>& m,
                                                    const TokenBlockSequence& seq) {
  auto mutables = m.allocate_blocks(seq.blocks().size());
  if (!mutables) throw std::runtime_error("register_sequence: pool exhausted");
  std::vector<CompleteBlock<Tier>> completes;
  for (std::size_t i = 0; i < seq.blocks().size(); ++i) {
    completes.push_back(std::move((*mutables)[i]).complete(seq.blocks()[i]));
  }
  return m.register_blocks(std::move(completes));
}

/// Registers `count` iota blocks (distinct contents) and drops them into the inactive pool —
/// `populate_manager_with_blocks`. Returns their hashes.
template <class Tier>
std::vector<SequenceHash> populate_inactive(BlockManager<Tier>& m, std::size_t count,
                                            Token start = 1000) {
  std::vector<SequenceHash> hashes;
  for (std::size_t i = 0; i < count; ++i) {
    auto block = register_token_block(m, iota_block(start + static_cast<Token>(i * 4)));
    hashes.push_back(block.sequence_hash());
  }
  return hashes;
}

template <class Block>
std::vector<BlockId> ids_of(const std::vector<Block>& blocks) {
  std::vector<BlockId> ids;
  ids.reserve(blocks.size());
  for (const auto& b : blocks) ids.push_back(b.block_id());
  return ids;
}

template <class Block>
std::vector<SequenceHash> hashes_of(const std::vector<Block>& blocks) {
  std::vector<SequenceHash> out;
  out.reserve(blocks.size());
  for (const auto& b : blocks) out.push_back(b.sequence_hash());
  return out;
}

/// Drops one element of a vector of move-only handles, by moving it out into a scope.
template <class Block>
void drop_at(std::vector<Block>& blocks, std::size_t index) {
  { Block gone = std::move(blocks[index]); }
  blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(index));
}

/// Drops every element in order front to back (vector destruction order is unspecified).
template <class Block>
void drop_in_order(std::vector<Block>& blocks) {
  for (auto& b : blocks) {
    Block gone = std::move(b);
  }
  blocks.clear();
}

}  // namespace kvbm::test
