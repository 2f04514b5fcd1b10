// python/src/blocks.cpp — BlockRegistry, BlockManager and the block handles.
//
// Batch calls convert their input once with the GIL held (pointers into the caller's handles,
// or a vector of hashes), run the C++ call with the GIL released, then build the result list in
// C++ with the GIL taken only for that: one pre-fetched type and one allocation per handle, no
// per-block Python call. Handles consumed by a call (register_blocks, release_blocks) become
// released; when the C++ call throws without consuming them they are put back untouched.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <array>
#include <new>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "common.hpp"
#include "fast_instances.hpp"

namespace kvbm::python {
namespace {

// ---- arguments ----------------------------------------------------------------------------

/// BlockManager's event_* arguments, checked.
struct EventArgs {
  std::shared_ptr<KvEventSink> sink;
  KvEventPolicy policy = KvEventPolicy::All;
  std::optional<std::string> medium;
};

template <class Tier>
BlockManager<Tier> build_manager(std::size_t block_count, std::uint32_t block_size,
                                 BlockRegistry registry, EvictionBackend backend,
                                 DuplicationPolicy policy, bool reset_on_release,
                                 const EventArgs& events) {
  auto builder = BlockManager<Tier>::builder();
  builder.block_count(block_count)
      .block_size(block_size)
      .registry(std::move(registry))
      .duplication_policy(policy)
      .backend(backend)
      .default_reset_on_release(reset_on_release);
  if (events.sink != nullptr) {
    builder.event_sink(events.sink).event_policy(events.policy);
    if (events.medium) {  // "" names no medium; None keeps the tier's
      builder.event_medium(events.medium->empty() ? std::nullopt : events.medium);
    }
  }
  return builder.build();
}

BlockRegistry build_registry(const std::optional<std::string>& tracker) {
  auto builder = BlockRegistry::builder();
  if (!tracker) return builder.build();
  if (*tracker == "small") builder.frequency_tracker(FrequencyTrackingCapacity::Small);
  else if (*tracker == "medium") builder.frequency_tracker(FrequencyTrackingCapacity::Medium);
  else if (*tracker == "large") builder.frequency_tracker(FrequencyTrackingCapacity::Large);
  else {
    throw ConfigError("frequency_tracker must be None, \"small\", \"medium\" or \"large\", got \"" +
                      *tracker + "\"");
  }
  return builder.build();
}

void init_manager(PyBlockManager* self, const std::string& tier, std::int64_t block_count,
                  std::int64_t block_size, std::optional<BlockRegistry> registry,
                  const std::string& backend, const std::string& duplication,
                  bool reset_on_release, const PyEventSink* event_sink,
                  const std::string& event_policy, std::optional<std::string> event_medium) {
  EventArgs events;
  if (event_policy == "all") events.policy = KvEventPolicy::All;
  else if (event_policy == "power-of-two") events.policy = KvEventPolicy::PowerOfTwo;
  else {
    throw ConfigError("event_policy must be \"all\" or \"power-of-two\", got \"" + event_policy +
                      "\"");
  }
  nb::object sink_object;
  if (event_sink != nullptr) {
    events.sink = event_sink->sink;
    sink_object = nb::borrow(nb::find(event_sink));
  }
  events.medium = std::move(event_medium);
  if (block_count <= 0) {
    throw ConfigError("block_count must be > 0, got " + std::to_string(block_count));
  }
  if (block_size <= 0 || block_size > 0xFFFFFFFFll) {
    throw ConfigError("block_size must be a power of two in 1..1024, got " +
                      std::to_string(block_size));
  }
  DuplicationPolicy policy;
  if (duplication == "allow") policy = DuplicationPolicy::Allow;
  else if (duplication == "reject") policy = DuplicationPolicy::Reject;
  else throw ConfigError("duplication must be \"allow\" or \"reject\", got \"" + duplication + "\"");
  const EvictionBackend eviction = parse_eviction_backend(backend);
  BlockRegistry reg = registry ? *registry : BlockRegistry::builder().build();
  const auto count = static_cast<std::size_t>(block_count);
  const auto size = static_cast<std::uint32_t>(block_size);
  if (tier == "G1") {
    new (self) PyBlockManager{build_manager<G1>(count, size, reg, eviction, policy, reset_on_release,
                                                     events),
                              sink_object};
  } else if (tier == "G2") {
    new (self) PyBlockManager{build_manager<G2>(count, size, reg, eviction, policy, reset_on_release,
                                                     events),
                              sink_object};
  } else if (tier == "G3") {
    new (self) PyBlockManager{build_manager<G3>(count, size, reg, eviction, policy, reset_on_release,
                                                     events),
                              sink_object};
  } else {
    throw ConfigError("tier must be \"G1\", \"G2\" or \"G3\", got \"" + tier + "\"");
  }
}

[[noreturn]] void not_a(PyObject* item, Py_ssize_t i, const char* operation, const char* expected) {
  throw nb::type_error((std::string(operation) + ": item " + std::to_string(i) + " is a " +
                        Py_TYPE(item)->tp_name + ", expected " + expected)
                           .c_str());
}

/// A sequence's items, read in place: a list or tuple directly (no Python code runs while a
/// batch call reads them), anything else through PySequence_Fast, kept alive by `keep`.
struct Items {
  nb::object keep;
  PyObject** items = nullptr;
  Py_ssize_t size = 0;

