// python/src/module.cpp — kvbm._kvbm: the extension module. One bind_* per API area (one file
// each); a new area (request sequences, KV event sinks) is one file and one line here.
#include "common.hpp"

NB_MODULE(_kvbm, m) {
  m.doc() = "kvbm: KV-cache block manager (C++ library bindings; import kvbm, not this module).";
  namespace py = kvbm::python;
  py::bind_errors(m);
  py::bind_tokens(m);
  py::bind_device(m);
  py::bind_blocks(m);
  py::bind_sequences(m);
  py::bind_events(m);
  py::bind_bench_support(m);
}
