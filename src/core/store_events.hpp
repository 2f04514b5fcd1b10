// src/core/store_events.hpp — the event side of one BlockStore (internal).
//
// Records are appended under the pool mutex (reused buffers; no allocation per event once warm).
// Push (the sink is called by the transitions): records are written as the sink sees them, wire
// hashes computed once per staging before the lock is taken (stage_wire). The thread that leaves
// the pool lock with records pending claims delivery (one atomic exchange, still under the lock)
// and swaps `pending` with `out` (three pointers each); after unlocking it hands `out` to the
// sink, then loops while more records arrived. A thread that finds delivery claimed leaves its
// records to the claimant, so the sink sees one pool's records serially and in state order, and
// no thread ever waits for a slow sink but the one delivering. Lost-wakeup freedom: a thread
// that fails to claim sets has_pending (seq_cst, under the lock) and retries the claim after
// unlocking; the claimant clears `delivering` (seq_cst) before re-reading has_pending, so one of
// the two always sees the other. The uncontended path costs one exchange and one store per
// locked section, not per record.
// Pull (the sink's thread drains the pool): records are compact (PendingRecord, 24 bytes: hash,
// token offset, kind, keys) and the drain expands them (wire hashes, token counts) a chunk at a
// time. A transition writes half the bytes of a KvEventRecord and hashes nothing, and the drain
// reads half and never writes to a buffer the transitions will reuse: on a 2-vCPU host a
// lifecycle with a batching sink went from 1.16-1.22x to 1.12-1.14x of no sink (interleaved).
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvbm/detail/reserve_more.hpp"
#include "kvbm/kv_events.hpp"

namespace kvbm::detail {

/// Makes resize() default-initialise (for tokens: leave unwritten) instead of zeroing the room a
/// copy is about to fill.
template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::allocator_traits<std::allocator<T>>::construct(static_cast<std::allocator<T>&>(*this), p,
                                                        std::forward<Args>(args)...);
  }
};
using TokenBuffer = std::vector<Token, DefaultInitAllocator<Token>>;

/// What a locked section leaves to do after the unlock.
enum class Handoff : std::uint8_t {
  None,         // nothing (no records, or another thread delivers / the sink already knows)
  Claimed,      // push: this thread delivers what it took
  Signal,       // pull: tell the sink records are waiting
  SignalFull,   // pull: tell the sink a batch's worth is waiting
};

class StoreEvents final : public EventPullSource {
 public:
  /// `pool_mutex` guards every call marked "under the pool mutex"; a pulling sink's drain takes
  /// it. Attaches to a pulling sink (may throw).
  StoreEvents(const EventSettings& settings, ManagerId manager, std::size_t block_count,
              std::uint32_t block_size, std::mutex& pool_mutex);
  /// Detaches from a pulling sink, which drains the last records first.
  ~StoreEvents();
  StoreEvents(const StoreEvents&) = delete;
  StoreEvents& operator=(const StoreEvents&) = delete;