  Items(nb::handle sequence, const char* operation, const char* expected) {
    PyObject* seq = sequence.ptr();
    if (!PyList_CheckExact(seq) && !PyTuple_CheckExact(seq)) {
      const std::string message = std::string(operation) + ": expected a sequence of " + expected;
      keep = nb::steal(PySequence_Fast(seq, message.c_str()));
      if (!keep.is_valid()) throw nb::python_error();
      seq = keep.ptr();
    }
    items = PySequence_Fast_ITEMS(seq);
    size = PySequence_Fast_GET_SIZE(seq);
  }
};

/// How many items ahead a batch call's loop over Python objects starts loading them.
constexpr Py_ssize_t kPrefetchAhead = 4;

/// Starts loading an object's first two cache lines (its header and the C++ value after it).
inline void prefetch_object(PyObject* object) noexcept {
  __builtin_prefetch(object);
  __builtin_prefetch(reinterpret_cast<const char*>(object) + 64);
}

/// Item i of `in` as a bound `T` (exact type or subclass); TypeError naming it otherwise.
template <class T>
T* item_as(const Items& in, Py_ssize_t i, const char* operation, const char* expected) {
  PyObject* item = in.items[i];
  PyTypeObject* type = detail::bound_type<T>();
  if (Py_TYPE(item) != type && !PyObject_TypeCheck(item, type)) {
    not_a(item, i, operation, expected);
  }
  return detail::payload<T>(item);
}

/// The hashes of a sequence of SequenceHash, in one pass (each item's C++ value is read in
/// place: no per-item cast); TypeError naming the first item of another type.
std::vector<SequenceHash> hashes_of(nb::handle sequence, const char* operation) {
  const Items in(sequence, operation, "SequenceHash");
  std::vector<SequenceHash> out(static_cast<std::size_t>(in.size));
  for (Py_ssize_t i = 0; i < in.size; ++i) {
    if (i + kPrefetchAhead < in.size) prefetch_object(in.items[i + kPrefetchAhead]);
    out[static_cast<std::size_t>(i)] = *item_as<SequenceHash>(in, i, operation, "SequenceHash");
  }
  return out;
}

/// The result list, built in C++: one object per handle (make_instance: no nanobind
/// bookkeeping, see fast_instances.hpp), no Python-level calls.
template <class Wrapper, class Handle>
nb::list to_list(std::vector<Handle>& handles) {
  nb::list out = nb::steal<nb::list>(PyList_New(static_cast<Py_ssize_t>(handles.size())));
  if (!out.is_valid()) throw nb::python_error();
  for (std::size_t i = 0; i < handles.size(); ++i) {
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i),
                    detail::make_instance<Wrapper>(std::move(handles[i])).release().ptr());
  }
  return out;
}

template <class Wrapper, class Handle>
nb::object wrap(Handle&& handle) {
  return detail::make_instance<Wrapper>(std::move(handle));
}

/// Moves the handles out of the wrappers in `in` into one vector for a consuming batch call.
/// Every item must be a live `Wrapper` of `Tier`; checked before anything moves, and a wrapper
/// listed twice puts everything back. `restore` hands back what the call did not consume.
template <class Tier, template <class> class Handle, class Wrapper>
struct Consumed {
  std::vector<Handle<Tier>> handles;
  // The wrappers' objects, one strong reference each: another thread may empty the caller's
  // list while the call runs without the GIL, and restore() still writes into them.
  std::vector<PyObject*> from;

  Consumed(const Items& in, const char* operation, const char* what) {
    handles.reserve(static_cast<std::size_t>(in.size));
    from.reserve(static_cast<std::size_t>(in.size));
    // One pass; any bad item puts back what was taken so far before throwing.
    PyTypeObject* const type = detail::bound_type<Wrapper>();
    for (Py_ssize_t i = 0; i < in.size; ++i) {
      PyObject* item = in.items[i];
      if (i + kPrefetchAhead < in.size) prefetch_object(in.items[i + kPrefetchAhead]);
      if (Py_TYPE(item) != type && !PyObject_TypeCheck(item, type)) {
        restore();
        not_a(item, i, operation, what);
      }
      auto* w = detail::payload<Wrapper>(item);
      if (w->handle.index() == 0) {
        const bool twice = std::find(from.begin(), from.end(), item) != from.end();
        restore();
        if (twice) {
          throw InvalidHandle(std::string(operation) + ": the same " + what + " is listed twice");
        }
        throw InvalidHandle(std::string(operation) + ": a " + what +
                            " was already released (closed, consumed, or passed to a batch call)");
      }
      auto* handle = std::get_if<Handle<Tier>>(&w->handle);
      if (handle == nullptr) {
        restore();
        throw ForeignBlock(std::string(operation) + ": a " + what +
                           " belongs to a manager of another tier");
      }
      handles.push_back(std::move(*handle));
      w->handle = std::monostate{};
      Py_INCREF(item);
      from.push_back(item);
    }
  }
  Consumed(const Consumed&) = delete;
  Consumed& operator=(const Consumed&) = delete;
  ~Consumed() {  // with the GIL held
    for (PyObject* o : from) Py_DECREF(o);
  }
  void restore() noexcept {
    for (std::size_t i = 0; i < from.size(); ++i) {
      detail::payload<Wrapper>(from[i])->handle = std::move(handles[i]);
      Py_DECREF(from[i]);
    }
    handles.clear();
    from.clear();
  }
};

