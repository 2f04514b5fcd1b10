// python/src/fast_instances.hpp — the block handles' Python objects, made without nanobind's
// per-instance bookkeeping.
//
// Why: a batch call of 32 blocks returns 32 handle objects. nanobind's generic instance path
// (nb::inst_alloc) enters every new object in its C++-pointer -> Python-object table and takes
// it out again on deallocation; that table lets nanobind return the existing Python object when
// C++ hands out a reference to a bound object. The block handles never need it: they are only
// ever created here, owned by their Python object, and never returned to Python by C++
// reference (`__enter__` returns its own argument). Measured with bench/python_overhead.py, the
// two table updates were about a third of the per-block cost of match_blocks(32).
//
// How: an object is laid out exactly as nanobind lays out an instance with internal storage
// (the header below, then the wrapper), marked ready, so every nanobind binding reads it as a
// normal instance. Its type's tp_dealloc is replaced by fast_dealloc, which destroys the
// wrapper and frees the memory, or hands an object nanobind made itself (e.g. through
// `Type.__new__(Type)`: it carries no marker) to nanobind's own deallocator. Deallocated
// objects' memory is kept on a small per-type free list (the GIL guards it) for the next batch.
// The header mirrors nanobind 2.9's nb_inst (src/nb_internals.h); the static_assert below
// forces a recheck when the pinned nanobind changes.
// Thread safety: create/dealloc run with the GIL held (Python object lifetimes always do).
#pragma once

#include <nanobind/nanobind.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <utility>

