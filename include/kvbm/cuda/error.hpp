// kvbm/cuda/error.hpp — CudaError and the KVBM_CUDA_TRY / KVBM_CUDA_ASSERT_OK macros.
//
// Every CUDA runtime error becomes a kvbm::CudaError carrying the call text, the error code, its
// name (cudaGetErrorName) and message (cudaGetErrorString) and the file:line. Destructors and
// noexcept paths use KVBM_CUDA_ASSERT_OK instead: they never throw (assert in debug builds,
// tolerating cudaErrorCudartUnloading at process exit).
// CUDA library only (includes cuda_runtime_api.h).
#pragma once

#include <cassert>
#include <string>

#include <cuda_runtime_api.h>

#include "kvbm/errors.hpp"

namespace kvbm {

class CudaError : public Error {
 public:
  CudaError(const char* call, cudaError_t code, const char* file, int line)
      : Error(std::string{"CUDA error at "} + file + ":" + std::to_string(line) + ": " + call +
              " returned " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) + ")"),
        call_{call},
        code_{code} {}

  [[nodiscard]] const std::string& call() const noexcept { return call_; }
  [[nodiscard]] cudaError_t code() const noexcept { return code_; }
  [[nodiscard]] const char* error_name() const noexcept { return cudaGetErrorName(code_); }
  [[nodiscard]] const char* error_message() const noexcept { return cudaGetErrorString(code_); }

 private:
  std::string call_;
  cudaError_t code_;
};

}  // namespace kvbm

/// Evaluates a CUDA runtime call; on failure clears the (non-sticky) error and throws CudaError.
#define KVBM_CUDA_TRY(call)                                                   \
  do {                                                                        \
    cudaError_t const kvbm_cuda_status_ = (call);                             \
    if (kvbm_cuda_status_ != cudaSuccess) {                                   \
      static_cast<void>(cudaGetLastError());                                  \
      throw ::kvbm::CudaError(#call, kvbm_cuda_status_, __FILE__, __LINE__);  \
    }                                                                         \
  } while (0)

/// For destructors and noexcept code: never throws; asserts success in debug builds.
#define KVBM_CUDA_ASSERT_OK(call)                                                       \
  do {                                                                                  \
    cudaError_t const kvbm_cuda_status_ = (call);                                       \
    assert(kvbm_cuda_status_ == cudaSuccess ||                                          \
           kvbm_cuda_status_ == cudaErrorCudartUnloading || !"CUDA call failed: " #call); \
    static_cast<void>(kvbm_cuda_status_);                                               \
  } while (0)
