// The event side of a BlockStore: records under the pool lock, delivery after it.
#include "store_events.hpp"

#include <algorithm>
#include <bit>

namespace kvbm::detail {

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
  slot_wire_.resize(block_count);
  pending_.reserve(256);
  out_.reserve(256);
  if (want_tokens_) {
    pending_tokens_.reserve(256 * block_size);
    out_tokens_.reserve(256 * block_size);
  }
  if (pull_) sink_->attach(*this);  // last: nothing to undo if it throws
}

StoreEvents::~StoreEvents() {
  if (pull_) sink_->detach(*this);
}

bool StoreEvents::reports(const SequenceHash& hash) const noexcept {
  if (policy_ == KvEventPolicy::All) return true;
  const std::uint32_t p = hash.position();
  return p >= 16 && p <= 65536 && std::has_single_bit(p);
}

void StoreEvents::stage_tokens(BlockId id, std::span<const Token> tokens) noexcept {
  if (!want_tokens_) return;
  if (tokens.size() != block_size_) {  // complete() checked it; keep the arena in bounds anyway
    slot_has_tokens_[id] = 0;
    return;
  }
  std::copy(tokens.begin(), tokens.end(),
            slot_tokens_.begin() + static_cast<std::ptrdiff_t>(std::size_t{id} * block_size_));
  slot_has_tokens_[id] = 1;
}

void StoreEvents::reserve_stored(std::size_t count) {
  pending_.reserve(pending_.size() + count);
  if (want_tokens_) pending_tokens_.reserve(pending_tokens_.size() + count * block_size_);
  pending_keys_.reserve(pending_keys_.size() + count);
}

void StoreEvents::stored(BlockId id, const SequenceHash& hash) noexcept {
  if (!reports(hash) || lost_) return;
  KvEventRecord record;
  record.kind = KvEventKind::Stored;
  record.hash = hash;
  const SlotWire& wire = slot_wire_[id];
  record.block_hash = wire.block;
  record.parent_hash = wire.parent;
  record.has_parent = hash.position() != 0;
  try {
    if (want_tokens_ && slot_has_tokens_[id] != 0) {
      record.token_offset = static_cast<std::uint32_t>(pending_tokens_.size());
      record.token_count = block_size_;
      const auto first =
          slot_tokens_.begin() + static_cast<std::ptrdiff_t>(std::size_t{id} * block_size_);
      pending_tokens_.insert(pending_tokens_.end(), first, first + block_size_);
    }
    if (const auto& keys = slot_keys_[id]) {  // a sequence's blocks share one keys object
      if (pending_keys_.empty() || pending_keys_.back() != keys) pending_keys_.push_back(keys);
      record.keys = static_cast<std::uint32_t>(pending_keys_.size());
    }
    pending_.push_back(record);
  } catch (...) {  // only where nothing was reserved; the resync restores the stream
    lost_ = true;
  }
}

void StoreEvents::begin_resync(std::size_t matchable) {
  pending_.clear();
  pending_tokens_.clear();
  pending_keys_.clear();
  pending_.reserve(matchable + 1);
  if (want_tokens_) pending_tokens_.reserve(matchable * block_size_);
  pending_keys_.reserve(matchable);
  lost_ = false;
  cleared();  // cannot fail now; stored() below cannot either
}

void StoreEvents::removed(BlockId id, const SequenceHash& hash) noexcept {
  if (!reports(hash) || lost_) return;
  KvEventRecord record;
  record.kind = KvEventKind::Removed;
  record.hash = hash;
  record.block_hash = slot_wire_[id].block;
  push(record);
}

void StoreEvents::collapse_to_cleared(std::size_t first) noexcept {
  pending_.resize(std::min(first, pending_.size()));  // shrinks: never allocates
  cleared();
}

void StoreEvents::cleared() noexcept {
  if (lost_) return;
  KvEventRecord record;
  record.kind = KvEventKind::Cleared;
  push(record);
}

void StoreEvents::push(const KvEventRecord& record) noexcept {
  try {
    pending_.push_back(record);
  } catch (...) {  // only where nothing was reserved; the resync restores the stream
    lost_ = true;
  }
}

void StoreEvents::swap_out() noexcept {
  pending_.swap(out_);
  pending_tokens_.swap(out_tokens_);
  pending_keys_.swap(out_keys_);
  has_pending_.store(false, std::memory_order_relaxed);  // written only under the pool lock
}

Handoff StoreEvents::claim_locked() noexcept {
  if (pending_.empty()) return Handoff::None;
  if (pull_) {
    // Every record since the last drain is covered by one signal (the drain resets the flags
    // under this lock, so a record after it signals again).
    if (!full_signaled_ && pending_.size() >= pull_threshold_) {
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
    std::lock_guard lock{pool_mutex_};
    swap_out();
    window_signaled_ = false;
    full_signaled_ = false;
  }
  for (KvEventRecord& record : out_) {  // on the sink's thread, outside the pool lock
    if (record.kind == KvEventKind::Cleared) continue;
    record.block_hash = wire_hash(record.hash);
    if (record.kind == KvEventKind::Stored) record.parent_hash = parent_wire_hash(record.hash).value_or(0);
  }
  hand_out(fn);
}

void StoreEvents::flush_out() noexcept {
  hand_out([this](const KvEventView& view) { sink_->on_events(view); });
}

template <class Fn>
void StoreEvents::hand_out(const Fn& fn) noexcept {
  if (!out_.empty()) {
    try {
      fn(KvEventView{source_, out_, out_tokens_, out_keys_});
    } catch (...) {  // consumers must not throw; a pool transition cannot fail for one
    }
  }
  out_.clear();
  out_tokens_.clear();
  out_keys_.clear();
}

void StoreEvents::deliver(Handoff handoff) noexcept {
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
