// python/src/events.cpp — KV event sinks (kvbm/kv_events.hpp, kvbm/events/zmq_publisher.hpp).
//
// A Python sink object (KvEventSink and its subclasses) holds a std::shared_ptr to the C++ sink;
// BlockManager(event_sink=...) gives the manager another one, so the C++ sink lives as long as
// the Python object or any pool reporting to it, whichever is last.
//
// Threads and the GIL. A pool delivers its records on whatever thread left its lock with records
// pending: a Python thread inside a call that released the GIL, a Python thread holding the GIL
// (a handle collected, a property read), or a C++ thread (BatchingEventSink's, a HostStream's).
// No pool lock is held while a sink runs (store_events.hpp), so CallbackEventSink simply takes
// the GIL (PyGILState: re-entrant on a thread that already holds it) and calls the function;
// the pending Python exception of the delivering thread, if any (a handle collected while an
// exception unwinds its frame), is saved around the call. An exception from the function goes to
// sys.unraisablehook and never reaches the pool. While the interpreter finalizes no Python code
// runs: events then are dropped, and a function reference still held is leaked rather than
// released without a GIL that can no longer be taken.
// Sinks that wait for a thread of their own (BatchingEventSink's flush and destructor,
// ZmqEventPublisher's) are flushed and destroyed with the GIL released: their thread may be
// delivering to a Python function that needs it. The last owner of such a sink may be a
// collected Python object, so the shared_ptr's deleter releases the GIL when its thread has it.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "kvbm/events/zmq_publisher.hpp"

