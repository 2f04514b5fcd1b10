// python/src/errors.cpp — kvbm's C++ exceptions as Python exceptions of the same names.
//
// KvbmError (Exception) is the base of all; errors about bad arguments also derive from
// ValueError so generic callers can catch them as such, CudaError from RuntimeError.
// The classes live in the module's namespace; the translator reaches them through a payload
// allocated at import (never freed: the module cannot be unloaded), so nothing is global.
#include <Python.h>

#include "common.hpp"

#if __has_include("kvbm/cuda/error.hpp") && defined(KVBM_PYTHON_CUDA)
#include "kvbm/cuda/error.hpp"
#endif

namespace kvbm::python {
namespace {

struct ErrorTypes {
  PyObject* base;
  PyObject* config;
  PyObject* block_size_mismatch;
  PyObject* invalid_handle;
  PyObject* position_out_of_range;
  PyObject* foreign_block;
  PyObject* attachment;
  PyObject* cuda;
};

PyObject* make_error(nb::module_& m, const char* name, std::initializer_list<PyObject*> bases,
                     const char* doc) {
  nb::object tuple = nb::steal(PyTuple_New(static_cast<Py_ssize_t>(bases.size())));
  Py_ssize_t i = 0;
  for (PyObject* base : bases) {
    Py_INCREF(base);
    PyTuple_SET_ITEM(tuple.ptr(), i++, base);
  }
  const std::string qualified = std::string("kvbm.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, tuple.ptr(), nullptr);
  if (type == nullptr) throw nb::python_error();
  m.attr(name) = nb::handle(type);  // the module holds a reference; `type` stays ours
  return type;
}

void raise(PyObject* type, const std::exception& e) { PyErr_SetString(type, e.what()); }

}  // namespace

void bind_errors(nb::module_& m) {
  auto* types = new ErrorTypes{};
  types->base = make_error(m, "KvbmError", {PyExc_Exception}, "Base of every error kvbm raises.");
  types->config = make_error(m, "ConfigError", {types->base, PyExc_ValueError},
                             "Invalid configuration; the message names the offending setting.");
  types->block_size_mismatch = make_error(
      m, "BlockSizeMismatch", {types->base, PyExc_ValueError},
      "A block was completed or staged with a size other than its pool's (attributes `expected`, "
      "`actual`); the block is untouched and still the caller's.");
  types->invalid_handle = make_error(
      m, "InvalidHandle", {types->base},
      "A handle was used after it was released (closed, consumed by a transition or a batch "
      "call): it names no slot.");
  types->position_out_of_range =
      make_error(m, "PositionOutOfRange", {types->base, PyExc_ValueError},
                 "A sequence-hash position outside the representable range (>= 2**24).");
  types->foreign_block = make_error(
      m, "ForeignBlock", {types->base, PyExc_ValueError},
      "A block handed to a manager that does not own it; nothing was consumed.");
  types->attachment = make_error(m, "AttachmentError", {types->base},
                                 "A registry attachment was used in two incompatible modes.");
  types->cuda = make_error(m, "CudaError", {types->base, PyExc_RuntimeError},
                           "A CUDA runtime call failed (only raised by builds with CUDA).");

  nb::register_exception_translator(
      [](const std::exception_ptr& p, void* payload) {
        const auto& t = *static_cast<const ErrorTypes*>(payload);
        try {
          std::rethrow_exception(p);
        } catch (const BlockSizeMismatch& e) {
          PyObject* value = PyObject_CallFunction(t.block_size_mismatch, "s", e.what());
          if (value == nullptr) return;  // the failed call left its own error set
          PyObject_SetAttrString(value, "expected", nb::int_(e.expected()).ptr());
          PyObject_SetAttrString(value, "actual", nb::int_(e.actual()).ptr());
          PyErr_SetObject(t.block_size_mismatch, value);
          Py_DECREF(value);
        } catch (const ConfigError& e) {
          raise(t.config, e);
        } catch (const InvalidHandle& e) {
          raise(t.invalid_handle, e);
        } catch (const PositionOutOfRange& e) {
          raise(t.position_out_of_range, e);
        } catch (const ForeignBlock& e) {
          raise(t.foreign_block, e);
        } catch (const AttachmentError& e) {
          raise(t.attachment, e);
#if defined(KVBM_PYTHON_CUDA)
        } catch (const CudaError& e) {
          raise(t.cuda, e);
#endif
        } catch (const Error& e) {
          raise(t.base, e);
        }
      },
      types);
}

}  // namespace kvbm::python
