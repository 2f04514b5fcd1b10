// kvbm/blocks.hpp — RAII handles for the slots of a BlockManager<Tier>.
//
// MutableBlock   — allocated, writable; move-only. Dropping it returns the slot to the free list.
// CompleteBlock  — staged with its sequence hash; move-only. Dropping it returns the slot to the
//                  free list; reset() rolls it back to a MutableBlock.
// ImmutableBlock — registered and shareable; a copy is one atomic increment. When the last
//                  holder (copies and pins together) lets go, a primary moves to the inactive
//                  pool (or the free list if evict-on-reset is set); a duplicate is freed.
// WeakBlock      — non-owning; upgrade() revives the block if it is live or still cached.
// Thread safety: a handle is a value (use one from one thread at a time); different handles,
// including copies of the same ImmutableBlock, may be used and dropped on any thread.
// Handles keep their manager's pool alive even after every BlockManager copy is gone.
// Empty handles: a handle that was moved from (or consumed by a transition) names no slot. Its
// destructor, move, copy (a copy of an empty handle is empty) and valid() are defined; every
// other member throws kvbm::InvalidHandle naming the operation, and so does handing it to a
// BlockManager call.
// Identity: a WeakBlock never upgrades into a block with another sequence hash, however many
// times its slot has been reused since (the fast path checks the slot's generation and then its
// hash, so a 32-bit generation that wrapped around cannot alias a different block).
// Complexity: O(1) per handle operation. Copies and non-final drops of ImmutableBlock and pins
// are lock-free; drops of Mutable/Complete blocks and the final drop of a registered slot take
// the pool mutex once.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "kvbm/detail/block_store.hpp"
#include "kvbm/errors.hpp"
#include "kvbm/hash_keys.hpp"
#include "kvbm/pin.hpp"
#include "kvbm/tokens.hpp"

namespace kvbm {

template <class Tier>
class BlockManager;
template <class Tier>
class CompleteBlock;
template <class Tier>
class ImmutableBlock;
template <class Tier>
class WeakBlock;

namespace detail {
/// The only way to build handles from store output (used by BlockManager).
struct BlockAccess {
  template <class Block, class... Args>
  static Block make(Args&&... args) {
    return Block(std::forward<Args>(args)...);
  }
  template <class Block>
  static std::uint32_t generation(const Block& block) noexcept {
    return block.generation_;
  }
  template <class Block>
  static void disarm(Block& block) noexcept {
    block.store_ = nullptr;
  }
  /// The pool a handle names (null once moved from or disarmed).
  template <class Block>
  static const BlockStore* store(const Block& block) noexcept {
    return block.store_;
  }
  /// Undoes a disarm(): only for a handle disarmed by the caller moments before, whose
  /// reference was never given up (a batch call putting back what a failed check took).
  template <class Block>
  static void rearm(Block& block, BlockStore* store) noexcept {
    block.store_ = store;
  }
};
}  // namespace detail

template <class Tier>
class MutableBlock {
 public:
  MutableBlock(MutableBlock&& other) noexcept
      : store_{std::exchange(other.store_, nullptr)}, block_id_{other.block_id_} {}
  MutableBlock& operator=(MutableBlock&& other) noexcept {
    if (this != &other) {
      release();
      store_ = std::exchange(other.store_, nullptr);
      block_id_ = other.block_id_;
    }
    return *this;
  }
  MutableBlock(const MutableBlock&) = delete;
  MutableBlock& operator=(const MutableBlock&) = delete;
  ~MutableBlock() { release(); }

  [[nodiscard]] BlockId block_id() const {
    detail::live_store(store_, "MutableBlock::block_id");
    return block_id_;
  }
  [[nodiscard]] std::size_t block_size() const {
    return detail::live_store(store_, "MutableBlock::block_size").block_size();
  }
  [[nodiscard]] ManagerId manager_id() const {
    return detail::live_store(store_, "MutableBlock::manager_id").id();
  }
  /// False once moved from.
  [[nodiscard]] bool valid() const noexcept { return store_ != nullptr; }
  /// Attaches a fence for asynchronous work on this slot (a copy reading or writing it): the
  /// slot is not handed out again, after every handle is gone, until the fence is ready.
  void add_fence(Fence fence) const {
    detail::live_store(store_, "MutableBlock::add_fence").add_fence(block_id_, std::move(fence));
  }