  // ---- under the pool mutex ----
  void stage_tokens(BlockId id, std::span<const Token> tokens) noexcept;
  void forget_tokens(BlockId id) noexcept {
    if (want_tokens_) slot_has_tokens_[id] = 0;
  }
  /// Push: the block's wire hashes, computed by stage() before it takes the lock; its Stored and
  /// Removed records copy them, so no record is hashed under the lock or at delivery. Pull: the
  /// drain hashes the records on the sink's thread instead.
  [[nodiscard]] bool wire_at_stage() const noexcept { return !pull_; }
  void stage_wire(BlockId id, std::uint64_t block, std::uint64_t parent) noexcept {
    if (pull_) return;
    slot_wire_[id] = SlotWire{block, parent};
  }
  /// The keys a block was staged with (null: none); swapped in, so the old ones are released
  /// through `keys` after the lock, not under it.
  void swap_keys(BlockId id, std::shared_ptr<const HashKeys>& keys) noexcept {
    slot_keys_[id].swap(keys);
  }
  /// Makes room for `count` Stored records (and their tokens), so a registration can reserve
  /// before its first slot change and stored() then never allocates (strong guarantee).
  void reserve_stored(std::size_t count);
  /// Same for `count` Removed records and a Cleared (evicting allocations, drains).
  void reserve_removed(std::size_t count) {
    with_pending([&](auto& records) { reserve_more(records, count + 1); });
  }
  // The record calls never throw: a record that cannot be stored (out of memory, on a path that
  // reserved nothing, e.g. a release) marks the stream lost, and the pool's next locked section
  // replaces whatever is pending by a resync (begin_resync).
  void stored(BlockId id, const SequenceHash& hash) noexcept;
  void removed(BlockId id, const SequenceHash& hash) noexcept {  // inline: one per release
    if (!reports(hash) || lost_) return;
    if (pull_) {
      if (PendingRecord* record = append(compact_, KvEventKind::Removed)) record->hash = hash;
    } else if (KvEventRecord* record = append(pending_, KvEventKind::Removed)) {
      record->hash = hash;
      record->block_hash = slot_wire_[id].block;
    }
  }
  /// Replaces every record from index `first` on (removals of one drain) by one Cleared.
  void collapse_to_cleared(std::size_t first) noexcept;
  void cleared() noexcept;
  [[nodiscard]] bool lost() const noexcept { return lost_; }
  /// Resync after a loss: drops the pending records, makes room for `matchable` Stored records
  /// and records a Cleared; the caller then records stored() for every matchable slot, parents
  /// first, none of which can fail. Throws (stream still lost) if the room cannot be made.
  void begin_resync(std::size_t matchable);
  [[nodiscard]] std::size_t pending_size() const noexcept {
    return pull_ ? compact_.size() : pending_.size();
  }
  /// Push: claims delivery and takes the pending records if nobody is delivering. Pull: says
  /// whether the sink must be told (once per drain cycle, and once more when a batch is full).
  Handoff claim_locked() noexcept {  // inline: every locked section ends here
    const std::size_t pending = pending_size();
    if (pending == 0) return Handoff::None;
    if (pull_ && window_signaled_ && (full_signaled_ || pending < pull_threshold_)) {
      return Handoff::None;
    }
    return claim_slow();
  }

  // ---- after the pool mutex is released ----
  /// Push: delivers what a claim took, then anything that arrived meanwhile; unclaimed, tries
  /// to claim (taking the pool mutex briefly) only when records are pending. Pull: signals.
  void deliver(Handoff handoff) noexcept {  // inline: every locked section ends here
    if (handoff == Handoff::None && (pull_ || !has_pending_.load(std::memory_order_seq_cst))) {
      return;
    }
    deliver_slow(handoff);
  }
  /// Pull: the sink's drain (EventPullSource).
  void drain(const std::function<void(const KvEventView&)>& fn) noexcept override;

 private:
  [[nodiscard]] bool reports(const SequenceHash& hash) const noexcept {
    if (policy_ == KvEventPolicy::All) return true;
    const std::uint32_t p = hash.position();
    return p >= 16 && p <= 65536 && std::has_single_bit(p);
  }
  /// Pull: a record as a locked section leaves it; expand() derives the rest of its
  /// KvEventRecord.
  struct PendingRecord {
    SequenceHash hash;
    std::uint32_t token_offset;  // into the tokens swapped out with it, when has_tokens
    std::uint32_t bits;          // kind | has_tokens | keys (1 + index into the keys; 0: none)
  };
  static_assert(sizeof(PendingRecord) == 24);
  static constexpr std::uint32_t kKindMask = 3, kHasTokens = 4, kKeysShift = 3;
  /// A Stored record's key index must fit the bits above kKeysShift.
  static constexpr std::size_t kMaxKeys = (std::size_t{1} << (32 - kKeysShift)) - 1;

