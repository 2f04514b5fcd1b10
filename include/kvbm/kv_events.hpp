// kvbm/kv_events.hpp — KV cache events: what a pool reports when a hash becomes or stops being
// matchable, for KV-aware routers and in-process consumers.
//
// Model. A manager built with `.event_sink(sink)` reports, for its own pool:
//   Stored  — a sequence hash became matchable (a new primary registered; also a re-registration
//             after eviction). Duplicates (Allow), Reject hits and cache-hit revivals report nothing:
//             the hash never stopped being matchable.
//   Removed — a hash stopped being matchable (its cached slot was evicted or drained, or its primary
//             was released with evict-on-reset).
//   Cleared — every hash of the pool stopped being matchable at once (reset_inactive_pool() left
//             nothing matchable). Destroying a pool reports nothing: its last reported state
//             stays what late subscribers see (a router learns of a dead worker otherwise).
// A consumer that applies one manager's events in order holds exactly that pool's matchable set
// at every quiescent point, and every Stored record's parent (if any) is in it when the child
// arrives (a block is registered only after its prefix).
//
// Delivery. Records are collected under the pool lock into a reused buffer (no heap allocation
// per event in steady state) and handed to the sink after the lock is released, in the order
// the state changed; one thread at a time delivers a pool's records (others leave theirs for
// it), so a sink sees one pool's records serially. A sink runs on a thread that just called the
// manager (or dropped a block): it must be quick and must not throw (an exception is swallowed).
// It may call the manager. Several managers may share one sink (records name their source).
//
// Wire hash. Routers want one u64 per block. wire_hash(h) mixes the block's position with the
// part of its 64-bit chained hash that its child keeps as parent fragment, so
//   parent_wire_hash(child) == wire_hash(parent)
// is computable from the child alone. It is stable for a given position and lineage (salt and
// tokens of every block up to it) and never changes between runs or processes.
// Tokens. A block completed from a TokenBlock carries its token ids when the sink wants tokens;
// a block staged by hash alone carries none (token_count == 0): vLLM-format routers that hash
// tokens themselves (Dynamo) cannot index such a block and drop it.
// Hash keys. A block staged with HashKeys (RequestSequence and SchedulableSequence do this) carries
// them to its Stored record (KvEventView::hash_keys): LoRA name, cache salt and the multimodal
// items that overlap it, which a router needs to hash the block the way the engine did.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "kvbm/hash_keys.hpp"
#include "kvbm/sequence_hash.hpp"
#include "kvbm/tokens.hpp"
#include "kvbm/types.hpp"

