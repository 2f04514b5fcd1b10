// python/src/bench_support.cpp — kvbm._kvbm._bench: the C++ side of bench/python_overhead.py.
//
// Each function times the same batch calls the Python benchmark makes, from C++, on the same
// manager and hashes, so the benchmark reports Python/C++ ratios measured in one run. Not API.
#include <time.h>

#include <optional>
#include <span>
#include <stdexcept>

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

std::vector<SequenceHash> hashes_of(const nb::list& hashes) {
  std::vector<SequenceHash> out;
  out.reserve(hashes.size());
  for (nb::handle h : hashes) out.push_back(nb::cast<SequenceHash>(h));
  return out;
}

}  // namespace

void bind_bench_support(nb::module_& m) {
  nb::module_ bench = m.def_submodule("_bench", "C++ timings for bench/python_overhead.py (not API).");
  // Each *_calls_ns times `calls` back-to-back calls of one batch call on prepared inputs (the
  // same as the Python side prepares) and returns ns per call; results are kept and dropped
  // after the clock stops, so only the call itself is timed, as in Python.
  bench.def(
      "allocate_calls_ns",
      [](PyBlockManager& self, std::size_t n, std::size_t calls) {
        return std::visit(
            [&](auto& mgr) {
              using Mutable = typename std::decay_t<decltype(mgr)>::Mutable;
              nb::gil_scoped_release release;
              std::vector<std::optional<std::vector<Mutable>>> out(calls);
              const double start = thread_ns();
              for (std::size_t i = 0; i < calls; ++i) out[i] = mgr.allocate_blocks(n);
              return (thread_ns() - start) / static_cast<double>(calls);
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("n"), nb::arg("calls"), "ns per allocate_blocks(n), from C++.");
  bench.def(
      "register_calls_ns",
      [](PyBlockManager& self, const nb::list& hashes, std::size_t n, std::size_t calls) {
        const std::vector<SequenceHash> keys = hashes_of(hashes);
        if (keys.size() < n * calls) throw nb::value_error("register_calls_ns: too few hashes");
        return std::visit(
            [&](auto& mgr) {
              using M = std::decay_t<decltype(mgr)>;
              nb::gil_scoped_release release;
              std::vector<std::vector<typename M::Complete>> in(calls);
              for (std::size_t i = 0; i < calls; ++i) {
                auto blocks = mgr.allocate_blocks(n);
                if (!blocks) throw std::runtime_error("register_calls_ns: pool too small");
                for (std::size_t j = 0; j < n; ++j) {
                  in[i].push_back(std::move((*blocks)[j]).stage(keys[i * n + j], mgr.block_size()));
                }
              }
              std::vector<std::vector<typename M::Immutable>> out(calls);
              const double start = thread_ns();
              for (std::size_t i = 0; i < calls; ++i) out[i] = mgr.register_blocks(std::move(in[i]));
              const double ns = (thread_ns() - start) / static_cast<double>(calls);
              out.clear();
              mgr.reset_inactive_pool();
              return ns;
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("hashes"), nb::arg("n"), nb::arg("calls"),
      "ns per register_blocks of n staged blocks (fresh hashes), from C++.");
  bench.def(
      "match_calls_ns",
      [](PyBlockManager& self, const nb::list& hashes, std::size_t n, std::size_t calls) {
        const std::vector<SequenceHash> keys = hashes_of(hashes);
        if (keys.size() < n * calls) throw nb::value_error("match_calls_ns: too few hashes");
        return std::visit(
            [&](auto& mgr) {
              using M = std::decay_t<decltype(mgr)>;
              nb::gil_scoped_release release;
              std::vector<std::vector<typename M::Immutable>> out(calls);
              const double start = thread_ns();
              for (std::size_t i = 0; i < calls; ++i) {
                out[i] = mgr.match_blocks(std::span(keys).subspan(i * n, n));
              }
              return (thread_ns() - start) / static_cast<double>(calls);
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("hashes"), nb::arg("n"), nb::arg("calls"),
      "ns per match_blocks of n hashes (call i: hashes[i*n:(i+1)*n]), from C++.");
  bench.def(
      "release_calls_ns",
      [](PyBlockManager& self, const nb::list& hashes, std::size_t n, std::size_t calls) {
        const std::vector<SequenceHash> keys = hashes_of(hashes);
        if (keys.size() < n * calls) throw nb::value_error("release_calls_ns: too few hashes");
        return std::visit(
            [&](auto& mgr) {
              using M = std::decay_t<decltype(mgr)>;
              nb::gil_scoped_release release;
              std::vector<std::vector<typename M::Immutable>> in(calls);
              for (std::size_t i = 0; i < calls; ++i) {
                in[i] = mgr.match_blocks(std::span(keys).subspan(i * n, n));
              }
              const double start = thread_ns();
              for (std::size_t i = 0; i < calls; ++i) mgr.release_blocks(std::move(in[i]));
              return (thread_ns() - start) / static_cast<double>(calls);
            },
            self.manager);
      },
      nb::arg("manager"), nb::arg("hashes"), nb::arg("n"), nb::arg("calls"),
      "ns per release_blocks of one match_calls_ns-style match result, from C++.");
}

}  // namespace kvbm::python
