// bench/paired.hpp — two loops timed against each other within one benchmark.
//
// Each benchmark iteration runs `runs` calls of loop a, then `runs` of loop b, timed apart; b's
// time is the iteration time Google Benchmark reports, and the counter `ratio` is the total time
// of b over that of a. On a shared host the separate rows of a workload and its baseline move by
// 20-50 % between runs, while noise lands on both sides of a pair alike. `after_b` runs untimed
// after every b side (e.g. to let a background thread finish what b started).
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <future>
#include <thread>

namespace kvbm::bench {

/// One more thread, asleep until destroyed. While a process has a single thread, glibc and
/// libstdc++ take cheaper paths (mutexes without locked instructions, shared_ptr counts without
/// atomics); an engine never runs single-threaded, so a benchmark that holds one measures what
/// the code costs there.
class IdleThread {
 public:
  IdleThread() : thread_{[done = quit_.get_future()]() mutable { done.wait(); }} {}
  ~IdleThread() {
    quit_.set_value();
    thread_.join();
  }
  IdleThread(const IdleThread&) = delete;
  IdleThread& operator=(const IdleThread&) = delete;

 private:
  std::promise<void> quit_;  // declared first: the thread waits on its future
  std::thread thread_;
};

struct PairedSeconds {
  double a = 0;  ///< total seconds of side a
  double b = 0;  ///< total seconds of side b
};

template <class A, class B, class AfterB>
PairedSeconds run_paired(benchmark::State& state, std::size_t runs, A&& a, B&& b,
                         AfterB&& after_b) {
  const auto timed = [runs](auto& loop) {
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < runs; ++i) loop();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  PairedSeconds total;
  for (auto _ : state) {
    total.a += timed(a);
    const double t = timed(b);
    total.b += t;
    state.SetIterationTime(t);
    after_b();
  }
  state.counters["ratio"] = total.a > 0 ? total.b / total.a : 0;
  return total;
}

}  // namespace kvbm::bench
