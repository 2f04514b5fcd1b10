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

void BatchingEventSink::on_events(const KvEventView& view) {
  bool wake = false;
  {
    std::lock_guard lock{mutex_};
    // The thread sleeps without a deadline while the buffer is empty: the first record of a
    // window must wake it to start the timer, as must a full batch. Others need no notify.
    const bool first = incoming_.empty();
    if (first) oldest_ = std::chrono::steady_clock::now();
    incoming_.append(view, wants_tokens_);
    ++received_;
    wake = (first && !incoming_.empty()) || incoming_.size() >= batching_.max_events;
  }
  if (wake) wake_.notify_one();
}

void BatchingEventSink::flush() {
  std::unique_lock lock{mutex_};
  const std::uint64_t target = received_;
  flush_requested_ = true;
  wake_.notify_one();
  done_.wait(lock, [&] { return delivered_ >= target; });
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
      return stop_ || flush_requested_ || incoming_.size() >= batching_.max_events ||
             (!incoming_.empty() &&
              std::chrono::steady_clock::now() - oldest_ >= batching_.window);
    };
    while (!due()) {
      if (incoming_.empty()) {
        wake_.wait(lock);
      } else {
        wake_.wait_until(lock, oldest_ + batching_.window);
      }
    }
    const bool stopping = stop_ && incoming_.empty();
    flush_requested_ = false;
    working.swap(incoming_);
    const std::uint64_t taken = received_;
    lock.unlock();
    std::uint64_t batches = 0;
    working.for_each_view(batching_.max_events, [&](const KvEventView& view) {
      try {
        downstream_->on_events(view);
      } catch (...) {  // a downstream must not throw; keep delivering the rest
      }
      ++batches;
    });
    working.clear();
    lock.lock();
    delivered_ = taken;
    batches_ += batches;
    done_.notify_all();
    if (stopping || (stop_ && incoming_.empty())) return;
  }
}

}  // namespace kvbm