// ---- BlockManager -------------------------------------------------------------------------

template <class M>
struct TierOf;
template <class Tier>
struct TierOf<BlockManager<Tier>> {
  using type = Tier;
};
template <class M>
using tier_of = typename TierOf<std::decay_t<M>>::type;

template <class F>
auto with_manager(PyBlockManager& self, F&& f) {
  return std::visit(std::forward<F>(f), self.manager);
}

std::optional<nb::list> allocate_blocks(PyBlockManager& self, std::size_t n, bool blocking) {
  return with_manager(self, [&](auto& manager) -> std::optional<nb::list> {
    using M = std::decay_t<decltype(manager)>;
    std::optional<std::vector<typename M::Mutable>> blocks;
    {
      nb::gil_scoped_release release;
      blocks = blocking ? manager.allocate_blocks_blocking(n) : manager.allocate_blocks(n);
    }
    if (!blocks) return std::nullopt;
    return to_list<PyMutableBlock>(*blocks);
  });
}

nb::list register_blocks(PyBlockManager& self, nb::handle blocks) {
  const Items items(blocks, "register_blocks", "CompleteBlock");
  return with_manager(self, [&](auto& manager) {
    using Tier = tier_of<decltype(manager)>;
    Consumed<Tier, CompleteBlock, PyCompleteBlock> in(items, "register_blocks",
                                                      "CompleteBlock");
    std::vector<ImmutableBlock<Tier>> out;
    try {
      nb::gil_scoped_release release;
      out = manager.register_blocks(std::move(in.handles));
    } catch (...) {
      in.restore();  // ForeignBlock: nothing was consumed
      throw;
    }
    return to_list<PyImmutableBlock>(out);
  });
}

nb::list match_blocks(PyBlockManager& self, nb::handle hashes) {
  const std::vector<SequenceHash> keys = hashes_of(hashes, "match_blocks");
  return with_manager(self, [&](auto& manager) {
    using Tier = tier_of<decltype(manager)>;
    std::vector<ImmutableBlock<Tier>> out;
    {
      nb::gil_scoped_release release;
      out = manager.match_blocks(keys);
    }
    return to_list<PyImmutableBlock>(out);
  });
}

nb::dict scan_matches(PyBlockManager& self, nb::handle hashes, bool touch) {
  // The caller's objects become the result's keys after the GIL-released call, so they are
  // read from a sequence nobody else can change meanwhile: the caller's tuple, a tuple copy of
  // the caller's list, or PySequence_Fast's own list.
  Items items(hashes, "scan_matches", "SequenceHash");
  if (!items.keep.is_valid() && !PyTuple_CheckExact(hashes.ptr())) {
    const nb::object copy = nb::steal(PySequence_Tuple(hashes.ptr()));
    if (!copy.is_valid()) throw nb::python_error();
    items = Items(copy, "scan_matches", "SequenceHash");
    items.keep = copy;
  }
  std::vector<SequenceHash> keys(static_cast<std::size_t>(items.size));
  for (Py_ssize_t i = 0; i < items.size; ++i) {
    keys[static_cast<std::size_t>(i)] = *item_as<SequenceHash>(items, i, "scan_matches", "SequenceHash");
  }
  return with_manager(self, [&](auto& manager) {
    using Tier = tier_of<decltype(manager)>;
    std::unordered_map<SequenceHash, ImmutableBlock<Tier>> found;
    {
      nb::gil_scoped_release release;
      found = manager.scan_matches(keys, touch);
    }
    // The caller's own SequenceHash objects become the keys: no new object per entry.
    nb::dict out;
    PyObject** objects = items.items;
    for (std::size_t i = 0; i < keys.size() && !found.empty(); ++i) {
      auto it = found.find(keys[i]);
      if (it == found.end()) continue;
      out[nb::handle(objects[i])] = wrap<PyImmutableBlock>(std::move(it->second));
      found.erase(it);
    }
    return out;
  });
}

