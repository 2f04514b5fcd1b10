# Third-party dependencies, all from Debian packages (scripts/install-deps.sh installs them) or the
# CUDA toolkit. The logical core needs only abseil and xxHash; everything from the toolkit is
# optional for it, so a machine without CUDA can still build kvbm::core and kvbm::device.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)

# The toolkit, when present, provides NVTX3 and CCCL (Thrust). Quiet: absence is a supported
# configuration (CMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON forces it, as CI's core-only step does).
find_package(CUDAToolkit QUIET)

# NVTX3 is header-only: ranges are compiled in when its headers are found (from the toolkit or
# anywhere on the include path), and compiled out otherwise (kvbm/nvtx.hpp's macros expand to
# nothing, so call sites never change). kvbm_nvtx carries the define and the include path.
add_library(kvbm_nvtx INTERFACE)
set(KVBM_NVTX_FOUND OFF)
if(KVBM_NVTX)
  find_path(KVBM_NVTX3_INCLUDE_DIR NAMES nvtx3/nvtx3.hpp HINTS ${CUDAToolkit_INCLUDE_DIRS})
  if(KVBM_NVTX3_INCLUDE_DIR)
    set(KVBM_NVTX_FOUND ON)
    target_include_directories(kvbm_nvtx SYSTEM INTERFACE ${KVBM_NVTX3_INCLUDE_DIR})
    target_compile_definitions(kvbm_nvtx INTERFACE KVBM_NVTX_ENABLED)
    target_link_libraries(kvbm_nvtx INTERFACE ${CMAKE_DL_LIBS})
  endif()
endif()
message(STATUS "kvbm: NVTX ranges ${KVBM_NVTX_FOUND}")

# CCCL (Thrust) for the host backend's table kernels built for THRUST_DEVICE_SYSTEM_CPP. It ships
# with the toolkit under include/cccl; a standalone CCCL on the include path works too.
find_path(KVBM_CCCL_INCLUDE_DIR NAMES thrust/version.h
          HINTS ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES cccl)
if(KVBM_CCCL_INCLUDE_DIR)
  set(KVBM_HAS_CCCL ON)
else()
  set(KVBM_HAS_CCCL OFF)
endif()
message(STATUS "kvbm: host backend (needs CCCL) ${KVBM_HAS_CCCL}")

# Layering checks: a shared library made of one target's whole archive plus only its declared
# dependencies, linked with --no-undefined, fails the build when that target reaches into a layer
# it does not depend on (static archives alone would defer the error to some final link).
# Sanitizer runtimes live in executables, so the check runs only in plain builds.
function(kvbm_layering_check target)
  if(KVBM_SANITIZE)
    return()
  endif()
  set(stub "${PROJECT_BINARY_DIR}/kvbm_layering_stub.cpp")
  if(NOT EXISTS "${stub}")
    file(WRITE "${stub}" "// Empty: the layering checks link whole archives only.\n")
  endif()
  add_library(${target}_layering_check SHARED "${stub}")
  target_link_libraries(${target}_layering_check PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,${target}>")
  target_link_options(${target}_layering_check PRIVATE -Wl,--no-undefined)
endfunction()
