// python/src/bench_support.cpp — kvbm._kvbm._bench: the C++ side of bench/python_overhead.py.
//
// Each function times the same batch call the Python benchmark makes, from C++, on the same
// manager and hashes, so the benchmark reports Python/C++ ratios measured in one run. Not API.
#include <time.h>

#include "common.hpp"

namespace kvbm::python {
namespace {

/// This thread's CPU time: on a shared machine, time spent descheduled is not counted (the
/// Python side uses time.thread_time_ns, the same clock).
double thread_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

template <class F>
double ns_per_call(std::size_t iterations, F&& f) {
  const double start = thread_ns();
  for (std::size_t i = 0; i < iterations; ++i) f();
  return (thread_ns() - start) / static_cast<double>(iterations);
}

std::vector<SequenceHash> hashes_of(const nb::list& hashes) {
  std::vector<SequenceHash> out;
  out.reserve(hashes.size());
  for (nb::handle h : hashes) out.push_back(nb::cast<SequenceHash>(h));
  return out;
}

}  // namespace

void bind_bench_support(nb::module_& m) {
  nb::module_ bench = m.def_submodule("_bench", "C++ timings for bench/python_overhead.py (not API).");
  bench.def(
      "match_ns",
      [](PyBlockManager& self, const nb::list& hashes, std::size_t iterations) {
        const std::vector<SequenceHash> keys = hashes_of(hashes);
        return std::visit(
            [&](auto& mgr) {
              nb::gil_scoped_release release;
              return ns_per_call(iterations, [&] { auto blocks = mgr.match_blocks(keys); });
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("hashes"), nb::arg("iterations"),
      "ns per match_blocks(hashes) + dropping the result, from C++.");
  bench.def(
      "match_release_ns",
      [](PyBlockManager& self, const nb::list& hashes, std::size_t iterations) {
        const std::vector<SequenceHash> keys = hashes_of(hashes);
        return std::visit(
            [&](auto& mgr) {
              nb::gil_scoped_release release;
              return ns_per_call(iterations,
                                 [&] { mgr.release_blocks(mgr.match_blocks(keys)); });
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("hashes"), nb::arg("iterations"),
      "ns per match_blocks(hashes) + release_blocks of the result, from C++.");
  bench.def(
      "allocate_ns",
      [](PyBlockManager& self, std::size_t n, std::size_t iterations) {
        return std::visit(
            [&](auto& mgr) {
              nb::gil_scoped_release release;
              return ns_per_call(iterations, [&] { auto blocks = mgr.allocate_blocks(n); });
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("n"), nb::arg("iterations"),
      "ns per allocate_blocks(n) + dropping the result, from C++.");
  bench.def(
      "noop_ns",
      [](std::size_t iterations) {
        return ns_per_call(iterations, [] {});
      },
      nb::arg("iterations"), "The timing loop's own cost (ns per iteration).");
}

}  // namespace kvbm::python