void release_blocks(PyBlockManager& self, nb::handle blocks) {
  const Items items(blocks, "release_blocks", "ImmutableBlock");
  with_manager(self, [&](auto& manager) {
    using Tier = tier_of<decltype(manager)>;
    using Taken = std::pair<BlockId, std::uint32_t>;
    kvbm::detail::BlockStore* const pool = kvbm::detail::BindingAccess::pool(manager);
    // Everything the C++ call checks (live, this pool, each handle once) is checked here with
    // the GIL held. Each handle's (slot, generation) is taken and the handle disarmed in the
    // same pass (a second listing then finds it disarmed); the first bad one re-arms those
    // taken so far, and nothing changed. Then every wrapper is emptied, still under the GIL,
    // so no wrapper is touched after the GIL-released release, which cannot fail: the caller's
    // objects need no extra reference while another thread may change the caller's list.
    // The handles are not moved into a vector of ImmutableBlocks, and up to kOnStack of them
    // need no allocation at all (a malloc/free pair was a tenth of a 32-block call).
    constexpr std::size_t kOnStack = 64;
    std::array<Taken, kOnStack> on_stack;
    std::vector<Taken> on_heap;
    const auto count = static_cast<std::size_t>(items.size);
    if (count > kOnStack) on_heap.resize(count);
    const std::span<Taken> room = count > kOnStack ? std::span<Taken>(on_heap)
                                                   : std::span<Taken>(on_stack).first(count);
    std::size_t taken = 0;
    auto handle_of = [&](Py_ssize_t i) {
      return std::get_if<ImmutableBlock<Tier>>(&detail::payload<PyImmutableBlock>(items.items[i])->handle);
    };
    auto put_back = [&] {
      for (std::size_t j = 0; j < taken; ++j) {
        kvbm::detail::BlockAccess::rearm(*handle_of(static_cast<Py_ssize_t>(j)), pool);
      }
    };
    PyTypeObject* const type = detail::bound_type<PyImmutableBlock>();
    for (Py_ssize_t i = 0; i < items.size; ++i) {
      PyObject* item = items.items[i];
      // The objects are scattered in memory: start loading a few ahead (header and handle).
      if (i + kPrefetchAhead < items.size) prefetch_object(items.items[i + kPrefetchAhead]);
      if (Py_TYPE(item) != type && !PyObject_TypeCheck(item, type)) {
        put_back();
        not_a(item, i, "release_blocks", "ImmutableBlock");
      }
      ImmutableBlock<Tier>* handle = handle_of(i);
      const kvbm::detail::BlockStore* store = handle == nullptr ? nullptr : kvbm::detail::BlockAccess::store(*handle);
      if (store != pool) {
        // A handle naming no pool was taken earlier in this call (listed twice) or moved from;
        // an empty wrapper was released before; no handle of this tier: another tier's block.
        const bool disarmed = handle != nullptr && store == nullptr;
        const bool twice = disarmed && std::find(items.items, items.items + i, item) != items.items + i;
        const bool released =
            disarmed || detail::payload<PyImmutableBlock>(item)->handle.index() == 0;
        const bool other_tier = handle == nullptr && !released;
        put_back();
        if (twice) throw InvalidHandle("release_blocks: the same ImmutableBlock is listed twice");
        if (released) {
          throw InvalidHandle("release_blocks: an ImmutableBlock was already released (closed, "
                              "consumed, or passed to a batch call)");
        }
        throw ForeignBlock(other_tier
                               ? "release_blocks: an ImmutableBlock belongs to a manager of another tier"
                               : "release_blocks: an ImmutableBlock belongs to another manager");
      }
      room[taken++] = {handle->block_id(), kvbm::detail::BlockAccess::generation(*handle)};
      kvbm::detail::BlockAccess::disarm(*handle);
    }
    for (Py_ssize_t i = 0; i < items.size; ++i) {
      detail::payload<PyImmutableBlock>(items.items[i])->handle = std::monostate{};  // disarmed: no release
    }
    nb::gil_scoped_release release;
    kvbm::detail::BindingAccess::release_taken(manager, room);
  });
}

PyBlockBatch match_blocks_batch(PyBlockManager& self, nb::handle hashes) {
  const std::vector<SequenceHash> keys = hashes_of(hashes, "match_blocks_batch");
  return with_manager(self, [&](auto& manager) {
    PyBlockBatch out;
    nb::gil_scoped_release release;
    out.handle = manager.match_blocks(keys);
    return out;
  });
}

void release_batch(PyBlockManager& self, PyBlockBatch& batch) {
  with_manager(self, [&](auto& manager) {
    using Tier = tier_of<decltype(manager)>;
    if (batch.handle.index() == 0) {
      throw InvalidHandle("release_blocks: the BlockBatch was already released");
    }
    auto* held = std::get_if<ImmutableBlocks<Tier>>(&batch.handle);
    if (held == nullptr) {
      throw ForeignBlock("release_blocks: the BlockBatch belongs to a manager of another tier");
    }
    // Out of the batch before the GIL goes: another thread may close the batch meanwhile.
    ImmutableBlocks<Tier> blocks = std::move(*held);
    batch.handle = std::monostate{};
    try {
      nb::gil_scoped_release release;
      manager.release_blocks(std::move(blocks));
    } catch (...) {
      batch.handle = std::move(blocks);  // ForeignBlock: nothing was released
      throw;
    }
  });
}

nb::dict metrics(PyBlockManager& self) {
  const MetricsSnapshot s = with_manager(self, [](auto& manager) { return manager.metrics(); });
  nb::dict out;
#define KVBM_PY_METRIC(name, meaning) out[#name] = s.name;
  KVBM_METRICS(KVBM_PY_METRIC, KVBM_PY_METRIC)
#undef KVBM_PY_METRIC
  return out;
}

// ---- handles ------------------------------------------------------------------------------

constexpr const char* kReleasedDoc =
    "Releases the handle now (idempotent); later use raises InvalidHandle.";

template <class Wrapper>
void release(Wrapper& w) {
  if constexpr (std::is_same_v<Wrapper, PyLifecyclePin>) {
    w.pin.reset();
  } else {
    w.handle = std::monostate{};
  }
}

template <class Wrapper>
bool is_live(const Wrapper& w) {
  if constexpr (std::is_same_v<Wrapper, PyLifecyclePin>) {
    return w.pin.has_value();
  } else {
    return w.handle.index() != 0;
  }
}