namespace kvbm::python::detail {

namespace nb = nanobind;

static_assert(NB_VERSION_MAJOR == 2 && NB_VERSION_MINOR == 9,
              "fast_instances.hpp mirrors nanobind 2.9's instance header (nb_inst in "
              "src/nb_internals.h): recheck it against the new nanobind, then update this check");
#if defined(Py_GIL_DISABLED)
#error "fast_instances.hpp relies on the GIL to guard its free lists"
#endif

/// nanobind 2.9's nb_inst, field for field.
struct InstHeader {
  PyObject_HEAD
  std::int32_t offset;
  std::uint32_t state : 2;
  std::uint32_t direct : 1;
  std::uint32_t internal : 1;
  std::uint32_t destruct : 1;
  std::uint32_t cpp_delete : 1;
  std::uint32_t clear_keep_alive : 1;
  std::uint32_t intrusive : 1;
  std::uint32_t unused : 24;
};
static_assert(sizeof(InstHeader) == sizeof(PyObject) + 2 * sizeof(std::uint32_t));

/// nanobind's nb_inst::state_ready.
inline constexpr std::uint32_t kStateReady = 2;
/// Written into the header's unused bits: "made by make_instance" (nanobind writes 0 there).
inline constexpr std::uint32_t kMarker = 0x6b7662;  // "kvb"
/// At most this many freed objects are kept per type (about 200 KiB at 48 bytes each): enough
/// that a step which drops the handles of a few thousand blocks feeds the next step's batch
/// calls without the allocator (bench/python_overhead.py keeps 64 x 32 handles alive at once).
inline constexpr std::size_t kFreeListCap = 4096;

/// Whether freed objects are recycled: not under the sanitizers (so they see every use after
/// free) nor in CPython debug builds (whose reference accounting PyObject_Init does).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(Py_REF_DEBUG) || \
    defined(Py_TRACE_REFS)
inline constexpr bool kReuse = false;
#else
inline constexpr bool kReuse = true;
#endif

template <class Wrapper>
constexpr std::int32_t payload_offset() noexcept {
  constexpr std::size_t align = alignof(Wrapper);
  return static_cast<std::int32_t>((sizeof(InstHeader) + align - 1) / align * align);
}

/// Per-wrapper-type state, set once by enable_fast_instances.
template <class Wrapper>
struct FastType {
  static inline PyTypeObject* type = nullptr;
  static inline destructor nanobind_dealloc = nullptr;
  // Freed objects of this exact type, their headers still set (only the refcount changes).
  static inline PyObject* free_list[kFreeListCap];
  static inline std::size_t free_count = 0;
};

template <class Wrapper>
void fast_dealloc(PyObject* self) noexcept {
  auto* inst = reinterpret_cast<InstHeader*>(self);
  if (inst->unused != kMarker || inst->offset != payload_offset<Wrapper>()) {
    FastType<Wrapper>::nanobind_dealloc(self);  // an instance nanobind made itself
    return;
  }
  PyTypeObject* type = Py_TYPE(self);
  std::launder(reinterpret_cast<Wrapper*>(reinterpret_cast<char*>(self) + inst->offset))
      ->~Wrapper();
  using F = FastType<Wrapper>;
  if (kReuse && type == F::type && F::free_count < kFreeListCap) {
    F::free_list[F::free_count++] = self;
  } else {
    PyObject_Free(self);
  }
  Py_DECREF(type);
}

/// Installs fast_dealloc on `cls`'s type. Call once, right after binding the class.
template <class Wrapper>
void enable_fast_instances(nb::handle cls) {
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  if (PyType_HasFeature(type, Py_TPFLAGS_HAVE_GC) ||
      type->tp_basicsize < payload_offset<Wrapper>() + static_cast<Py_ssize_t>(sizeof(Wrapper))) {
    throw std::logic_error("enable_fast_instances: unexpected nanobind instance layout");
  }
  FastType<Wrapper>::type = type;
  FastType<Wrapper>::nanobind_dealloc = type->tp_dealloc;
  type->tp_dealloc = &fast_dealloc<Wrapper>;
  PyType_Modified(type);
}

/// The C++ object inside any nanobind instance `self` of a bound type (what nb::inst_ptr
/// returns), read inline: batch calls do this once per input item.
template <class T>
T* payload(PyObject* self) noexcept {
  auto* inst = reinterpret_cast<InstHeader*>(self);
  char* at = reinterpret_cast<char*>(self) + inst->offset;
  return std::launder(reinterpret_cast<T*>(inst->direct ? at : *reinterpret_cast<char**>(at)));
}

/// nb::type<T>() looked up once (T must be bound before the first call).
template <class T>
PyTypeObject* bound_type() {
  static PyTypeObject* const type = reinterpret_cast<PyTypeObject*>(nb::type<T>().ptr());
  return type;
}

/// A new Python object owning `Wrapper{args...}`. Requires the GIL and enable_fast_instances.
template <class Wrapper, class... Args>
nb::object make_instance(Args&&... args) {
  using F = FastType<Wrapper>;
  PyTypeObject* type = F::type;
  constexpr std::int32_t offset = payload_offset<Wrapper>();
  if (F::free_count > 0) {
    // A recycled object: header intact from its first use; the type reference it gave up in
    // fast_dealloc is taken again.
    PyObject* self = F::free_list[F::free_count - 1];
    new (reinterpret_cast<char*>(self) + offset) Wrapper{std::forward<Args>(args)...};
    --F::free_count;
    Py_INCREF(type);
    Py_SET_REFCNT(self, 1);
    return nb::steal(self);
  }
  void* memory = PyObject_Malloc(static_cast<std::size_t>(type->tp_basicsize));
  if (memory == nullptr) throw std::bad_alloc();
  auto* inst = static_cast<InstHeader*>(memory);
  try {
    new (static_cast<char*>(memory) + offset) Wrapper{std::forward<Args>(args)...};
  } catch (...) {
    PyObject_Free(memory);
    throw;
  }
#if defined(Py_REF_DEBUG) || defined(Py_TRACE_REFS)
  PyObject* self = PyObject_Init(reinterpret_cast<PyObject*>(inst), type);  // increfs the type
#else
  // PyObject_Init's work for a heap type, inline (two calls per object otherwise).
  PyObject* self = reinterpret_cast<PyObject*>(inst);
  Py_SET_TYPE(self, type);
  Py_INCREF(type);
  Py_SET_REFCNT(self, 1);
#endif
  inst->offset = offset;
  inst->state = kStateReady;
  inst->direct = 1;
  inst->internal = 1;
  inst->destruct = 1;
  inst->cpp_delete = 0;
  inst->clear_keep_alive = 0;
  inst->intrusive = 0;
  inst->unused = kMarker;
  return nb::steal(self);
}

}  // namespace kvbm::python::detail