  /// fn(records) on this mode's pending records: compact_ (pull) or pending_ (push).
  template <class Fn>
  void with_pending(Fn&& fn) {
    if (pull_) {
      fn(compact_);
    } else {
      fn(pending_);
    }
  }
  /// A value-initialised record of `kind` at the end of `records` (pending_ or compact_); null
  /// (stream lost) when it cannot be stored.
  template <class Record>
  [[nodiscard]] Record* append(std::vector<Record>& records, KvEventKind kind) noexcept {
    // Filled in place: a record assembled on the stack and copied in is read back by wide
    // loads over its narrow field stores, which stalls store forwarding on every record.
    try {
      Record& record = records.emplace_back();
      if constexpr (std::is_same_v<Record, PendingRecord>) {
        record.bits = static_cast<std::uint32_t>(kind);
      } else {
        record.kind = kind;
      }
      return &record;
    } catch (...) {  // only where nothing was reserved; the resync restores the stream
      lost_ = true;
      return nullptr;
    }
  }
  Handoff claim_slow() noexcept;
  void deliver_slow(Handoff handoff) noexcept;
  void swap_out() noexcept;
  /// Pull, after the lock: out_ = taken_[first, first + count) expanded (wire hashes, token
  /// counts).
  void expand(std::size_t first, std::size_t count) noexcept;
  /// Records expanded and handed to the sink at a time (out_'s fixed capacity).
  /// (KvEventBatching's default max_events, so a batch drained in place can be full.)
  static constexpr std::size_t kExpandChunk = 1024;
  void flush_out() noexcept;
  /// Passes what the last swap_out took to `fn` (push: out_ in one view; pull: taken_ expanded,
  /// in views of at most kExpandChunk records), exceptions swallowed, and clears it with the
  /// token and key arrays.
  template <class Fn>
  void hand_out(const Fn& fn) noexcept;

  std::shared_ptr<KvEventSink> sink_;
  std::shared_ptr<const KvEventSource> source_;
  std::mutex& pool_mutex_;
  KvEventPolicy policy_;
  bool want_tokens_;
  bool pull_;                    // the sink drains us (fixed at construction)
  std::size_t pull_threshold_;
  bool lost_ = false;             // under the pool mutex: a record could not be stored
  bool window_signaled_ = false;  // pull, under the pool mutex: the sink knows records wait
  bool full_signaled_ = false;
  std::uint32_t block_size_;
  std::vector<Token> slot_tokens_;         // block_count * block_size, when tokens are wanted
  std::vector<std::uint8_t> slot_has_tokens_;
  std::vector<std::shared_ptr<const HashKeys>> slot_keys_;  // block_count; null: no keys
  struct SlotWire {
    std::uint64_t block = 0, parent = 0;
  };
  std::vector<SlotWire> slot_wire_;  // push only, block_count: wire hashes of the hash staged last

  // Guarded by the pool mutex: the records of one mode (the other stays empty) and their tokens
  // and keys, which the records index.
  std::vector<KvEventRecord> pending_;     // push
  std::vector<PendingRecord> compact_;     // pull
  TokenBuffer pending_tokens_;
  std::vector<std::shared_ptr<const HashKeys>> pending_keys_;
  // What swap_out took: owned by the claimant (push) or the drain (pull).
  std::vector<KvEventRecord> out_;         // push: pending_'s records; pull: a chunk of taken_,
                                           // expanded (capacity kExpandChunk, never grown)
  std::vector<PendingRecord> taken_;       // pull
  TokenBuffer out_tokens_;
  std::vector<std::shared_ptr<const HashKeys>> out_keys_;
  std::atomic<bool> has_pending_{false};
  std::atomic<bool> delivering_{false};
};

/// Declared before the pool lock in every transition: delivers (or signals) after the lock is
/// released.
struct EventFlush {
  StoreEvents* events;
  Handoff handoff = Handoff::None;
  explicit EventFlush(StoreEvents* e) noexcept : events{e} {}
  EventFlush(const EventFlush&) = delete;
  EventFlush& operator=(const EventFlush&) = delete;
  ~EventFlush() {
    if (events != nullptr) events->deliver(handoff);
  }
};

/// The pool lock of a transition: on unlock (explicit or at scope end) it first claims the
/// pending records, so the common case needs no second lock acquisition to deliver them.
class StoreLock {
 public:
  StoreLock(std::mutex& mutex, EventFlush& flush) : mutex_{mutex}, flush_{flush} { mutex_.lock(); }
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock() {
    if (owns_) unlock();
  }
  void unlock() noexcept {
    if (flush_.events != nullptr && flush_.handoff == Handoff::None) {
      flush_.handoff = flush_.events->claim_locked();
    }
    owns_ = false;
    mutex_.unlock();
  }

 private:
  std::mutex& mutex_;
  EventFlush& flush_;
  bool owns_ = true;
};

}  // namespace kvbm::detail
