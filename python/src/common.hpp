// python/src/common.hpp — what the binding files share: tier-erased handle wrappers and helpers.
//
// Python has one MutableBlock/CompleteBlock/ImmutableBlock/WeakBlock class for every tier, so
// each wrapper holds a variant over the C++ handles of the three shipped tiers; std::monostate
// means "released" (closed, consumed by a transition or a batch call), and any use of it throws
// kvbm::InvalidHandle. A wrapper's lifetime is its Python object's: dealloc destroys the C++
// handle, which returns the slot exactly as dropping it in C++ does.
// Thread safety: wrappers are touched only with the GIL held; the C++ calls that may wait (pool
// mutex under contention, fences) run with the GIL released on C++-owned data only.
// Each API area binds itself in its own file (bind_* below), called once from module.cpp.
#pragma once

#include <nanobind/nanobind.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "kvbm/kv_events.hpp"
#include "kvbm/kvbm.hpp"

namespace kvbm::python {

namespace nb = nanobind;

template <template <class> class Handle>
using ByTier = std::variant<std::monostate, Handle<G1>, Handle<G2>, Handle<G3>>;

template <class Tier>
constexpr const char* tier_name() noexcept {
  if constexpr (std::is_same_v<Tier, G1>) return "G1";
  else if constexpr (std::is_same_v<Tier, G2>) return "G2";
  else return "G3";
}

/// Calls f on the live C++ handle; throws InvalidHandle naming `operation` when released.
template <class Variant, class F>
auto visit_live(Variant& v, const char* operation, F&& f) {
  switch (v.index()) {
    case 1: return f(std::get<1>(v));
    case 2: return f(std::get<2>(v));
    case 3: return f(std::get<3>(v));
    default:
      throw InvalidHandle(std::string(operation) +
                          ": the handle was released (closed, consumed, or passed to a batch call)");
  }
}

struct PyMutableBlock {
  ByTier<MutableBlock> handle;
};
struct PyCompleteBlock {
  ByTier<CompleteBlock> handle;
};
struct PyImmutableBlock {
  ByTier<ImmutableBlock> handle;
};
struct PyWeakBlock {
  ByTier<WeakBlock> handle;
};
struct PyLifecyclePin {
  std::optional<LifecyclePinRef> pin;
};
template <class Tier>
using ImmutableBlocks = std::vector<ImmutableBlock<Tier>>;
/// The result of a batch call kept in C++: one Python object for the whole batch.
struct PyBlockBatch {
  ByTier<ImmutableBlocks> handle;
};

/// Python's KvEventSink (events.cpp): the C++ sink, shared with every manager reporting to it.
struct PyEventSink {
  std::shared_ptr<KvEventSink> sink;
};

/// Python's BlockManager: one manager of any shipped tier (index 0/1/2 = G1/G2/G3, which is the
/// handle variants' index minus one). `event_sink` is the Python sink object it reports to (or
/// unset): held and shown to the cyclic GC (tp_traverse), so a callback that refers back to the
/// manager or to its own module is collectable (events.cpp).
struct PyBlockManager {
  std::variant<BlockManager<G1>, BlockManager<G2>, BlockManager<G3>> manager;
  nb::object event_sink;
};

/// tp_traverse / tp_clear for a wrapper type T whose one Python reference is the nb::object
/// `Member` (a manager's sink object, a batching sink's downstream): shown to the cyclic GC, and
/// dropped when it breaks a cycle. Pass `GcSlots<T, &T::member>::slots` to nb::type_slots.
template <class T, nb::object T::*Member>
struct GcSlots {
  static int traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    if (!nb::inst_ready(self)) return 0;
    Py_VISIT((nb::inst_ptr<T>(self)->*Member).ptr());
    return 0;
  }
  static int clear(PyObject* self) {
    (nb::inst_ptr<T>(self)->*Member).reset();
    return 0;
  }
  static inline PyType_Slot slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(traverse)},
                                       {Py_tp_clear, reinterpret_cast<void*>(clear)},
                                       {0, nullptr}};
};

void bind_errors(nb::module_& m);
void bind_tokens(nb::module_& m);
void bind_device(nb::module_& m);
void bind_blocks(nb::module_& m);
void bind_bench_support(nb::module_& m);
void bind_sequences(nb::module_& m);
void bind_events(nb::module_& m);

}  // namespace kvbm::python
