# ctest driver: install the build tree into a scratch prefix, then configure, build and run the
# consumer project against it with find_package(kvbm).
set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja
                        -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
                        "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${LINK_FLAGS}"
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
execute_process(COMMAND "${WORK_DIR}/build/consumer" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the consumer ran but failed: ${rc}")
endif()
if(EXISTS "${WORK_DIR}/build/consumer_cuda")
  execute_process(COMMAND "${WORK_DIR}/build/consumer_cuda" RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "the CUDA consumer ran but failed: ${rc}")
  endif()
  message(STATUS "consumer found, linked and ran kvbm::kvbm and kvbm::cuda")
else()
  message(STATUS "consumer found, linked and ran kvbm::kvbm (no kvbm::cuda installed)")
endif()