  /// Stages the block with the token block's sequence hash. Throws BlockSizeMismatch (block
  /// untouched, still owned by *this) if the token block's size differs from the pool's.
  /// The token ids go with the block's Stored event when the manager has an event sink.
  [[nodiscard]] CompleteBlock<Tier> complete(const TokenBlock& block) && {
    if (block.block_size() != detail::live_store(store_, "MutableBlock::stage").block_size()) {
      throw BlockSizeMismatch(store_->block_size(), block.block_size());
    }
    store_->stage(block_id_, block.sequence_hash(), block.tokens());
    return CompleteBlock<Tier>(std::exchange(store_, nullptr), block_id_, block.sequence_hash());
  }
  /// Same with an explicit hash; `block_size` is the number of tokens the caller filled.
  [[nodiscard]] CompleteBlock<Tier> stage(const SequenceHash& hash, std::size_t block_size) && {
    if (block_size != detail::live_store(store_, "MutableBlock::stage").block_size()) {
      throw BlockSizeMismatch(store_->block_size(), block_size);
    }
    store_->stage(block_id_, hash);
    return CompleteBlock<Tier>(std::exchange(store_, nullptr), block_id_, hash);
  }
  /// Same with an explicit hash and the block's token ids, which go with its Stored event (for
  /// callers that hold the tokens but hash them their own way, e.g. with HashKeys). Throws
  /// BlockSizeMismatch (block untouched) unless there are exactly block_size() tokens.
  [[nodiscard]] CompleteBlock<Tier> stage(const SequenceHash& hash,
                                          std::span<const Token> tokens) && {
    if (tokens.size() != detail::live_store(store_, "MutableBlock::stage").block_size()) {
      throw BlockSizeMismatch(store_->block_size(), tokens.size());
    }
    store_->stage(block_id_, hash, tokens);
    return CompleteBlock<Tier>(std::exchange(store_, nullptr), block_id_, hash);
  }
  /// Same, naming the HashKeys (LoRA, cache salt, multimodal items) `hash` was computed under:
  /// they go with the block's Stored event, so a router can hash the block as the engine did.
  /// Null keys: as above. One keys object is shared by all blocks of a sequence.
  [[nodiscard]] CompleteBlock<Tier> stage(const SequenceHash& hash, std::span<const Token> tokens,
                                          std::shared_ptr<const HashKeys> keys) && {
    if (tokens.size() != detail::live_store(store_, "MutableBlock::stage").block_size()) {
      throw BlockSizeMismatch(store_->block_size(), tokens.size());
    }
    store_->stage(block_id_, hash, tokens, std::move(keys));
    return CompleteBlock<Tier>(std::exchange(store_, nullptr), block_id_, hash);
  }

 private:
  friend struct detail::BlockAccess;
  friend class CompleteBlock<Tier>;
  MutableBlock(detail::BlockStore* store, BlockId id) noexcept : store_{store}, block_id_{id} {}
  void release() noexcept {
    if (store_ != nullptr) std::exchange(store_, nullptr)->release_mutable(block_id_);
  }

  detail::BlockStore* store_;
  BlockId block_id_;
};

template <class Tier>
class CompleteBlock {
 public:
  CompleteBlock(CompleteBlock&& other) noexcept
      : store_{std::exchange(other.store_, nullptr)},
        block_id_{other.block_id_},
        hash_{other.hash_} {}
  CompleteBlock& operator=(CompleteBlock&& other) noexcept {
    if (this != &other) {
      release();
      store_ = std::exchange(other.store_, nullptr);
      block_id_ = other.block_id_;
      hash_ = other.hash_;
    }
    return *this;
  }
  CompleteBlock(const CompleteBlock&) = delete;
  CompleteBlock& operator=(const CompleteBlock&) = delete;
  ~CompleteBlock() { release(); }