/// close(), the context-manager protocol and `valid`, shared by every handle class.
template <class Wrapper>
void add_handle_protocol(nb::class_<Wrapper>& cls) {
  // __enter__ returns its own argument: a C++ reference return would make nanobind look the
  // object up in its instance table, where fast instances (fast_instances.hpp) are not.
  static const std::string enter_sig =
      "def __enter__(self) -> " + nb::cast<std::string>(cls.attr("__name__"));
  cls.def("close", &release<Wrapper>, kReleasedDoc)
      .def(
          "__enter__", [](nb::pointer_and_handle<Wrapper> self) { return nb::borrow(self.h); },
          nb::sig(enter_sig.c_str()))
      .def(
          "__exit__", [](Wrapper& w, nb::handle, nb::handle, nb::handle) { release(w); },
          nb::arg("exc_type").none(), nb::arg("exc").none(), nb::arg("tb").none(),
          "Releases the handle (the `with` block's end).")
      .def_prop_ro("valid", &is_live<Wrapper>, "False once the handle was released.");
}

template <class Wrapper>
std::string handle_repr(const char* name, Wrapper& w) {
  if (!is_live(w)) return std::string(name) + "(released)";
  std::uint32_t id = 0;
  if constexpr (std::is_same_v<Wrapper, PyLifecyclePin>) {
    id = w.pin->block_id();
  } else {
    id = visit_live(w.handle, name, [](auto& b) { return b.block_id(); });
  }
  return std::string(name) + "(block_id=" + std::to_string(id) + ")";
}

PyLifecyclePin& live_pin(PyLifecyclePin& p, const char* operation) {
  if (!p.pin) {
    throw InvalidHandle(std::string(operation) + ": the handle was released (closed)");
  }
  return p;
}

// The manager's reference to its Python sink object, for the cyclic GC (see common.hpp); the
// pool keeps its C++ sink when a cycle is broken, only the Python reference goes.
using ManagerGc = GcSlots<PyBlockManager, &PyBlockManager::event_sink>;

}  // namespace