namespace kvbm {

enum class KvEventKind : std::uint8_t { Stored, Removed, Cleared };

/// Which blocks are reported (the original crate's emission policies). Cleared always is.
enum class KvEventPolicy : std::uint8_t {
  All,         ///< every block
  PowerOfTwo,  ///< only blocks whose position is a power of two in [16, 65536] (sparse index)
};

/// Coalescing of records into batches (BatchingEventSink, the ZeroMQ publisher).
struct KvEventBatching {
  std::chrono::microseconds window{10'000};  ///< oldest record waits at most this long
  std::size_t max_events = 1024;             ///< at most this many records per batch
  /// BatchingEventSink: a manager holding this many undrained records asks for an early drain
  /// (0: 16 * max_events). Each drain wakes the sink's thread and hands the manager back a
  /// buffer the sink's core last touched; larger values do both less often, and a manager then
  /// holds up to this many records (24 bytes each, plus block_size token ids for a Stored) in
  /// each of its two buffers. Below the full rate, the window drains first.
  std::size_t drain_threshold = 0;
  /// BatchingEventSink: hand records drained from a manager to downstream straight from the
  /// manager's buffer (in batches of at most max_events, at most 1024 each) instead of copying
  /// them into the sink's own buffer first. Saves a copy of every record and its tokens on the
  /// sink's thread; in exchange downstream runs while the sink holds its list of managers, so
  /// it must not build or destroy a manager that uses this sink (that would deadlock). For a
  /// downstream that only copies or encodes what it gets (ZmqEventPublisher sets it).
  bool deliver_from_pools = false;
};

namespace detail {
/// splitmix64's finaliser over fragment XOR position * golden ratio (one mix per wire hash).
[[nodiscard]] constexpr std::uint64_t wire_of(std::uint32_t position, std::uint64_t fragment) noexcept {
  std::uint64_t x = fragment ^ (std::uint64_t{position} * 0x9E3779B97F4A7C15ull);
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace detail

/// The u64 a router sees for `hash` (see the header comment): splitmix64(f XOR p * 0x9E37...15)
/// where p is the position and f the part of the chained hash the child keeps. O(1).
[[nodiscard]] inline std::uint64_t wire_hash(const SequenceHash& hash) noexcept {
  const std::uint32_t position = hash.position();
  return detail::wire_of(position, hash.fragment_for_child_position(position + 1));
}
/// wire_hash of `hash`'s parent; nullopt at position 0.
[[nodiscard]] inline std::optional<std::uint64_t> parent_wire_hash(const SequenceHash& hash) noexcept {
  const std::uint32_t position = hash.position();
  if (position == 0) return std::nullopt;
  return detail::wire_of(position - 1, hash.parent_fragment());
}

/// One event. Small and trivially copyable; token ids live in the batch's token array.
struct KvEventRecord {
  SequenceHash hash{};            ///< Stored/Removed: the block's sequence hash
  std::uint64_t block_hash = 0;   ///< wire_hash(hash)
  std::uint64_t parent_hash = 0;  ///< parent_wire_hash(hash) when has_parent
  std::uint32_t token_offset = 0;
  std::uint32_t token_count = 0;  ///< 0: no token ids (staged by hash, or the sink wants none)
  std::uint32_t keys = 0;         ///< Stored: 1 + index into KvEventView::keys; 0: no hash keys
  KvEventKind kind = KvEventKind::Stored;
  bool has_parent = false;

  [[nodiscard]] std::optional<std::uint64_t> parent() const noexcept {
    return has_parent ? std::optional<std::uint64_t>{parent_hash} : std::nullopt;
  }
  [[nodiscard]] std::uint32_t position() const noexcept { return hash.position(); }
};
static_assert(std::is_trivially_copyable_v<KvEventRecord>);

/// The manager a record came from. Immutable after the manager is built; shared by its batches.
struct KvEventSource {
  ManagerId manager;
  std::uint32_t block_size = 0;
  std::optional<std::string> medium;  ///< "GPU" (G1), "CPU" (G2), "DISK" (G3) unless overridden
};

/// A borrowed run of records from one source, valid only during the call that receives it.
struct KvEventView {
  const std::shared_ptr<const KvEventSource>& source;
  std::span<const KvEventRecord> records;
  std::span<const Token> tokens;
  std::span<const std::shared_ptr<const HashKeys>> keys{};  ///< shared by the records naming them

  [[nodiscard]] std::span<const Token> token_ids(const KvEventRecord& record) const noexcept {
    return tokens.subspan(record.token_offset, record.token_count);
  }
  /// The keys the block was staged with; nullptr when none (plain hashes, or not a Stored record).
  [[nodiscard]] const HashKeys* hash_keys(const KvEventRecord& record) const noexcept {
    return record.keys == 0 ? nullptr : keys[record.keys - 1].get();
  }
  /// Same, shared: for consumers that keep the keys past the call (one reference-count increment).
  [[nodiscard]] std::shared_ptr<const HashKeys> shared_keys(const KvEventRecord& record) const {
    return record.keys == 0 ? nullptr : keys[record.keys - 1];
  }
};

namespace detail {
/// A pool as a pulling sink sees it (internal; implemented by the pool's event recorder).
class EventPullSource {
 public:
  /// Takes the records the pool holds now (briefly under the pool lock) and passes them to `fn`
  /// after the lock, in state order. The sink calls it from one thread at a time per source.
  virtual void drain(const std::function<void(const KvEventView&)>& fn) noexcept = 0;

 protected:
  ~EventPullSource() = default;
};
}  // namespace detail

/// Receives a pool's events after its lock is released. Implementations must be thread-safe if
/// shared by several managers (each manager delivers serially, but managers run concurrently).
///
/// Push (the default): the pool hands its records to on_events on the thread that changed the
/// state, after every transition. Pull (pulls() true, BatchingEventSink): a pool keeps its
/// records under its own lock and tells the sink once per drain cycle (pull_requested); the sink
/// drains it on its own thread. The caller's thread then pays only for recording: no handoff,
/// no sink call, no second lock per transition.
class KvEventSink {
 public:
  virtual ~KvEventSink() = default;
  /// Must not block for long; must not throw (exceptions are swallowed by the manager).
  virtual void on_events(const KvEventView& view) = 0;
  /// False: the manager skips copying token ids (records carry token_count == 0).
  [[nodiscard]] virtual bool wants_tokens() const noexcept { return true; }

  // ---- pull protocol (pools call these; a pushing sink ignores them) ----
  [[nodiscard]] virtual bool pulls() const noexcept { return false; }
  /// A pool signals early once it holds this many undrained records.
  [[nodiscard]] virtual std::size_t pull_threshold() const noexcept { return 1024; }
  /// The pool joins at construction (may throw: the pool is then not built) and leaves at
  /// destruction, when the sink drains it one last time before forgetting it.
  virtual void attach(detail::EventPullSource& /*source*/) {}
  virtual void detach(detail::EventPullSource& /*source*/) noexcept {}
  /// Called (never under a pool lock) when a pool's first record since its last drain arrived,
  /// and again with `full` when it reached pull_threshold().
  virtual void pull_requested(bool /*full*/) noexcept {}
};

/// The plain sink: calls `fn` with every view, on the delivering thread.
class CallbackEventSink final : public KvEventSink {
 public:
  explicit CallbackEventSink(std::function<void(const KvEventView&)> fn, bool wants_tokens = true)
      : fn_{std::move(fn)}, wants_tokens_{wants_tokens} {}
  void on_events(const KvEventView& view) override { fn_(view); }
  [[nodiscard]] bool wants_tokens() const noexcept override { return wants_tokens_; }

 private:
  std::function<void(const KvEventView&)> fn_;
  bool wants_tokens_;
};

/// An owned, growable copy of views (records, tokens, sources), reused across batches: after
/// warm-up, append/clear allocate nothing. Not synchronised (one owner at a time).
class KvEventBuffer {
 public:
  /// Copies `view` (tokens only when `with_tokens`).
  void append(const KvEventView& view, bool with_tokens = true);
  void clear() noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return records_.size(); }
  [[nodiscard]] bool empty() const noexcept { return records_.empty(); }
  /// Number of append() calls since the last clear().
  [[nodiscard]] std::size_t appends() const noexcept { return appends_; }
  /// Calls fn(view) for each run of records of one source, at most `max_records` per call.
  void for_each_view(std::size_t max_records,
                     const std::function<void(const KvEventView&)>& fn) const;
  void swap(KvEventBuffer& other) noexcept;

 private:
  struct Run {
    std::size_t source;  // index into sources_
    std::size_t first;   // first record
    std::size_t count;
  };
  std::vector<KvEventRecord> records_;
  std::vector<Token> tokens_;
  std::vector<std::shared_ptr<const KvEventSource>> sources_;
  std::vector<std::shared_ptr<const HashKeys>> keys_;
  std::vector<Run> runs_;
  std::size_t appends_ = 0;
};

/// Coalesces records into batches of at most `max_events`, delivered to `downstream` on a thread
/// of its own when the oldest record is `window` old or a batch is full; on flush() and on
/// destruction (which flushes, then joins). A pulling sink: the managers attached to it keep
/// their records under their own locks, and this thread drains them (see KvEventSink), so a
/// transition costs its caller only the recording, and a slow downstream never blocks a manager
/// (the records wait, growing, instead). on_events (direct use, not through a manager) copies
/// into a reused buffer under a mutex.
class BatchingEventSink final : public KvEventSink {
 public:
  explicit BatchingEventSink(std::shared_ptr<KvEventSink> downstream, KvEventBatching batching = {});
  ~BatchingEventSink() override;
  BatchingEventSink(const BatchingEventSink&) = delete;
  BatchingEventSink& operator=(const BatchingEventSink&) = delete;

