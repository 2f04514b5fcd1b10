// Wire hashes, the owned event buffer and the batching sink.
#include "kvbm/kv_events.hpp"

#include <algorithm>

namespace kvbm {

// ---------------------------------------------------------------------------------------------

void KvEventBuffer::append(const KvEventView& view, bool with_tokens) {
  ++appends_;
  if (view.records.empty()) return;
  std::size_t source = sources_.size();
  if (!sources_.empty() && sources_.back().get() == view.source.get()) {
    source = sources_.size() - 1;
  } else {
    sources_.push_back(view.source);
  }
  const std::size_t first = records_.size();
  const auto token_base = static_cast<std::uint32_t>(tokens_.size());
  for (KvEventRecord record : view.records) {
    if (with_tokens && record.token_count != 0) {
      const auto ids = view.token_ids(record);
      record.token_offset = static_cast<std::uint32_t>(tokens_.size());
      tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    } else {
      record.token_offset = token_base;
      record.token_count = 0;
    }
    if (record.keys != 0) {  // one table entry per run of records sharing keys
      const auto& keys = view.keys[record.keys - 1];
      if (keys_.empty() || keys_.back() != keys) keys_.push_back(keys);
      record.keys = static_cast<std::uint32_t>(keys_.size());
    }
    records_.push_back(record);
  }
  if (!runs_.empty() && runs_.back().source == source) {
    runs_.back().count += view.records.size();
  } else {
    runs_.push_back(Run{source, first, view.records.size()});
  }
}

void KvEventBuffer::clear() noexcept {
  records_.clear();
  tokens_.clear();
  sources_.clear();
  keys_.clear();
  runs_.clear();
  appends_ = 0;
}

void KvEventBuffer::swap(KvEventBuffer& other) noexcept {
  records_.swap(other.records_);
  tokens_.swap(other.tokens_);
  sources_.swap(other.sources_);
  keys_.swap(other.keys_);
  runs_.swap(other.runs_);
  std::swap(appends_, other.appends_);
}

void KvEventBuffer::for_each_view(std::size_t max_records,
                                  const std::function<void(const KvEventView&)>& fn) const {
  if (max_records == 0) max_records = 1;
  for (const Run& run : runs_) {
    for (std::size_t done = 0; done < run.count;) {
      const std::size_t n = std::min(max_records, run.count - done);
      fn(KvEventView{sources_[run.source],
                     std::span<const KvEventRecord>(records_).subspan(run.first + done, n),
                     tokens_, keys_});
      done += n;
    }
  }
}

// ---------------------------------------------------------------------------------------------

BatchingEventSink::BatchingEventSink(std::shared_ptr<KvEventSink> downstream,
                                     KvEventBatching batching)
    : downstream_{std::move(downstream)},
      batching_{batching},
      wants_tokens_{downstream_->wants_tokens()} {
  if (batching_.max_events == 0) batching_.max_events = 1;
  // Draining wakes the thread (a futex call and two context switches) and hands the manager a
  // buffer last touched by the sink's core: too dear every batch at full rate, so a manager
  // waits for 16 batches' worth unless the window ends first. At 4 (the earlier default) a
  // lifecycle on a 2-vCPU host cost 1.20-1.24x with the sink against 1.08-1.13x at 16; an
  // engine's rate rarely fills 16 batches within a window, so the window decides there.
  if (batching_.drain_threshold == 0) batching_.drain_threshold = 16 * batching_.max_events;
  thread_ = std::thread([this] { run(); });
}

BatchingEventSink::~BatchingEventSink() {
  {
    std::lock_guard lock{mutex_};
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void BatchingEventSink::append(const KvEventView& view) {
  bool wake = false;
  {
    std::lock_guard lock{mutex_};
    // Only a thread asleep without a deadline must be woken for a new window (see run()); a
    // full batch always wakes it.
    if (!window_open_ && !view.records.empty()) {
      window_open_ = true;
      oldest_ = std::chrono::steady_clock::now();
      wake = idle_;
    }
    incoming_.append(view, wants_tokens_);
    wake = wake || incoming_.size() >= batching_.max_events;
  }
  if (wake) wake_.notify_one();
}

void BatchingEventSink::on_events(const KvEventView& view) { append(view); }

void BatchingEventSink::attach(detail::EventPullSource& source) {
  std::lock_guard lock{sources_mutex_};
  sources_.push_back(&source);
}

void BatchingEventSink::detach(detail::EventPullSource& source) noexcept {
  std::lock_guard lock{sources_mutex_};
  // The pool's last records join the batch (they were made before it died); its lock is still
  // alive here, and no pool lock is held by the caller.
  collect(source);
  std::erase(sources_, &source);
}

void BatchingEventSink::collect(detail::EventPullSource& source) noexcept {
  source.drain([this](const KvEventView& view) {
    try {
      append(view);
    } catch (...) {  // out of memory while copying: these records are lost, the sink lives on
    }
  });
}

void BatchingEventSink::pull_requested(bool full) noexcept {
  bool wake = false;
  {
    std::lock_guard lock{mutex_};
    if (!window_open_) {
      window_open_ = true;
      oldest_ = std::chrono::steady_clock::now();
      wake = idle_;
    }
    if (full && !full_) full_ = wake = true;
  }
  if (wake) wake_.notify_one();
}

void BatchingEventSink::drain_sources(const std::function<void(const KvEventView&)>& deliver) {
  std::lock_guard lock{sources_mutex_};
  for (detail::EventPullSource* source : sources_) {
    if (batching_.deliver_from_pools) {
      source->drain(deliver);
    } else {
      collect(*source);
    }
  }
}

void BatchingEventSink::flush() {
  std::unique_lock lock{mutex_};
  const std::uint64_t ticket = ++flush_requests_;
  wake_.notify_one();
  done_.wait(lock, [&] { return flushed_ >= ticket; });
}

std::uint64_t BatchingEventSink::batches_delivered() const {
  std::lock_guard lock{mutex_};
  return batches_;
}

void BatchingEventSink::run() {
  KvEventBuffer working;
  std::unique_lock lock{mutex_};
  for (;;) {
    const auto due = [&] {
      return stop_ || flush_requests_ != flushed_ || full_ ||
             incoming_.size() >= batching_.max_events ||
             (window_open_ && std::chrono::steady_clock::now() - oldest_ >= batching_.window);
    };
    // Waking the thread costs the producer a futex call and both sides a context switch, so a
    // producer opening a window does not wake it: after a cycle the thread first sleeps one
    // window with a deadline (under load the next window is open by then), and only with
    // nothing pending does it sleep without one, marked idle_, which producers must wake.
    bool waited_a_window = false;
    while (!due()) {
      if (window_open_) {
        wake_.wait_until(lock, oldest_ + batching_.window);
      } else if (!waited_a_window) {
        wake_.wait_for(lock, batching_.window);
        waited_a_window = true;
      } else {
        idle_ = true;
        wake_.wait(lock);
        idle_ = false;
      }
    }
    // Everything recorded before this point is drained below: a flush request read here is
    // served by this cycle. A record arriving later re-opens the window.
    const bool stopping = stop_;
    const std::uint64_t serving = flush_requests_;
    window_open_ = false;
    full_ = false;
    lock.unlock();
    std::uint64_t batches = 0;
    const auto deliver = [&](const KvEventView& view) {
      const std::size_t max = batching_.max_events;
      for (std::size_t first = 0; first < view.records.size(); first += max) {
        try {
          downstream_->on_events(KvEventView{
              view.source, view.records.subspan(first, std::min(max, view.records.size() - first)),
              view.tokens, view.keys});
        } catch (...) {  // a downstream must not throw; keep delivering the rest
        }
        ++batches;
      }
    };
    // A pool's records stay in order: those drained here go before any it left in incoming_
    // later (a detach drains under sources_mutex_ too, so it comes before or after this).
    drain_sources(deliver);
    lock.lock();
    working.swap(incoming_);
    lock.unlock();
    working.for_each_view(batching_.max_events, deliver);
    working.clear();
    lock.lock();
    flushed_ = serving;
    batches_ += batches;
    done_.notify_all();
    if (stopping) return;
  }
}

}  // namespace kvbm