namespace kvbm::python {
namespace {

/// True once no Python code may run any more (Py_Finalize has begun or ended).
bool interpreter_gone() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
  return !Py_IsInitialized() || Py_IsFinalizing();
#else
  return !Py_IsInitialized() || _Py_IsFinalizing();
#endif
}

/// A shared_ptr whose deleter runs the sink's destructor with the GIL released when the
/// deleting thread holds it (the destructor joins a thread that may need the GIL).
template <class Sink>
std::shared_ptr<KvEventSink> owned_without_gil(std::unique_ptr<Sink> sink) {
  return std::shared_ptr<KvEventSink>(sink.release(), [](KvEventSink* s) {
    if (Py_IsInitialized() && PyGILState_Check()) {
      nb::gil_scoped_release release;
      delete s;
    } else {
      delete s;
    }
  });
}

// ---- events as Python objects -------------------------------------------------------------

/// One event as Python sees it (kvbm.KvEvent): immutable, built with the GIL held.
struct PyKvEvent {
  const char* kind = "stored";
  std::optional<SequenceHash> sequence_hash;
  std::uint64_t block_hash = 0;
  std::optional<std::uint64_t> parent_hash;
  std::uint32_t position = 0;
  std::vector<Token> token_ids;
  std::uint32_t block_size = 0;
  std::optional<std::string> medium;
  std::uint64_t manager_id = 0;
  std::optional<std::string> lora_name;
  std::optional<std::string> cache_salt;
  nb::object extra_keys;  // tuple or None: vLLM's per-block extra_keys
};

const char* kind_name(KvEventKind kind) noexcept {
  switch (kind) {
    case KvEventKind::Stored: return "stored";
    case KvEventKind::Removed: return "removed";
    case KvEventKind::Cleared: return "cleared";
  }
  return "unknown";
}

/// vLLM's extra_keys entry of a block, as the ZeroMQ publisher writes it: the hashes of the
/// multimodal items overlapping the block, then the LoRA name, then the cache salt on block 0;
/// None when none applies.
nb::object extra_keys_of(const HashKeys& keys, std::uint32_t position, std::uint32_t block_size) {
  const std::vector<std::uint64_t> items = keys.block_extra_keys(position, block_size);
  const bool lora = !keys.lora_name().empty();
  const bool salt = !keys.cache_salt().empty() && position == 0;
  if (items.empty() && !lora && !salt) return nb::none();
  nb::list out;
  for (const std::uint64_t item : items) out.append(nb::int_(item));
  if (lora) out.append(nb::str(keys.lora_name().c_str(), keys.lora_name().size()));
  if (salt) out.append(nb::str(keys.cache_salt().c_str(), keys.cache_salt().size()));
  return nb::tuple(out);
}

/// The records of `view` as a list of KvEvent (GIL held).
nb::list to_events(const KvEventView& view) {
  const KvEventSource& source = *view.source;
  nb::list out;
  for (const KvEventRecord& record : view.records) {
    PyKvEvent event;
    event.kind = kind_name(record.kind);
    event.block_size = source.block_size;
    event.medium = source.medium;
    event.manager_id = source.manager.value();
    event.extra_keys = nb::none();
    if (record.kind != KvEventKind::Cleared) {
      event.sequence_hash = record.hash;
      event.block_hash = record.block_hash;
      event.parent_hash = record.parent();
      event.position = record.position();
      const auto ids = view.token_ids(record);
      event.token_ids.assign(ids.begin(), ids.end());
      if (const HashKeys* keys = view.hash_keys(record); keys != nullptr && !keys->empty()) {
        if (!keys->lora_name().empty()) event.lora_name = keys->lora_name();
        if (!keys->cache_salt().empty()) event.cache_salt = keys->cache_salt();
        event.extra_keys = extra_keys_of(*keys, record.position(), source.block_size);
      }
    }
    out.append(nb::cast(std::move(event), nb::rv_policy::move));
  }
  return out;
}

// ---- sinks --------------------------------------------------------------------------------

/// The C++ side of kvbm.CallbackEventSink: calls a Python function with a list of KvEvent.
class PyCallbackSink final : public KvEventSink {
 public:
  PyCallbackSink(nb::object fn, bool wants_tokens) : fn_{std::move(fn)}, wants_tokens_{wants_tokens} {}
  PyCallbackSink(const PyCallbackSink&) = delete;
  PyCallbackSink& operator=(const PyCallbackSink&) = delete;
  ~PyCallbackSink() override {
    // The last owner may be a pool dropped on a thread without the GIL (a handle released in a
    // GIL-released batch call), or the interpreter may be gone (then the reference is leaked).
    if (interpreter_gone()) {
      (void)fn_.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    nb::error_scope keep_pending;  // dropping the function may run Python code
    fn_.reset();
  }

  void on_events(const KvEventView& view) override {
    if (interpreter_gone()) return;
    nb::gil_scoped_acquire gil;
    // A reference of our own: the GC may clear fn_ (clear()) while the call runs.
    const nb::object fn = fn_;
    if (!fn.is_valid()) return;
    nb::error_scope keep_pending;
    try {
      nb::list events = to_events(view);
      fn(events);
    } catch (nb::python_error& e) {
      e.discard_as_unraisable(fn);
    } catch (const std::exception& e) {  // building the events failed (out of memory)
      PyErr_SetString(PyExc_RuntimeError, e.what());
      PyErr_WriteUnraisable(fn.ptr());
    }
  }
  [[nodiscard]] bool wants_tokens() const noexcept override { return wants_tokens_; }

  // GIL held. The function is shown to the GC by the sink's Python object (one object per C++
  // sink, one reference: the count is exact); clearing it leaves the sink delivering nowhere.
  [[nodiscard]] PyObject* fn() const noexcept { return fn_.ptr(); }
  void clear() noexcept {
    nb::object dropped = std::move(fn_);
  }

 private:
  nb::object fn_;
  bool wants_tokens_;
};

struct PyCallbackEventSink : PyEventSink {};
struct PyBatchingEventSink : PyEventSink {
  nb::object downstream;  // the downstream's Python object, shown to the GC
};
struct PyZmqEventPublisher : PyEventSink {};

// The cyclic GC's view of the Python references the sinks hold (CallbackEventSink: its function;
// BatchingEventSink: its downstream object). A manager holds its sink object the same way
// (blocks.cpp), so a callback referring back to its manager, or a module-level function whose
// module holds the sink, is collectable. Clearing a callback sink leaves it delivering nowhere:
// a pool still alive through handles after its manager and sink objects were collected reports
// into the void.
int callback_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));
  if (!nb::inst_ready(self)) return 0;
  auto* w = nb::inst_ptr<PyCallbackEventSink>(self);
  if (w->sink) Py_VISIT(static_cast<PyCallbackSink&>(*w->sink).fn());
  return 0;
}
int callback_clear(PyObject* self) {
  auto* w = nb::inst_ptr<PyCallbackEventSink>(self);
  if (w->sink) static_cast<PyCallbackSink&>(*w->sink).clear();
  return 0;
}
PyType_Slot callback_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(callback_traverse)},
                                {Py_tp_clear, reinterpret_cast<void*>(callback_clear)},
                                {0, nullptr}};

