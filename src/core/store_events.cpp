// The event side of a BlockStore: records under the pool lock, delivery after it.
#include "store_events.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <span>
#include <stdexcept>

namespace kvbm::detail {
namespace {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// One block's token ids. The usual block sizes get a copy of constant size, which the compiler
// inlines as a few vector moves: a memmove call per copy was a fifth of what a sink adds to a
// block's lifecycle (measured in instructions).
inline void copy_tokens(Token* dst, const Token* src, std::uint32_t count) noexcept {
  switch (count) {
    case 16: std::memcpy(dst, src, 16 * sizeof(Token)); break;
    case 32: std::memcpy(dst, src, 32 * sizeof(Token)); break;
    case 64: std::memcpy(dst, src, 64 * sizeof(Token)); break;
    default: std::memcpy(dst, src, count * sizeof(Token)); break;
  }
}

}  // namespace

StoreEvents::StoreEvents(const EventSettings& settings, ManagerId manager,
                         std::size_t block_count, std::uint32_t block_size, std::mutex& pool_mutex)
    : sink_{settings.sink},
      pool_mutex_{pool_mutex},
      policy_{settings.policy},
      want_tokens_{settings.sink->wants_tokens()},
      pull_{settings.sink->pulls()},
      pull_threshold_{std::max<std::size_t>(1, settings.sink->pull_threshold())},
      block_size_{block_size} {
  auto source = std::make_shared<KvEventSource>();
  source->manager = manager;
  source->block_size = block_size;
  source->medium = settings.medium;
  source_ = std::move(source);
  if (want_tokens_) {
    slot_tokens_.resize(block_count * block_size);
    slot_has_tokens_.resize(block_count);
  }
  slot_keys_.resize(block_count);
  if (pull_) {
    compact_.reserve(256);
    taken_.reserve(256);
    out_.reserve(kExpandChunk);
  } else {
    slot_wire_.resize(block_count);
    pending_.reserve(256);
    out_.reserve(256);
  }
  if (want_tokens_) {
    pending_tokens_.reserve(256 * block_size);
    out_tokens_.reserve(256 * block_size);
  }
  if (pull_) sink_->attach(*this);  // last: nothing to undo if it throws
}

StoreEvents::~StoreEvents() {
  if (pull_) sink_->detach(*this);
}

void StoreEvents::stage_tokens(BlockId id, std::span<const Token> tokens) noexcept {
  if (!want_tokens_) return;
  if (tokens.size() != block_size_) {  // complete() checked it; keep the arena in bounds anyway
    slot_has_tokens_[id] = 0;
    return;
  }
  copy_tokens(slot_tokens_.data() + std::size_t{id} * block_size_, tokens.data(), block_size_);
  slot_has_tokens_[id] = 1;
}

void StoreEvents::reserve_stored(std::size_t count) {
  with_pending([&](auto& records) { reserve_more(records, count); });
  if (want_tokens_) reserve_more(pending_tokens_, count * block_size_);
  reserve_more(pending_keys_, count);
}

void StoreEvents::stored(BlockId id, const SequenceHash& hash) noexcept {
  if (!reports(hash) || lost_) return;
  try {
    std::uint32_t token_offset = 0;
    std::uint32_t token_count = 0;
    if (want_tokens_ && slot_has_tokens_[id] != 0) {
      const std::size_t offset = pending_tokens_.size();
      pending_tokens_.resize(offset + block_size_);  // not zeroed first: see TokenBuffer
      copy_tokens(pending_tokens_.data() + offset,
                  slot_tokens_.data() + std::size_t{id} * block_size_, block_size_);
      token_offset = static_cast<std::uint32_t>(offset);
      token_count = block_size_;
    }
    std::uint32_t key_index = 0;
    if (const auto& keys = slot_keys_[id]) {  // a sequence's blocks share one keys object
      if (pending_keys_.empty() || pending_keys_.back() != keys) {
        if (pull_ && pending_keys_.size() >= kMaxKeys) throw std::length_error("kvbm: event keys");
        pending_keys_.push_back(keys);
      }
      key_index = static_cast<std::uint32_t>(pending_keys_.size());
    }
    // Filled in place, as in append().
    if (pull_) {
      PendingRecord& record = compact_.emplace_back();
      record.hash = hash;
      record.token_offset = token_offset;
      record.bits = static_cast<std::uint32_t>(KvEventKind::Stored) |
                    (token_count != 0 ? kHasTokens : 0) | key_index << kKeysShift;
      return;
    }
    KvEventRecord& record = pending_.emplace_back();
    record.hash = hash;
    const SlotWire& wire = slot_wire_[id];
    record.block_hash = wire.block;
    record.parent_hash = wire.parent;
    record.token_offset = token_offset;
    record.token_count = token_count;
    record.keys = key_index;
    record.kind = KvEventKind::Stored;
    record.has_parent = hash.position() != 0;
  } catch (...) {  // only where nothing was reserved; the resync restores the stream
    lost_ = true;
  }
}

void StoreEvents::begin_resync(std::size_t matchable) {
  pending_.clear();
  compact_.clear();
  pending_tokens_.clear();
  pending_keys_.clear();
  with_pending([&](auto& records) { records.reserve(matchable + 1); });
  if (want_tokens_) pending_tokens_.reserve(matchable * block_size_);
  pending_keys_.reserve(matchable);
  lost_ = false;
  cleared();  // cannot fail now; stored() below cannot either
}

void StoreEvents::collapse_to_cleared(std::size_t first) noexcept {
  // Shrinks: never allocates.
  with_pending([&](auto& records) { records.resize(std::min(first, records.size())); });
  cleared();
}

void StoreEvents::cleared() noexcept {
  if (lost_) return;
  with_pending([&](auto& records) { (void)append(records, KvEventKind::Cleared); });
}

void StoreEvents::swap_out() noexcept {
  if (pull_) {
    compact_.swap(taken_);  // out_ keeps its chunk
  } else {
    pending_.swap(out_);
  }
  pending_tokens_.swap(out_tokens_);
  pending_keys_.swap(out_keys_);
  has_pending_.store(false, std::memory_order_relaxed);  // written only under the pool lock
}

Handoff StoreEvents::claim_slow() noexcept {
  if (pull_) {
    // Every record since the last drain is covered by one signal (the drain resets the flags
    // under this lock, so a record after it signals again).
    if (!full_signaled_ && compact_.size() >= pull_threshold_) {
      full_signaled_ = window_signaled_ = true;
      return Handoff::SignalFull;
    }
    if (!window_signaled_) {
      window_signaled_ = true;
      return Handoff::Signal;
    }
    return Handoff::None;
  }
  if (!delivering_.exchange(true, std::memory_order_seq_cst)) {
    swap_out();
    return Handoff::Claimed;
  }
  // The claimant re-reads has_pending after releasing its claim, and our EventFlush retries the
  // claim after the unlock: between them the records are never stranded.
  has_pending_.store(true, std::memory_order_seq_cst);
  return Handoff::None;
}

void StoreEvents::drain(const std::function<void(const KvEventView&)>& fn) noexcept {
  // The sink drains one source from one thread at a time, so out_ is ours here.
  {
    // A producer's locked section is short: spinning first spares it the futex wake a sleeping
    // drain would cost its unlock. Backing off keeps the mutex's line with the producer, which
    // pays a transfer for every attempt made here while it locks and unlocks.
    bool locked = pool_mutex_.try_lock();
    for (unsigned pauses = 1; !locked && pauses <= 512; pauses *= 2) {
      for (unsigned i = 0; i < pauses; ++i) cpu_relax();
      locked = pool_mutex_.try_lock();
    }
    if (!locked) pool_mutex_.lock();
    std::lock_guard lock{pool_mutex_, std::adopt_lock};
    swap_out();
    window_signaled_ = false;
    full_signaled_ = false;
  }
  hand_out(fn);  // on the sink's thread, outside the pool lock
}

void StoreEvents::expand(std::size_t first, std::size_t count) noexcept {
  out_.clear();
  for (const PendingRecord& pending : std::span(taken_).subspan(first, count)) {
    const auto kind = static_cast<KvEventKind>(pending.bits & kKindMask);
    KvEventRecord& record = out_.emplace_back();  // within the reserved chunk: no allocation
    record.kind = kind;
    if (kind == KvEventKind::Cleared) continue;
    record.hash = pending.hash;
    record.block_hash = wire_hash(pending.hash);
    if (kind != KvEventKind::Stored) continue;
    record.has_parent = pending.hash.position() != 0;
    record.parent_hash = parent_wire_hash(pending.hash).value_or(0);
    if ((pending.bits & kHasTokens) != 0) {
      record.token_offset = pending.token_offset;
      record.token_count = block_size_;
    }
    record.keys = pending.bits >> kKeysShift;
  }
}

void StoreEvents::flush_out() noexcept {
  hand_out([this](const KvEventView& view) { sink_->on_events(view); });
}

template <class Fn>
void StoreEvents::hand_out(const Fn& fn) noexcept {
  // Expanded a chunk at a time into out_, whose capacity is fixed: delivery never allocates,
  // and the expanded records stay in the delivering core's cache. Every view carries the whole
  // token and key arrays, which its records index.
  const auto view = [&] {
    try {
      fn(KvEventView{source_, out_, out_tokens_, out_keys_});
    } catch (...) {  // consumers must not throw; a pool transition cannot fail for one
    }
  };
  if (!pull_ && !out_.empty()) view();
  for (std::size_t first = 0; first < taken_.size(); first += kExpandChunk) {
    expand(first, std::min(kExpandChunk, taken_.size() - first));
    view();
  }
  taken_.clear();
  out_.clear();
  out_tokens_.clear();
  out_keys_.clear();
}

void StoreEvents::deliver_slow(Handoff handoff) noexcept {
  if (pull_) {
    if (handoff != Handoff::None) sink_->pull_requested(handoff == Handoff::SignalFull);
    return;
  }
  bool claimed = handoff == Handoff::Claimed;
  std::mutex& mutex = pool_mutex_;
  for (;;) {
    if (!claimed) {
      if (!has_pending_.load(std::memory_order_seq_cst)) return;
      if (delivering_.exchange(true, std::memory_order_seq_cst)) return;  // the claimant will
      std::lock_guard lock{mutex};
      swap_out();
    }
    for (;;) {
      flush_out();
      if (!has_pending_.load(std::memory_order_seq_cst)) break;
      std::lock_guard lock{mutex};
      swap_out();
    }
    delivering_.store(false, std::memory_order_seq_cst);
    claimed = false;  // re-check: a record may have arrived after the last look
  }
}

}  // namespace kvbm::detail
