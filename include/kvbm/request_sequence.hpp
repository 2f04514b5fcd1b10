// kvbm/request_sequence.hpp — RequestSequence<Tier>: one request's tokens and the blocks that hold
// its KV, managed directly through a BlockManager<Tier>.
//
// The blocks form one row, in token order (page_indices()): assigned (registered ImmutableBlocks,
// matchable by other requests) ++ staged (CompleteBlocks) ++ unassigned (MutableBlocks). A block
// is registered only when the caller says its KV exists (complete_and_register_pending); a block
// whose tokens do not fill it is never registered. For the two-phase scheduler protocol on top of
// this, see kvbm/schedulable_sequence.hpp.
//
// Rules: match_and_add_prefix never covers the last token (at most (tokens - 1) / block_size
// blocks: that token must be computed to give logits); allocate_blocks and reacquire are
// all-or-nothing; release() gives blocks back last block first so chain tails are evicted before
// their prefixes. A call that throws changed nothing. Under DuplicationPolicy::Reject a
// registration may be answered with the existing primary (same KV, another slot): re-read
// page_indices() after each registration. Once it holds blocks the sequence is bound
// to their manager: a call with another manager throws ForeignBlock, one with another block size
// BlockSizeMismatch.
// Ownership: move-only; owns its block handles (dropping the sequence releases them, tail first).
// Thread safety: a value; use one sequence from one thread at a time (the manager may be shared).
// Complexity: append_token is O(1) amortised (hashes a block once, when it fills); every manager
// call takes the pool lock once per batch.
#pragma once

#include <bit>
#include <cstddef>
#include <memory>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kvbm/block_manager.hpp"
#include "kvbm/blocks.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/hash_keys.hpp"
#include "kvbm/sequence_state.hpp"
#include "kvbm/types.hpp"

namespace kvbm {

template <class Tier>
class SchedulableSequence;

namespace detail {
/// Validates a sequence's settings; throws ConfigError naming the problem.
void validate_sequence(std::size_t prompt_tokens, std::size_t max_output_tokens,
                       std::uint32_t block_size, const HashKeys& keys);
[[nodiscard]] constexpr std::size_t blocks_for(std::size_t tokens,
                                             std::size_t block_size) noexcept {
  return (tokens + block_size - 1) / block_size;
}
}  // namespace detail

template <class Tier>
class RequestSequence {
 public:
  /// Throws ConfigError for a block_size that is not a power of two, a multimodal item outside
  /// the prompt, or a prompt + max_output_tokens past the last hashable block position (2^24).
  RequestSequence(std::vector<std::uint32_t> prompt, std::size_t max_output_tokens,
                  std::uint32_t block_size, HashKeys keys = {})
      : keys_{std::move(keys)},
        shared_keys_{keys_.empty() ? nullptr : std::make_shared<const HashKeys>(keys_)},
        block_size_{block_size},
        block_shift_{static_cast<std::uint32_t>(std::countr_zero(block_size))},
        num_input_tokens_{prompt.size()},
        max_output_tokens_{max_output_tokens} {
    detail::validate_sequence(prompt.size(), max_output_tokens, block_size, keys_);
    tokens_.reserve(prompt.size() + std::min<std::size_t>(max_output_tokens, 4096));
    hashes_.reserve(prompt.size() / block_size + 1);
    for (const std::uint32_t token : prompt) push_token(token);
  }
  RequestSequence(RequestSequence&&) noexcept = default;
  RequestSequence& operator=(RequestSequence&& other) noexcept {
    if (this != &other) {
      release();
      tokens_ = std::move(other.tokens_);
      hashes_ = std::move(other.hashes_);
      keys_ = std::move(other.keys_);
      shared_keys_ = std::move(other.shared_keys_);
      block_size_ = other.block_size_;
      block_shift_ = other.block_shift_;
      num_input_tokens_ = other.num_input_tokens_;
      max_output_tokens_ = other.max_output_tokens_;
      generated_tokens_ = other.generated_tokens_;
      prefix_matched_blocks_ = other.prefix_matched_blocks_;
      manager_ = other.manager_;
      assigned_ = std::move(other.assigned_);
      staged_ = std::move(other.staged_);
      unassigned_ = std::move(other.unassigned_);
    }
    return *this;
  }
  RequestSequence(const RequestSequence&) = delete;
  RequestSequence& operator=(const RequestSequence&) = delete;
  ~RequestSequence() { release(); }

