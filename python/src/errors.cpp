// python/src/errors.cpp — kvbm's C++ exceptions as Python exceptions of the same names.
//
// The classes are defined in Python (python/kvbm/_errors.py: the hierarchy, with ValueError and
// RuntimeError bases where they fit). The translator reaches them through a payload allocated at
// import (never freed: the module cannot be unloaded), so nothing is global.
#include <Python.h>

#include <initializer_list>
#include <utility>

#include "common.hpp"
#include "kvbm/events/zmq_publisher.hpp"

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
  PyObject* schedule;
  PyObject* apply;
  PyObject* events;
};

/// The class `name` of kvbm._errors (pure Python, so type checkers and stubgen see real classes).
PyObject* error_class(nb::module_& errors, const char* name) {
  return nb::object(errors.attr(name)).release().ptr();  // kept for the process: the module is never unloaded
}

void raise(PyObject* type, const std::exception& e) { PyErr_SetString(type, e.what()); }

/// Raises `type(e.what())` with attributes set (the kinds are enums bound in sequences.cpp).
void raise_with(PyObject* type, const std::exception& e,
                std::initializer_list<std::pair<const char*, nb::object>> attrs) {
  PyObject* value = PyObject_CallFunction(type, "s", e.what());
  if (value == nullptr) return;  // the failed call left its own error set
  for (const auto& [name, attr] : attrs) PyObject_SetAttrString(value, name, attr.ptr());
  PyErr_SetObject(type, value);
  Py_DECREF(value);
}

}  // namespace

void bind_errors(nb::module_& m) {
  nb::module_ errors = nb::module_::import_("kvbm._errors");
  auto* types = new ErrorTypes{};
  types->base = error_class(errors, "KvbmError");
  types->config = error_class(errors, "ConfigError");
  types->block_size_mismatch = error_class(errors, "BlockSizeMismatch");
  types->invalid_handle = error_class(errors, "InvalidHandle");
  types->position_out_of_range = error_class(errors, "PositionOutOfRange");
  types->foreign_block = error_class(errors, "ForeignBlock");
  types->attachment = error_class(errors, "AttachmentError");
  types->cuda = error_class(errors, "CudaError");
  types->schedule = error_class(errors, "ScheduleError");
  types->apply = error_class(errors, "ApplyError");
  types->events = error_class(errors, "KvEventsError");
  (void)m;

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
        } catch (const ScheduleError& e) {
          raise_with(t.schedule, e, {{"kind", nb::cast(e.kind())}, {"needed", nb::int_(e.needed())}});
        } catch (const ApplyError& e) {
          raise_with(t.apply, e, {{"kind", nb::cast(e.kind())}});
        } catch (const KvEventsError& e) {
          raise(t.events, e);
        } catch (const Error& e) {
          raise(t.base, e);
        }
      },
      types);
}

}  // namespace kvbm::python
