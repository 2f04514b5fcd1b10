// python/src/device.cpp — the device side: Fence, HostStream, HostGate.
//
// Fence.wait() and HostStream.synchronize() release the GIL (tasks enqueued from Python need it
// to run). A Python task holds its callable through a holder whose last reference is dropped with
// the GIL taken, because the worker thread destroys tasks without it.
// Lifetime: a HostStream drains and joins on close() or when collected (or, if a call on another
// thread still uses it, when that call ends), always with the GIL released.
#include <nanobind/stl/function.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <memory>

#include "common.hpp"

namespace kvbm::python {
namespace {

/// A Python callable owned by C++ code that may drop it on a thread without the GIL.
struct PyCallable {
  explicit PyCallable(nb::object f) : fn{std::move(f)} {}
  PyCallable(const PyCallable&) = delete;
  PyCallable& operator=(const PyCallable&) = delete;
  ~PyCallable() {
    nb::gil_scoped_acquire gil;
    fn.reset();
  }
  nb::object fn;
};

/// Destroys a HostStream (drain + join) with the GIL released, whichever thread drops the last
/// reference: its worker may be waiting for the GIL to run a Python task.
void destroy_stream(HostStream* stream) {
  if (Py_IsInitialized() && PyGILState_Check()) {
    nb::gil_scoped_release release;
    delete stream;
  } else {
    delete stream;
  }
}

struct PyHostStream {
  std::shared_ptr<HostStream> stream{new HostStream(), &destroy_stream};

  /// A reference for the duration of one call: close() from another thread meanwhile only
  /// drops the object's own reference.
  std::shared_ptr<HostStream> live(const char* operation) const {
    if (!stream) throw InvalidHandle(std::string(operation) + ": the HostStream was closed");
    return stream;
  }
  /// Drains queued work and joins the worker (once no call is using the stream).
  void close() { stream.reset(); }
};
}  // namespace

void bind_device(nb::module_& m) {
  nb::class_<Fence>(m, "Fence",
                    "One completion of asynchronous work on a stream (host or CUDA). Copies share "
                    "the completion; Fence() is always ready. Attach one to a block with add_fence "
                    "so its slot is not reused before the work ends.")
      .def(nb::init<>(), "An always-ready fence.")
      .def("ready", &Fence::ready, "True once the work has finished; never blocks.")
      .def("wait", &Fence::wait, nb::call_guard<nb::gil_scoped_release>(),
           "Blocks until the work has finished (the GIL is released meanwhile).")
      .def("__repr__", [](const Fence& f) {
        return std::string(f.ready() ? "Fence(ready)" : "Fence(pending)");
      });

  nb::class_<HostGate>(m, "HostGate",
                       "A gate whose fence is ready once open() is called: holds a HostStream's "
                       "work in flight deterministically (tests, control). Collecting it opens it.")
      .def(nb::init<>())
      .def("open", &HostGate::open, "Opens the gate (idempotent).")
      .def_prop_ro("is_open", &HostGate::is_open, "Whether open() was called.")
      .def("fence", &HostGate::fence, "A fence that is ready once the gate is open.");

  nb::class_<PyHostStream>(
      m, "HostStream",
      "The host backend's stream: enqueued work runs in order on one worker thread; record() "
      "gives a Fence ready once everything enqueued before it has run. A context manager: exit "
      "drains the queue and joins the worker.")
      .def(nb::init<>())
      .def(
          "enqueue",
          [](PyHostStream& s, nb::callable fn) {
            auto holder = std::make_shared<PyCallable>(std::move(fn));
            s.live("HostStream.enqueue")->enqueue([holder] {
              nb::gil_scoped_acquire gil;
              holder->fn();
            });
          },
          nb::arg("fn"),
          "Enqueues fn() (run on the worker with the GIL taken); an exception it raises is "
          "re-raised by synchronize().")
      .def(
          "record", [](PyHostStream& s) { return s.live("HostStream.record")->record(); },
          "A Fence that becomes ready once everything enqueued so far has run.")
      .def(
          "wait", [](PyHostStream& s, const Fence& f) { s.live("HostStream.wait")->wait(f); },
          nb::arg("fence"), "Later work starts only once `fence` is ready (does not block).")
      .def(
          "synchronize",
          [](PyHostStream& s) {
            const std::shared_ptr<HostStream> stream = s.live("HostStream.synchronize");
            nb::gil_scoped_release release;
            stream->synchronize();
          },
          "Blocks (GIL released) until everything enqueued has run; re-raises the first task "
          "exception.")
      .def(
          "idle", [](PyHostStream& s) { return s.live("HostStream.idle")->idle(); },
          "True when nothing is pending or running; never blocks.")
      .def_prop_ro(
          "tasks_completed",
          [](PyHostStream& s) { return s.live("HostStream.tasks_completed")->tasks_completed(); },
          "Tasks run so far.")
      .def("close", &PyHostStream::close, "Drains queued work and joins the worker (idempotent).")
      .def(
          "__enter__", [](PyHostStream& s) -> PyHostStream& { return s; }, nb::rv_policy::reference)
      .def(
          "__exit__",
          [](PyHostStream& s, nb::handle, nb::handle, nb::handle) { s.close(); },
          nb::arg("exc_type").none(), nb::arg("exc").none(), nb::arg("tb").none());
}

}  // namespace kvbm::python