  /// Adopts the longest cached prefix (at most (total_tokens() - 1) / block_size() blocks) as
  /// assigned blocks; returns how many. Throws ApplyError(WrongState) if the sequence already
  /// holds blocks.
  std::size_t match_and_add_prefix(BlockManager<Tier>& manager) {
    return match_prefix_up_to(manager, match_limit(total_tokens()));
  }

  /// Appends `n` fresh blocks to the row, all or nothing: false (nothing taken) when the pool
  /// cannot supply them. n == 0 is true.
  bool allocate_blocks(std::size_t n, BlockManager<Tier>& manager) {
    return allocate(n, manager, nullptr);
  }

  /// Stages every unassigned block whose tokens are complete; returns how many.
  std::size_t stage_pending() { return stage_through(num_blocks()); }
  /// Registers every staged block (they become matchable); returns how many.
  std::size_t register_staged(BlockManager<Tier>& manager) {
    if (staged_.empty()) return 0;
    check_manager(manager, "register_staged");
    const std::size_t count = staged_.size();
    for (auto& block : manager.register_blocks(std::move(staged_))) {
      assigned_.push_back(std::move(block));
    }
    staged_.clear();
    return count;
  }
  /// Stages and registers every block whose tokens are complete: call it once their KV has been
  /// computed. Returns how many blocks were registered.
  std::size_t complete_and_register_pending(BlockManager<Tier>& manager) {
    return complete_and_register_pending(manager, num_blocks());
  }
  /// Same, but only blocks among the first `max_blocks` of the row (those whose KV exists).
  std::size_t complete_and_register_pending(BlockManager<Tier>& manager, std::size_t max_blocks) {
    if (!staged_.empty() || pending_count(max_blocks) != 0) {
      check_manager(manager, "complete_and_register_pending");
    }
    stage_through(max_blocks);
    return register_staged(manager);
  }

  /// Appends one generated token; returns the index of the block it filled, if any. Allocates
  /// and registers nothing. Throws ApplyError(AppendExceedsRemaining) past max_output_tokens.
  std::optional<std::size_t> append_token(std::uint32_t token) {
    if (generated_tokens_ >= max_output_tokens_) {
      throw ApplyError(ApplyErrorKind::AppendExceedsRemaining,
                       "append_token: " + std::to_string(max_output_tokens_) +
                           " output tokens already generated");
    }
    const bool filled = push_token(token);
    ++generated_tokens_;
    if (!filled) return std::nullopt;
    return hashes_.size() - 1;
  }

  /// Gives every block back, last block first (unassigned, then staged, then assigned), so chain
  /// tails are evicted before their prefixes. Idempotent.
  void release() noexcept {
    while (!unassigned_.empty()) unassigned_.pop_back();
    while (!staged_.empty()) staged_.pop_back();
    while (!assigned_.empty()) assigned_.pop_back();
    manager_ = ManagerId{};
  }

  /// After release(): re-matches what is still cached (capped as match_and_add_prefix) and
  /// allocates unassigned blocks for the rest of the tokens, all or nothing; their KV must be
  /// recomputed before complete_and_register_pending. False (nothing held) when the pool cannot
  /// supply them. Throws ApplyError(WrongState) while blocks are held.
  bool reacquire(BlockManager<Tier>& manager) {
    return reacquire_up_to(manager, total_tokens(), nullptr);
  }

  /// Drops up to `n` unassigned blocks, last first; returns how many.
  std::size_t drop_last_unassigned(std::size_t n) noexcept {
    std::size_t dropped = 0;
    while (dropped < n && !unassigned_.empty()) {
      unassigned_.pop_back();
      ++dropped;
    }
    if (num_held() == 0) manager_ = ManagerId{};
    return dropped;
  }