  void on_events(const KvEventView& view) override;
  [[nodiscard]] bool wants_tokens() const noexcept override { return wants_tokens_; }
  [[nodiscard]] bool pulls() const noexcept override { return true; }
  [[nodiscard]] std::size_t pull_threshold() const noexcept override {
    return batching_.drain_threshold;
  }
  void attach(detail::EventPullSource& source) override;
  void detach(detail::EventPullSource& source) noexcept override;
  void pull_requested(bool full) noexcept override;
  /// Returns once every record made before the call (by an attached manager, or given to
  /// on_events) has been delivered downstream.
  void flush();
  /// Batches delivered downstream so far.
  [[nodiscard]] std::uint64_t batches_delivered() const;

 private:
  void run();
  void append(const KvEventView& view);  // into incoming_, opening a window if none is open
  /// Drains every attached manager into incoming_, or (deliver_from_pools) through `deliver`.
  void drain_sources(const std::function<void(const KvEventView&)>& deliver);
  void collect(detail::EventPullSource& source) noexcept;  // under sources_mutex_

  std::shared_ptr<KvEventSink> downstream_;
  KvEventBatching batching_;
  bool wants_tokens_;
  std::mutex sources_mutex_;  // taken before any pool lock, never under one
  std::vector<detail::EventPullSource*> sources_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  KvEventBuffer incoming_;
  std::chrono::steady_clock::time_point oldest_{};
  bool window_open_ = false;  // records wait (here or in a pool) since oldest_
  bool full_ = false;         // a pool holds a batch's worth
  bool idle_ = false;         // the thread sleeps without a deadline: a new window must wake it
  std::uint64_t flush_requests_ = 0;
  std::uint64_t flushed_ = 0;  // flush requests served
  std::uint64_t batches_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

/// The default medium of a tier: "GPU" for G1, "CPU" for G2, "DISK" for G3, none otherwise.
template <class Tier>
[[nodiscard]] std::optional<std::string> default_medium() {
  if constexpr (std::is_same_v<Tier, G1>) return "GPU";
  else if constexpr (std::is_same_v<Tier, G2>) return "CPU";
  else if constexpr (std::is_same_v<Tier, G3>) return "DISK";
  else return std::nullopt;
}

/// What a builder passes to the store (internal).
namespace detail {
struct EventSettings {
  std::shared_ptr<KvEventSink> sink;
  std::optional<std::string> medium;
  KvEventPolicy policy = KvEventPolicy::All;
};
}  // namespace detail

}  // namespace kvbm