using BatchingGc = GcSlots<PyBatchingEventSink, &PyBatchingEventSink::downstream>;

BatchingEventSink& batching(PyBatchingEventSink& self) {
  return static_cast<BatchingEventSink&>(*self.sink);  // made only by its __init__
}

KvEventBatching make_batching(double window_ms, std::int64_t max_events) {
  if (!(window_ms >= 0.0) || !std::isfinite(window_ms)) {
    throw ConfigError("window_ms must be a finite number >= 0, got " + std::to_string(window_ms));
  }
  if (max_events < 1) {
    throw ConfigError("max_events must be >= 1, got " + std::to_string(max_events));
  }
  KvEventBatching b;
  b.window = std::chrono::microseconds(static_cast<std::int64_t>(std::llround(window_ms * 1000.0)));
  b.max_events = static_cast<std::size_t>(max_events);
  return b;
}

double window_ms_of(const KvEventBatching& b) { return static_cast<double>(b.window.count()) / 1000.0; }

#if defined(KVBM_PYTHON_EVENTS)
constexpr bool kHasZmq = true;
#else
constexpr bool kHasZmq = false;
[[noreturn]] void no_zmq() {
  throw KvEventsError(
      "ZmqEventPublisher: this kvbm was built without ZeroMQ (kvbm::events needs libzmq, cppzmq "
      "and msgpack-cxx at build time: scripts/install-deps.sh)");
}
#endif

// fn(the publisher). Without ZeroMQ no instance exists (__init__ raises), and a call raises the
// same error; fn takes `auto&`, so there its body is never instantiated (nor linked).
template <class R, class Fn>
R with_publisher(PyZmqEventPublisher& self, const Fn& fn) {
#if defined(KVBM_PYTHON_EVENTS)
  return fn(static_cast<ZmqEventPublisher&>(*self.sink));  // made only by its __init__
#else
  (void)self;
  (void)fn;
  no_zmq();
#endif
}

}  // namespace