  [[nodiscard]] BlockId block_id() const {
    detail::live_store(store_, "CompleteBlock::block_id");
    return block_id_;
  }
  [[nodiscard]] SequenceHash sequence_hash() const {
    detail::live_store(store_, "CompleteBlock::sequence_hash");
    return hash_;
  }
  [[nodiscard]] std::size_t block_size() const {
    return detail::live_store(store_, "CompleteBlock::block_size").block_size();
  }
  [[nodiscard]] ManagerId manager_id() const {
    return detail::live_store(store_, "CompleteBlock::manager_id").id();
  }
  [[nodiscard]] bool valid() const noexcept { return store_ != nullptr; }
  /// Attaches a fence for asynchronous work on this slot (a copy reading or writing it): the
  /// slot is not handed out again, after every handle is gone, until the fence is ready.
  void add_fence(Fence fence) const {
    detail::live_store(store_, "CompleteBlock::add_fence").add_fence(block_id_, std::move(fence));
  }

  /// Rolls the block back to mutable (its evict-on-reset flag returns to the pool default).
  [[nodiscard]] MutableBlock<Tier> reset() && {
    detail::live_store(store_, "CompleteBlock::reset").unstage(block_id_);
    return MutableBlock<Tier>(std::exchange(store_, nullptr), block_id_);
  }

 private:
  friend struct detail::BlockAccess;
  friend class MutableBlock<Tier>;
  friend class BlockManager<Tier>;
  CompleteBlock(detail::BlockStore* store, BlockId id, const SequenceHash& hash) noexcept
      : store_{store}, block_id_{id}, hash_{hash} {}
  void release() noexcept {
    if (store_ != nullptr) std::exchange(store_, nullptr)->release_staged(block_id_);
  }

  detail::BlockStore* store_;
  BlockId block_id_;
  SequenceHash hash_;
};

template <class Tier>
class ImmutableBlock : private detail::SlotRef</*CountsInflight=*/true> {
 public:
  ImmutableBlock(const ImmutableBlock&) noexcept = default;
  ImmutableBlock(ImmutableBlock&&) noexcept = default;
  ImmutableBlock& operator=(const ImmutableBlock&) noexcept = default;
  ImmutableBlock& operator=(ImmutableBlock&&) noexcept = default;
  ~ImmutableBlock() = default;

  [[nodiscard]] BlockId block_id() const {
    detail::live_store(store_, "ImmutableBlock::block_id");
    return block_id_;
  }
  [[nodiscard]] SequenceHash sequence_hash() const {
    detail::live_store(store_, "ImmutableBlock::sequence_hash");
    return hash_;
  }
  [[nodiscard]] ManagerId manager_id() const {
    return detail::live_store(store_, "ImmutableBlock::manager_id").id();
  }
  /// Live strong references to this slot's tenancy: handles, pins and duplicate keep-alives.
  [[nodiscard]] std::size_t use_count() const {
    return detail::live_store(store_, "ImmutableBlock::use_count").slot_use_count(block_id_);
  }
  [[nodiscard]] WeakBlock<Tier> downgrade() const;
  /// A type-erased keepalive of this slot (counted in use_count(), not in inflight_immutable).
  [[nodiscard]] LifecyclePinRef pin() const {
    detail::live_store(store_, "ImmutableBlock::pin").slot_retain(block_id_);
    return LifecyclePinRef(store_, block_id_, generation_, hash_);
  }
  /// When set, the last release frees the slot instead of caching it. Shared by every copy
  /// (last writer wins); ignored for duplicates; reset when the slot is next allocated.
  void set_evict_on_reset(bool value) const {
    detail::live_store(store_, "ImmutableBlock::set_evict_on_reset")
        .set_reset_on_release(block_id_, generation_, value);
  }
  [[nodiscard]] bool valid() const noexcept { return store_ != nullptr; }
  /// Attaches a fence for asynchronous work on this slot (a copy reading or writing it): the
  /// slot is not handed out again, after every handle is gone, until the fence is ready.
  void add_fence(Fence fence) const {
    detail::live_store(store_, "ImmutableBlock::add_fence").add_fence(block_id_, std::move(fence));
  }