  // ------------------------------------------------------------------ accessors
  [[nodiscard]] std::size_t num_input_tokens() const noexcept { return num_input_tokens_; }
  [[nodiscard]] std::size_t total_tokens() const noexcept { return tokens_.size(); }
  [[nodiscard]] std::size_t generated_tokens() const noexcept { return generated_tokens_; }
  [[nodiscard]] std::size_t max_output_tokens() const noexcept { return max_output_tokens_; }
  [[nodiscard]] std::size_t remaining_tokens() const noexcept {
    return max_output_tokens_ - generated_tokens_;
  }
  /// Full token blocks (each has a sequence hash).
  [[nodiscard]] std::size_t num_blocks() const noexcept { return hashes_.size(); }
  [[nodiscard]] std::size_t assigned_blocks() const noexcept { return assigned_.size(); }
  [[nodiscard]] std::size_t staged_blocks() const noexcept { return staged_.size(); }
  [[nodiscard]] std::size_t unassigned_blocks() const noexcept { return unassigned_.size(); }
  /// Blocks held: the length of page_indices().
  [[nodiscard]] std::size_t num_held() const noexcept {
    return assigned_.size() + staged_.size() + unassigned_.size();
  }
  [[nodiscard]] std::size_t prefix_matched_blocks() const noexcept {
    return prefix_matched_blocks_;
  }
  /// Tokens not covered by the cache hit (what prefill must compute).
  [[nodiscard]] std::size_t new_tokens_for_prefill() const noexcept {
    return total_tokens() - prefix_matched_blocks_ * block_size_;
  }
  [[nodiscard]] std::uint32_t block_size() const noexcept { return block_size_; }
  /// Full blocks in `tokens` tokens (floor), and blocks needed to hold them (ceil): shifts, the
  /// block size being a power of two.
  [[nodiscard]] std::size_t full_blocks(std::size_t tokens) const noexcept {
    return tokens >> block_shift_;
  }
  [[nodiscard]] std::size_t blocks_for(std::size_t tokens) const noexcept {
    return (tokens + block_size_ - 1) >> block_shift_;
  }
  [[nodiscard]] bool is_complete() const noexcept {
    return generated_tokens_ >= max_output_tokens_;
  }
  [[nodiscard]] std::span<const std::uint32_t> tokens() const noexcept { return tokens_; }
  /// Sequence hashes of the full token blocks, position 0 first.
  [[nodiscard]] std::span<const SequenceHash> sequence_hashes() const noexcept { return hashes_; }
  [[nodiscard]] const HashKeys& hash_keys() const noexcept { return keys_; }
  /// The row a device block table needs: block ids in token order.
  [[nodiscard]] std::vector<BlockId> page_indices() const {
    std::vector<BlockId> ids;
    ids.reserve(num_held());
    for (const auto& b : assigned_) ids.push_back(b.block_id());
    for (const auto& b : staged_) ids.push_back(b.block_id());
    for (const auto& b : unassigned_) ids.push_back(b.block_id());
    return ids;
  }

 private:
  friend class SchedulableSequence<Tier>;

  [[nodiscard]] std::size_t match_limit(std::size_t tokens) const noexcept {
    return tokens == 0 ? 0 : full_blocks(tokens - 1);
  }
  [[nodiscard]] std::size_t pending_count(std::size_t max_blocks) const noexcept {
    const std::size_t start = assigned_.size() + staged_.size();
    const std::size_t end =
        std::min({max_blocks, hashes_.size(), start + unassigned_.size()});
    return end > start ? end - start : 0;
  }

  // Appends a token and hashes the block it fills; true when it filled one. Strong guarantee.
  bool push_token(std::uint32_t token) {
    tokens_.push_back(token);
    if ((tokens_.size() & (block_size_ - 1)) != 0) return false;
    try {
      const std::size_t index = hashes_.size();
      const std::span<const std::uint32_t> block{tokens_.data() + tokens_.size() - block_size_,
                                                 block_size_};
      const std::uint64_t block_hash = keys_.block_hash(block, index);
      std::optional<std::uint64_t> parent;
      std::uint64_t current = block_hash;
      if (index != 0) {
        parent = hashes_.back().current_fragment();
        current = chain_sequence_hash(*parent, block_hash);
      }
      hashes_.push_back(
          SequenceHash::from_parts(current, parent, static_cast<std::uint32_t>(index)));
    } catch (...) {
      tokens_.pop_back();
      throw;
    }
    return true;
  }