void bind_events(nb::module_& m) {
  // Private (stubgen leaves it out, so the stubs are the same with and without ZeroMQ);
  // kvbm/__init__.py exports it as kvbm.HAS_ZMQ.
  m.attr("_HAS_ZMQ") = kHasZmq;

  m.def("wire_hash", &wire_hash, nb::arg("hash"),
        "The u64 a router sees for a block: mixes its position with the part of its chained "
        "hash its child keeps, so parent_wire_hash(child) == wire_hash(parent). Stable across "
        "runs and processes.");
  m.def("parent_wire_hash", &parent_wire_hash, nb::arg("hash"),
        "wire_hash of the block's parent, computed from the block alone; None at position 0.");

  nb::class_<PyKvEvent>(
      m, "KvEvent",
      "One KV event (immutable). kind: \"stored\" (the hash became matchable), \"removed\" (it "
      "stopped being matchable) or \"cleared\" (every hash of the pool stopped being matchable; "
      "the block fields are then empty: sequence_hash None, block_hash 0, no tokens).")
      .def_prop_ro("kind", [](const PyKvEvent& e) { return e.kind; },
                   "\"stored\", \"removed\" or \"cleared\".")
      .def_ro("sequence_hash", &PyKvEvent::sequence_hash,
              "The block's SequenceHash (None for \"cleared\").")
      .def_ro("block_hash", &PyKvEvent::block_hash, "wire_hash(sequence_hash); 0 for \"cleared\".")
      .def_ro("parent_hash", &PyKvEvent::parent_hash,
              "\"stored\": wire hash of the parent block, None at position 0; None otherwise.")
      .def_ro("position", &PyKvEvent::position, "The block's index in its sequence.")
      .def_ro("token_ids", &PyKvEvent::token_ids,
              "\"stored\": the block's tokens when it was completed from a TokenBlock and the "
              "sink wants tokens; empty otherwise.")
      .def_ro("block_size", &PyKvEvent::block_size, "Tokens per block of the reporting pool.")
      .def_ro("medium", &PyKvEvent::medium,
              "The pool's medium (\"GPU\", \"CPU\", \"DISK\" by tier, or the manager's "
              "event_medium); None when the manager has none.")
      .def_ro("manager_id", &PyKvEvent::manager_id, "The reporting manager's id.")
      .def_ro("lora_name", &PyKvEvent::lora_name,
              "\"stored\": the LoRA name of the HashKeys the block was staged with, else None.")
      .def_ro("cache_salt", &PyKvEvent::cache_salt,
              "\"stored\": the cache salt of the block's HashKeys, else None.")
      .def_prop_ro(
          "extra_keys", [](const PyKvEvent& e) { return e.extra_keys; },
          nb::sig("def extra_keys(self) -> tuple[int | str, ...] | None"),
          "\"stored\" with HashKeys: vLLM's per-block extra_keys, as on the wire: the hashes of "
          "the multimodal items overlapping the block, then the LoRA name, then the cache salt "
          "on block 0; None when none applies or the block has no keys.")
      .def("__repr__", [](const PyKvEvent& e) {
        std::string out = std::string("KvEvent(") + e.kind;
        if (std::string_view(e.kind) != "cleared") {
          out += ", position=" + std::to_string(e.position) +
                 ", block_hash=" + std::to_string(e.block_hash);
        }
        return out + ", manager_id=" + std::to_string(e.manager_id) + ")";
      });

  nb::class_<PyEventSink>(
      m, "KvEventSink",
      "Where a BlockManager built with event_sink=... reports its KV events. Not constructible: "
      "use CallbackEventSink, BatchingEventSink or ZmqEventPublisher. One sink may serve "
      "several managers (events name their manager).")
      .def_prop_ro(
          "wants_tokens", [](const PyEventSink& s) { return s.sink->wants_tokens(); },
          "Whether managers copy token ids into stored events (fixed when a manager is built).");

  nb::class_<PyCallbackEventSink, PyEventSink>(
      m, "CallbackEventSink",
      "Calls fn(events), events a list of KvEvent, in the order the pool changed, once per "
      "delivery. It runs on the thread that changed the pool (any thread, also a C++ one), "
      "with the GIL taken; one pool's deliveries never overlap. fn must be quick; it may call "
      "the manager (those events are delivered after it returns). An exception it raises goes "
      "to sys.unraisablehook; the pool is unaffected.",
      nb::type_slots(callback_slots))
      .def(
          "__init__",
          [](PyCallbackEventSink* self, nb::object fn, bool wants_tokens) {
            if (!PyCallable_Check(fn.ptr())) throw nb::type_error("fn must be callable");
            new (self) PyCallbackEventSink{
                {std::make_shared<PyCallbackSink>(std::move(fn), wants_tokens)}};
          },
          nb::arg("fn"), nb::arg("wants_tokens") = true,
          nb::sig("def __init__(self, fn: collections.abc.Callable[[list[KvEvent]], None], "
                  "wants_tokens: bool = True) -> None"),
          "wants_tokens=False: stored events carry no token ids (the managers skip copying "
          "them).");

  nb::class_<PyBatchingEventSink, PyEventSink>(
      m, "BatchingEventSink",
      "Coalesces events into batches of at most max_events, delivered to `downstream` on a "
      "thread of its own when the oldest event is window_ms old or a batch is full, on flush() "
      "and when the sink is destroyed. Managers reporting to it only record their events; its "
      "thread drains them.",
      nb::type_slots(BatchingGc::slots))
      .def(
          "__init__",
          [](PyBatchingEventSink* self, const PyEventSink& downstream, double window_ms,
             std::int64_t max_events, std::int64_t drain_threshold) {
            KvEventBatching b = make_batching(window_ms, max_events);
            if (drain_threshold < 0) {
              throw ConfigError("drain_threshold must be >= 0, got " +
                                std::to_string(drain_threshold));
            }
            b.drain_threshold = static_cast<std::size_t>(drain_threshold);
            new (self) PyBatchingEventSink{
                {owned_without_gil(std::make_unique<BatchingEventSink>(downstream.sink, b))},
                nb::borrow(nb::find(downstream))};
          },
          nb::arg("downstream"), nb::arg("window_ms") = 10.0, nb::arg("max_events") = 1024,
          nb::arg("drain_threshold") = 0,
          "downstream: any KvEventSink. drain_threshold: a manager holding this many undrained "
          "events asks for an early drain (0: 4 * max_events). Bad values raise ConfigError (a "
          "ValueError) naming the argument.")
      .def(
          "flush",
          [](PyBatchingEventSink& self) {
            nb::gil_scoped_release release;
            batching(self).flush();
          },
          "Returns (GIL released) once every event received before the call was delivered "
          "downstream. Must not be called from the downstream's own delivery (it would wait for "
          "itself).")
      .def_prop_ro(
          "batches_delivered", [](PyBatchingEventSink& self) { return batching(self).batches_delivered(); },
          "Batches delivered downstream so far.");

  nb::class_<KvEventBatching>(m, "KvEventBatching",
                              "How a publisher coalesces events into batches.")
      .def(
          "__init__",
          [](KvEventBatching* self, double window_ms, std::int64_t max_events) {
            new (self) KvEventBatching(make_batching(window_ms, max_events));
          },
          nb::arg("window_ms") = 10.0, nb::arg("max_events") = 1024)
      .def_prop_rw(
          "window_ms", [](const KvEventBatching& b) { return window_ms_of(b); },
          [](KvEventBatching& b, double v) { b.window = make_batching(v, 1).window; },
          "The oldest event waits at most this long (milliseconds).")
      .def_prop_rw(
          "max_events", [](const KvEventBatching& b) { return b.max_events; },
          [](KvEventBatching& b, std::int64_t v) { b.max_events = make_batching(0, v).max_events; },
          "At most this many events per batch.");

  const KvEventsConfig defaults{};
  nb::class_<KvEventsConfig>(
      m, "KvEventsConfig",
      "vLLM's KVEventsConfig fields and defaults for ZmqEventPublisher (plus batching and the "
      "socket linger).")
      .def(
          "__init__",
          [](KvEventsConfig* self, std::string endpoint, std::string replay_endpoint,
             std::size_t buffer_steps, int hwm, std::size_t max_queue_size, std::string topic,
             int data_parallel_rank, std::optional<KvEventBatching> batching, int linger_ms) {
            auto* c = new (self) KvEventsConfig{};
            c->endpoint = std::move(endpoint);
            c->replay_endpoint = std::move(replay_endpoint);
            c->buffer_steps = buffer_steps;
            c->hwm = hwm;
            c->max_queue_size = max_queue_size;
            c->topic = std::move(topic);
            c->data_parallel_rank = data_parallel_rank;
            if (batching) c->batching = *batching;
            c->linger_ms = linger_ms;
          },
          nb::arg("endpoint") = defaults.endpoint, nb::arg("replay_endpoint") = defaults.replay_endpoint,
          nb::arg("buffer_steps") = defaults.buffer_steps, nb::arg("hwm") = defaults.hwm,
          nb::arg("max_queue_size") = defaults.max_queue_size, nb::arg("topic") = defaults.topic,
          nb::arg("data_parallel_rank") = defaults.data_parallel_rank,
          nb::arg("batching").none() = nb::none(), nb::arg("linger_ms") = defaults.linger_ms,
          "endpoint: bound if it contains \"*\" or \"::\" or is ipc:// or inproc://, else "
          "connected (vLLM's rule); replay_endpoint \"\": no replay socket; batching None: "
          "KvEventBatching().")
      .def_rw("endpoint", &KvEventsConfig::endpoint)
      .def_rw("replay_endpoint", &KvEventsConfig::replay_endpoint)
      .def_rw("buffer_steps", &KvEventsConfig::buffer_steps)
      .def_rw("hwm", &KvEventsConfig::hwm)
      .def_rw("max_queue_size", &KvEventsConfig::max_queue_size)
      .def_rw("topic", &KvEventsConfig::topic)
      .def_rw("data_parallel_rank", &KvEventsConfig::data_parallel_rank)
      .def_rw("batching", &KvEventsConfig::batching)
      .def_rw("linger_ms", &KvEventsConfig::linger_ms);

  nb::class_<PyZmqEventPublisher, PyEventSink>(
      m, "ZmqEventPublisher",
      "Publishes vLLM-format KV event batches on a ZeroMQ PUB socket (and answers replay "
      "requests on a ROUTER socket), from a thread of its own: reporting managers only queue. "
      "Only in builds with kvbm::events (kvbm.HAS_ZMQ); otherwise construction raises "
      "KvEventsError.")
      .def(
          "__init__",
          [](PyZmqEventPublisher* self, const KvEventsConfig& config) {
#if defined(KVBM_PYTHON_EVENTS)
            std::shared_ptr<KvEventSink> sink;
            {
              nb::gil_scoped_release release;  // binds or connects two sockets
              sink = owned_without_gil(std::make_unique<ZmqEventPublisher>(config));
            }
            new (self) PyZmqEventPublisher{{std::move(sink)}};
#else
            (void)self;
            (void)config;
            no_zmq();
#endif
          },
          nb::arg("config"),
          "Binds or connects both sockets now; raises KvEventsError naming a bad endpoint.")
      .def(
          "flush",
          [](PyZmqEventPublisher& self) {
            with_publisher<void>(self, [](auto& publisher) {
              nb::gil_scoped_release release;
              publisher.flush();
            });
          },
          "Returns (GIL released) once everything queued before the call has been sent.")
      .def(
          "stats",
          [](PyZmqEventPublisher& self) {
            return with_publisher<nb::dict>(self, [](auto& publisher) {
              const auto s = publisher.stats();
              nb::dict out;
              out["events_published"] = s.events_published;
              out["batches_published"] = s.batches_published;
              out["batches_dropped"] = s.batches_dropped;
              out["events_dropped"] = s.events_dropped;
              return out;
            });
          },
          nb::sig("def stats(self) -> dict[str, int]"),
          "events_published, batches_published, batches_dropped, events_dropped.")
      .def_prop_ro(
          "endpoint",
          [](PyZmqEventPublisher& self) {
            return with_publisher<std::string>(self, [](auto& p) { return p.endpoint(); });
          },
          "The PUB endpoint after the rank offset (tcp port 0: the port bound).")
      .def_prop_ro(
          "replay_endpoint",
          [](PyZmqEventPublisher& self) {
            return with_publisher<std::string>(self, [](auto& p) { return p.replay_endpoint(); });
          },
          "The replay endpoint after the rank offset; \"\" without one.");
}

}  // namespace kvbm::python
