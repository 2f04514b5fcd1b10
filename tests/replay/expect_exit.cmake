# Runs the kvbm-replay binary and checks its exact exit status (ctest's WILL_FAIL cannot tell 1
# from 2 or from CLI11's 105) and that stderr matches a pattern.
#   cmake -DEXE=... -DARGS="a;b" -DEXPECT=1 [-DSTDERR_REGEX=...] -P expect_exit.cmake
execute_process(COMMAND ${EXE} ${ARGS} RESULT_VARIABLE code OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT code STREQUAL EXPECT)
  message(FATAL_ERROR "kvbm-replay ${ARGS}: exit status ${code}, expected ${EXPECT}\n${err}")
endif()
if(DEFINED STDERR_REGEX AND NOT err MATCHES "${STDERR_REGEX}")
  message(FATAL_ERROR "kvbm-replay ${ARGS}: stderr does not match '${STDERR_REGEX}':\n${err}")
endif()