  void check_manager(const BlockManager<Tier>& manager, const char* operation) const {
    if (manager.block_size() != block_size_) {
      throw BlockSizeMismatch(manager.block_size(), block_size_);
    }
    if (num_held() != 0 && manager.id() != manager_) {
      throw ForeignBlock(std::string(operation) +
                         ": the sequence holds blocks of another manager");
    }
  }

  std::size_t match_prefix_up_to(BlockManager<Tier>& manager, std::size_t max_blocks) {
    if (num_held() != 0) {
      throw ApplyError(ApplyErrorKind::WrongState,
                       "match_and_add_prefix: the sequence already holds blocks");
    }
    check_manager(manager, "match_and_add_prefix");
    const std::size_t limit = std::min(max_blocks, hashes_.size());
    if (limit == 0) {
      prefix_matched_blocks_ = 0;
      return 0;
    }
    assigned_ = manager.match_blocks(std::span<const SequenceHash>(hashes_).first(limit));
    prefix_matched_blocks_ = assigned_.size();
    if (!assigned_.empty()) manager_ = manager.id();
    return assigned_.size();
  }

  bool allocate(std::size_t n, BlockManager<Tier>& manager, std::vector<SequenceHash>* evicted) {
    if (n == 0) return true;
    check_manager(manager, "allocate_blocks");
    if (evicted != nullptr) {
      auto result = manager.allocate_blocks_with_evictions(n);
      if (!result) return false;
      for (auto& block : result->first) unassigned_.push_back(std::move(block));
      *evicted = std::move(result->second);
    } else {
      auto blocks = manager.allocate_blocks(n);
      if (!blocks) return false;
      for (auto& block : *blocks) unassigned_.push_back(std::move(block));
    }
    manager_ = manager.id();
    return true;
  }

  std::size_t stage_through(std::size_t max_blocks) {
    const std::size_t count = pending_count(max_blocks);
    if (count == 0) return 0;
    const std::size_t start = assigned_.size() + staged_.size();
    for (std::size_t i = 0; i < count; ++i) {
      // Cannot throw: the block size was checked when the block joined the row. The tokens go
      // with the block's Stored event when the manager reports KV events.
      const std::size_t block = start + i;
      staged_.push_back(std::move(unassigned_[i])
                            .stage(hashes_[block], std::span<const std::uint32_t>(tokens_).subspan(
                                                       block * block_size_, block_size_),
                                   shared_keys_));
    }
    unassigned_.erase(unassigned_.begin(),
                      unassigned_.begin() + static_cast<std::ptrdiff_t>(count));
    return count;
  }

  // reacquire over the first `tokens` tokens: match at most (tokens-1)/bs blocks, allocate the
  // rest of blocks_for(tokens). All or nothing.
  bool reacquire_up_to(BlockManager<Tier>& manager, std::size_t tokens,
                       std::vector<SequenceHash>* evicted) {
    if (num_held() != 0) {
      throw ApplyError(ApplyErrorKind::WrongState, "reacquire: release() the sequence first");
    }
    check_manager(manager, "reacquire");
    const std::size_t matched = match_prefix_up_to(manager, match_limit(tokens));
    const std::size_t rest = blocks_for(tokens) - matched;
    if (!allocate(rest, manager, evicted)) {
      release();  // tail first: the matched blocks go back as they came
      prefix_matched_blocks_ = 0;
      return false;
    }
    return true;
  }

  std::vector<std::uint32_t> tokens_;
  std::vector<SequenceHash> hashes_;
  HashKeys keys_;
  std::shared_ptr<const HashKeys> shared_keys_;  // what staged blocks carry to KV events
  std::uint32_t block_size_;
  std::uint32_t block_shift_;
  std::size_t num_input_tokens_;
  std::size_t max_output_tokens_;
  std::size_t generated_tokens_ = 0;
  std::size_t prefix_matched_blocks_ = 0;
  ManagerId manager_{};
  std::vector<ImmutableBlock<Tier>> assigned_;
  std::vector<CompleteBlock<Tier>> staged_;
  std::vector<MutableBlock<Tier>> unassigned_;
};

}  // namespace kvbm