 private:
  friend struct detail::BlockAccess;
  friend class BlockManager<Tier>;
  /// Adopts one strong reference already taken by the store, which also counted the handle in
  /// inflight_immutable (once per call, not per block).
  ImmutableBlock(detail::BlockStore* store, const detail::ImmutableRef& ref) noexcept
      : SlotRef(store, ref.block_id, ref.generation, ref.hash) {}
  /// An empty handle (a placeholder scan_matches fills in without allocating under the lock).
  ImmutableBlock() noexcept = default;
};

template <class Tier>
class WeakBlock {
 public:
  WeakBlock(const WeakBlock& other) noexcept
      : store_{other.store_}, entry_{other.entry_}, block_id_{other.block_id_},
        generation_{other.generation_}, hash_{other.hash_} {
    if (entry_ != nullptr) store_->registry_retain(entry_);  // a copy of an empty handle is empty
  }
  WeakBlock(WeakBlock&& other) noexcept
      : store_{std::move(other.store_)}, entry_{std::exchange(other.entry_, nullptr)},
        block_id_{other.block_id_}, generation_{other.generation_}, hash_{other.hash_} {}
  WeakBlock& operator=(WeakBlock other) noexcept {
    std::swap(store_, other.store_);
    std::swap(entry_, other.entry_);
    std::swap(block_id_, other.block_id_);
    std::swap(generation_, other.generation_);
    std::swap(hash_, other.hash_);
    return *this;
  }
  ~WeakBlock() {
    if (entry_ != nullptr) store_->registry_release(entry_);
  }

  [[nodiscard]] SequenceHash sequence_hash() const {
    detail::live_store(store_.get(), "WeakBlock::sequence_hash");
    return hash_;
  }
  /// False once moved from.
  [[nodiscard]] bool valid() const noexcept { return entry_ != nullptr; }
  /// The live block, else the cached block revived from the inactive pool, else nullopt
  /// (evicted). Never touches the frequency tracker. May return the primary when the weak
  /// reference was taken from a duplicate that is gone.
  [[nodiscard]] std::optional<ImmutableBlock<Tier>> upgrade() const {
    detail::live_store(store_.get(), "WeakBlock::upgrade");
    if (store_->slot_try_retain(block_id_, generation_, hash_)) {
      store_->metrics().inflight_immutable.fetch_add(1, std::memory_order_relaxed);
      return detail::BlockAccess::make<ImmutableBlock<Tier>>(
          store_.get(), detail::ImmutableRef{block_id_, generation_, hash_});
    }
    if (auto ref = store_->acquire(hash_)) {
      return detail::BlockAccess::make<ImmutableBlock<Tier>>(store_.get(), *ref);
    }
    return std::nullopt;
  }

 private:
  friend class ImmutableBlock<Tier>;
  WeakBlock(detail::StorePtr store, detail::RegistryEntry* entry, BlockId id,
            std::uint32_t generation, const SequenceHash& hash) noexcept
      : store_{std::move(store)}, entry_{entry}, block_id_{id}, generation_{generation},
        hash_{hash} {}

  detail::StorePtr store_;
  detail::RegistryEntry* entry_;
  BlockId block_id_;
  std::uint32_t generation_;
  SequenceHash hash_;
};

template <class Tier>
WeakBlock<Tier> ImmutableBlock<Tier>::downgrade() const {
  detail::RegistryEntry* entry =
      detail::live_store(store_, "ImmutableBlock::downgrade").registry_acquire(hash_);
  store_->retain();
  return WeakBlock<Tier>(detail::StorePtr(store_), entry, block_id_, generation_, hash_);
}

}  // namespace kvbm