void bind_blocks(nb::module_& m) {
  // ---- registry ----
  nb::class_<BlockRegistry>(
      m, "BlockRegistry",
      "The sequence-hash registry shared by the managers of every tier (a cheap handle: copies "
      "share one registry). Thread-safe.")
      .def(
          "__init__",
          [](BlockRegistry* self, std::optional<std::string> frequency_tracker) {
            new (self) BlockRegistry(build_registry(frequency_tracker));
          },
          nb::arg("frequency_tracker").none() = nb::none(),
          "frequency_tracker: None, \"small\", \"medium\" or \"large\" (a TinyLFU sketch; "
          "required by the multi-lru backend).")
      .def("is_registered", &BlockRegistry::is_registered, nb::arg("hash"),
           "True while a block of any tier holds `hash`, or a WeakBlock names it.")
      .def_prop_ro("registered_count", &BlockRegistry::registered_count,
                   "Number of registered hashes.")
      .def_prop_ro("has_frequency_tracking", &BlockRegistry::has_frequency_tracking,
                   "Whether a frequency tracker was configured.")
      .def("count", &BlockRegistry::count, nb::arg("hash"),
           "The tracker's usage estimate of `hash` (0 without a tracker).")
      .def("touch", &BlockRegistry::touch, nb::arg("hash"), "One touch of `hash` in the tracker.")
      .def(
          "check_presence",
          [](const BlockRegistry& r, nb::handle hashes, const std::string& tier) {
            const std::vector<SequenceHash> keys = hashes_of(hashes, "check_presence");
            if (tier == "G1") return r.check_presence<G1>(keys);
            if (tier == "G2") return r.check_presence<G2>(keys);
            if (tier == "G3") return r.check_presence<G3>(keys);
            throw ConfigError("tier must be \"G1\", \"G2\" or \"G3\", got \"" + tier + "\"");
          },
          nb::arg("hashes"), nb::arg("tier"),
          nb::sig("def check_presence(self, hashes: collections.abc.Sequence[SequenceHash], "
                  "tier: str) -> list[bool]"),
          "For each hash, whether a block of `tier` holds it.")
      .def(
          "__eq__", [](const BlockRegistry& a, const BlockRegistry& b) { return a == b; },
          nb::is_operator());

  // ---- handles ----
  nb::class_<PyMutableBlock> mutable_block(
      m, "MutableBlock",
      "An allocated, writable slot. Closing or collecting it returns the slot to the free list; "
      "complete()/stage() consume it.");
  mutable_block
      .def_prop_ro(
          "block_id",
          [](PyMutableBlock& b) {
            return visit_live(b.handle, "MutableBlock.block_id", [](auto& h) { return h.block_id(); });
          },
          "The slot's index in its pool.")
      .def_prop_ro(
          "block_size",
          [](PyMutableBlock& b) {
            return visit_live(b.handle, "MutableBlock.block_size",
                              [](auto& h) { return h.block_size(); });
          },
          "Tokens per block of the pool.")
      .def_prop_ro(
          "manager_id",
          [](PyMutableBlock& b) {
            return visit_live(b.handle, "MutableBlock.manager_id",
                              [](auto& h) { return h.manager_id().value(); });
          },
          "The owning manager's id.")
      .def(
          "complete",
          [](PyMutableBlock& b, const TokenBlock& block) {
            return visit_live(b.handle, "MutableBlock.complete", [&](auto& h) {
              auto staged = std::move(h).complete(block);  // throws with `h` untouched
              b.handle = std::monostate{};
              return wrap<PyCompleteBlock>(std::move(staged));
            });
          },
          nb::arg("token_block"), nb::sig("def complete(self, token_block: TokenBlock) -> CompleteBlock"),
          "Stages the block with the token block's sequence hash and consumes this handle. "
          "Raises BlockSizeMismatch (this handle untouched) if the sizes differ.")
      .def(
          "stage",
          [](PyMutableBlock& b, const SequenceHash& hash, std::size_t block_size) {
            return visit_live(b.handle, "MutableBlock.stage", [&](auto& h) {
              auto staged = std::move(h).stage(hash, block_size);
              b.handle = std::monostate{};
              return wrap<PyCompleteBlock>(std::move(staged));
            });
          },
          nb::arg("hash"), nb::arg("block_size"),
          nb::sig("def stage(self, hash: SequenceHash, block_size: int) -> CompleteBlock"),
          "Stages the block with an explicit hash; `block_size` is the number of tokens filled.")
      .def(
          "add_fence",
          [](PyMutableBlock& b, const Fence& f) {
            visit_live(b.handle, "MutableBlock.add_fence", [&](auto& h) { h.add_fence(f); });
          },
          nb::arg("fence"), "The slot is not handed out again until `fence` is ready.")
      .def("__repr__", [](PyMutableBlock& b) { return handle_repr("MutableBlock", b); });
  add_handle_protocol(mutable_block);
  detail::enable_fast_instances<PyMutableBlock>(mutable_block);

  nb::class_<PyCompleteBlock> complete_block(
      m, "CompleteBlock",
      "A staged slot with its sequence hash, ready for register_blocks. Closing or collecting it "
      "returns the slot to the free list.");
  complete_block
      .def_prop_ro(
          "block_id",
          [](PyCompleteBlock& b) {
            return visit_live(b.handle, "CompleteBlock.block_id", [](auto& h) { return h.block_id(); });
          },
          "The slot's index in its pool.")
      .def_prop_ro(
          "sequence_hash",
          [](PyCompleteBlock& b) {
            return visit_live(b.handle, "CompleteBlock.sequence_hash",
                              [](auto& h) { return h.sequence_hash(); });
          },
          "The hash it was staged with.")
      .def(
          "reset",
          [](PyCompleteBlock& b) {
            return visit_live(b.handle, "CompleteBlock.reset", [&](auto& h) {
              auto back = std::move(h).reset();
              b.handle = std::monostate{};
              return wrap<PyMutableBlock>(std::move(back));
            });
          },
          nb::sig("def reset(self) -> MutableBlock"),
          "Rolls the block back to a MutableBlock, consuming this handle.")
      .def(
          "add_fence",
          [](PyCompleteBlock& b, const Fence& f) {
            visit_live(b.handle, "CompleteBlock.add_fence", [&](auto& h) { h.add_fence(f); });
          },
          nb::arg("fence"), "The slot is not handed out again until `fence` is ready.")
      .def("__repr__", [](PyCompleteBlock& b) { return handle_repr("CompleteBlock", b); });
  add_handle_protocol(complete_block);
  detail::enable_fast_instances<PyCompleteBlock>(complete_block);

  nb::class_<PyImmutableBlock> immutable_block(
      m, "ImmutableBlock",
      "A registered, shareable slot (one strong reference). When the last reference (handles and "
      "pins) goes, a primary moves to the inactive pool (cached), a duplicate is freed.");
  immutable_block
      .def_prop_ro(
          "block_id",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.block_id", [](auto& h) { return h.block_id(); });
          },
          "The slot's index in its pool.")
      .def_prop_ro(
          "sequence_hash",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.sequence_hash",
                              [](auto& h) { return h.sequence_hash(); });
          },
          "The block's sequence hash.")
      .def_prop_ro(
          "manager_id",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.manager_id",
                              [](auto& h) { return h.manager_id().value(); });
          },
          "The owning manager's id.")
      .def_prop_ro(
          "use_count",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.use_count",
                              [](auto& h) { return h.use_count(); });
          },
          "Live strong references to the slot: handles, pins and duplicate keep-alives.")
      .def(
          "downgrade",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.downgrade",
                              [](auto& h) { return wrap<PyWeakBlock>(h.downgrade()); });
          },
          nb::sig("def downgrade(self) -> WeakBlock"), "A non-owning reference to this block.")
      .def(
          "pin",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.pin",
                              [](auto& h) { return PyLifecyclePin{h.pin()}; });
          },
          "A tier-erased keepalive of this slot (counted in use_count).")
      .def(
          "clone",
          [](PyImmutableBlock& b) {
            return visit_live(b.handle, "ImmutableBlock.clone", [](auto& h) {
              auto copy = h;
              return wrap<PyImmutableBlock>(std::move(copy));
            });
          },
          nb::sig("def clone(self) -> ImmutableBlock"),
          "Another strong reference to the same slot (its own handle to close).")
      .def(
          "set_evict_on_reset",
          [](PyImmutableBlock& b, bool value) {
            visit_live(b.handle, "ImmutableBlock.set_evict_on_reset",
                       [&](auto& h) { h.set_evict_on_reset(value); });
          },
          nb::arg("value"),
          "When True, the last release frees the slot instead of caching it.")
      .def(
          "add_fence",
          [](PyImmutableBlock& b, const Fence& f) {
            visit_live(b.handle, "ImmutableBlock.add_fence", [&](auto& h) { h.add_fence(f); });
          },
          nb::arg("fence"), "The slot is not handed out again until `fence` is ready.")
      .def("__repr__", [](PyImmutableBlock& b) { return handle_repr("ImmutableBlock", b); });
  add_handle_protocol(immutable_block);
  detail::enable_fast_instances<PyImmutableBlock>(immutable_block);

  nb::class_<PyWeakBlock> weak_block(
      m, "WeakBlock", "A non-owning reference: upgrade() revives the block if live or cached.");
  weak_block
      .def_prop_ro(
          "sequence_hash",
          [](PyWeakBlock& b) {
            return visit_live(b.handle, "WeakBlock.sequence_hash",
                              [](auto& h) { return h.sequence_hash(); });
          },
          "The named block's sequence hash.")
      .def(
          "upgrade",
          [](PyWeakBlock& b) -> nb::object {
            return visit_live(b.handle, "WeakBlock.upgrade", [](auto& h) -> nb::object {
              auto block = h.upgrade();
              if (!block) return nb::none();
              return wrap<PyImmutableBlock>(std::move(*block));
            });
          },
          nb::sig("def upgrade(self) -> ImmutableBlock | None"),
          "The live block, else the cached one revived, else None (evicted).")
      .def("__repr__", [](PyWeakBlock& b) {
        if (!is_live(b)) return std::string("WeakBlock(released)");
        return std::string("WeakBlock(") +
               visit_live(b.handle, "WeakBlock", [](auto& h) {
                 return "position=" + std::to_string(h.sequence_hash().position());
               }) +
               ")";
      });
  add_handle_protocol(weak_block);
  detail::enable_fast_instances<PyWeakBlock>(weak_block);

  nb::class_<PyLifecyclePin> pin(
      m, "LifecyclePin",
      "A keepalive naming one slot by (manager_id, block_id, sequence_hash), whatever its tier.");
  pin.def_prop_ro(
         "block_id",
         [](PyLifecyclePin& p) { return live_pin(p, "LifecyclePin.block_id").pin->block_id(); },
         "The slot's index in its pool.")
      .def_prop_ro(
          "sequence_hash",
          [](PyLifecyclePin& p) {
            return live_pin(p, "LifecyclePin.sequence_hash").pin->sequence_hash();
          },
          "The slot's sequence hash.")
      .def_prop_ro(
          "manager_id",
          [](PyLifecyclePin& p) {
            return live_pin(p, "LifecyclePin.manager_id").pin->manager_id().value();
          },
          "The owning manager's id.")
      .def_prop_ro(
          "use_count",
          [](PyLifecyclePin& p) { return live_pin(p, "LifecyclePin.use_count").pin->use_count(); },
          "Strong references to the slot.")
      .def(
          "add_fence",
          [](PyLifecyclePin& p, const Fence& f) {
            live_pin(p, "LifecyclePin.add_fence").pin->add_fence(f);
          },
          nb::arg("fence"), "The slot is not handed out again until `fence` is ready.")
      .def("__repr__", [](PyLifecyclePin& p) { return handle_repr("LifecyclePin", p); });
  add_handle_protocol(pin);

  nb::class_<PyBlockBatch> batch(
      m, "BlockBatch",
      "The ImmutableBlocks of one match_blocks_batch call, held in C++: one Python object for the "
      "whole batch, so no per-block object is made unless asked for. Indexing gives a new "
      "ImmutableBlock handle (another reference to the slot); release_blocks(batch) releases all "
      "under one pool lock.");
  batch
      .def("__len__",
           [](PyBlockBatch& b) -> std::size_t {
             if (b.handle.index() == 0) return 0;
             return visit_live(b.handle, "BlockBatch", [](auto& v) { return v.size(); });
           })
      .def(
          "__getitem__",
          [](PyBlockBatch& b, Py_ssize_t i) {
            return visit_live(b.handle, "BlockBatch.__getitem__", [&](auto& v) {
              const auto n = static_cast<Py_ssize_t>(v.size());
              if (i < 0) i += n;
              if (i < 0 || i >= n) throw nb::index_error("BlockBatch index out of range");
              auto copy = v[static_cast<std::size_t>(i)];
              return wrap<PyImmutableBlock>(std::move(copy));
            });
          },
          nb::arg("index"), nb::sig("def __getitem__(self, index: int) -> ImmutableBlock"),
          "A new ImmutableBlock handle on the block at `index`.")
      .def(
          "block_ids",
          [](PyBlockBatch& b) {
            return visit_live(b.handle, "BlockBatch.block_ids", [](auto& v) {
              std::vector<BlockId> ids;
              ids.reserve(v.size());
              for (const auto& block : v) ids.push_back(block.block_id());
              return ids;
            });
          },
          "The blocks' ids, in order.")
      .def(
          "sequence_hashes",
          [](PyBlockBatch& b) {
            return visit_live(b.handle, "BlockBatch.sequence_hashes", [](auto& v) {
              std::vector<SequenceHash> hashes;
              hashes.reserve(v.size());
              for (const auto& block : v) hashes.push_back(block.sequence_hash());
              return hashes;
            });
          },
          "The blocks' sequence hashes, in order.")
      .def("__repr__", [](PyBlockBatch& b) {
        if (b.handle.index() == 0) return std::string("BlockBatch(released)");
        return "BlockBatch(" +
               std::to_string(visit_live(b.handle, "BlockBatch", [](auto& v) { return v.size(); })) +
               " blocks)";
      });
  add_handle_protocol(batch);

  // ---- manager ----
  nb::class_<PyBlockManager>(
      m, "BlockManager",
      "One tier's fixed pool of KV block slots. Every method may be called from any thread; "
      "batch calls take the pool lock once and release the GIL.",
      nb::type_slots(ManagerGc::slots))
      .def("__init__", &init_manager, nb::arg("tier"), nb::arg("block_count"),
           nb::arg("block_size") = 16, nb::arg("registry").none() = nb::none(),
           nb::arg("backend") = "lineage", nb::arg("duplication") = "allow",
           nb::arg("reset_on_release") = false, nb::arg("event_sink").none() = nb::none(),
           nb::arg("event_policy") = "all", nb::arg("event_medium").none() = nb::none(),
           "tier: \"G1\", \"G2\" or \"G3\"; block_size: a power of two in 1..1024; registry: "
           "shared across tiers (None: a private one); backend: \"lineage\", \"lru\", \"fifo\" "
           "or \"multi-lru\"; duplication: \"allow\" or \"reject\"; event_sink: a KvEventSink "
           "the pool reports its KV events to (None: no events, no cost); event_policy: \"all\" "
           "or \"power-of-two\" (only blocks at positions 16, 32, ..., 65536); event_medium: the "
           "medium events name (None: \"GPU\", \"CPU\", \"DISK\" by tier; \"\": none). Bad "
           "arguments raise ConfigError (a ValueError) naming the problem.")
      .def(
          "allocate_blocks",
          [](PyBlockManager& self, std::size_t n) { return allocate_blocks(self, n, false); },
          nb::arg("n"),
          nb::sig("def allocate_blocks(self, n: int) -> list[MutableBlock] | None"),
          "All-or-nothing: n blocks (free list first, then evicting cached blocks), or None "
          "with nothing taken.")
      .def(
          "allocate_blocks_blocking",
          [](PyBlockManager& self, std::size_t n) { return allocate_blocks(self, n, true); },
          nb::arg("n"),
          nb::sig("def allocate_blocks_blocking(self, n: int) -> list[MutableBlock] | None"),
          "Like allocate_blocks, but waits (GIL released) for fenced slots; None only if the "
          "pool cannot hold n.")
      .def("register_blocks", &register_blocks, nb::arg("blocks"),
           nb::sig("def register_blocks(self, blocks: collections.abc.Sequence[CompleteBlock]) "
                   "-> list[ImmutableBlock]"),
           "Registers staged blocks (consuming their handles), results in input order. Raises "
           "ForeignBlock, consuming nothing, for a block of another manager.")
      .def("match_blocks", &match_blocks, nb::arg("hashes"),
           nb::sig("def match_blocks(self, hashes: collections.abc.Sequence[SequenceHash]) "
                   "-> list[ImmutableBlock]"),
           "The longest contiguous cached prefix of `hashes` (cached blocks are revived).")
      .def("scan_matches", &scan_matches, nb::arg("hashes"), nb::arg("touch") = true,
           nb::sig("def scan_matches(self, hashes: collections.abc.Sequence[SequenceHash], "
                   "touch: bool = True) -> dict[SequenceHash, ImmutableBlock]"),
           "Every hash independently (no stop at a miss); one entry per distinct hash found.")
      .def("match_blocks_batch", &match_blocks_batch, nb::arg("hashes"),
           nb::sig("def match_blocks_batch(self, hashes: collections.abc.Sequence[SequenceHash]) "
                   "-> BlockBatch"),
           "match_blocks, with the result kept in C++ as one BlockBatch (no per-block Python "
           "object): the fast path when the caller needs the count, ids or hashes.")
      .def("release_blocks", &release_batch, nb::arg("blocks"),
           "Releases every block of a BlockBatch under one pool lock.")
      .def("release_blocks", &release_blocks, nb::arg("blocks"),
           nb::sig("def release_blocks(self, blocks: collections.abc.Sequence[ImmutableBlock]) "
                   "-> None"),
           "Releases the handles under one pool lock, exactly as closing them in order. Raises "
           "ForeignBlock, releasing nothing, for a block of another manager.")
      .def(
          "reset_inactive_pool",
          [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) {
              nb::gil_scoped_release release;
              return mgr.reset_inactive_pool();
            });
          },
          "Evicts every cached block to the free list; returns how many.")
      .def(
          "check_invariants",
          [](PyBlockManager& self) {
            with_manager(self, [](auto& mgr) { mgr.check_invariants(); });
          },
          "Raises RuntimeError if the pool's bookkeeping is inconsistent (O(pool size)).")
      .def("metrics", &metrics, nb::sig("def metrics(self) -> dict[str, int]"), "The manager's metrics snapshot: the C++ field names.")
      .def_prop_ro(
          "id", [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) { return mgr.id().value(); });
          },
          "Process-unique id of the pool.")
      .def_prop_ro(
          "tier",
          [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) -> std::string {
              return tier_name<tier_of<decltype(mgr)>>();
            });
          },
          "\"G1\", \"G2\" or \"G3\".")
      .def_prop_ro(
          "total_blocks",
          [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) { return mgr.total_blocks(); });
          },
          "Number of slots.")
      .def_prop_ro(
          "available_blocks",
          [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) { return mgr.available_blocks(); });
          },
          "Free + inactive slots (fenced ones excluded), one consistent snapshot.")
      .def_prop_ro(
          "block_size",
          [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) { return mgr.block_size(); });
          },
          "Tokens per block.")
      .def_prop_ro(
          "registry",
          [](PyBlockManager& self) {
            return with_manager(self, [](auto& mgr) { return mgr.registry(); });
          },
          "The registry this manager uses.");
}

}  // namespace kvbm::python
