# Install rules: `cmake --install` exports kvbm::core, kvbm::device, kvbm::host (when built) and the
# umbrella kvbm::kvbm for find_package(kvbm), and kvbm::cuda (the
# CUDA backend) when this build has it. kvbm::cuda lives in its own export set, so an install
# without it stays valid; kvbmConfig.cmake loads it (after finding CUDAToolkit, whose CUDA::cudart
# and CUDA::nvtx3 it links) only when it was exported. Consumers may ask for it explicitly with
# find_package(kvbm COMPONENTS cuda).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KVBM_INSTALLED_TARGETS kvbm kvbm_core kvbm_device)
if(TARGET kvbm_host)
  list(APPEND KVBM_INSTALLED_TARGETS kvbm_host)
endif()
# kvbm::events (the ZeroMQ publisher) when this build has it; kvbmConfig.cmake then finds libzmq.
set(KVBM_EXPORT_EVENTS OFF)
if(TARGET kvbm_events)
  set(KVBM_EXPORT_EVENTS ON)
  list(APPEND KVBM_INSTALLED_TARGETS kvbm_events)
endif()
install(TARGETS ${KVBM_INSTALLED_TARGETS} EXPORT kvbmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/kvbm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT kvbmTargets NAMESPACE kvbm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)

# kvbm_cuda exports as kvbm::cuda (its ALIAS name), not kvbm::kvbm_cuda.
set(KVBM_EXPORT_CUDA OFF)
if(TARGET kvbm_cuda)
  set(KVBM_EXPORT_CUDA ON)
  set_target_properties(kvbm_cuda PROPERTIES EXPORT_NAME cuda)
  install(TARGETS kvbm_cuda EXPORT kvbmCudaTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT kvbmCudaTargets NAMESPACE kvbm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
endif()

configure_package_config_file(cmake/kvbmConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/kvbmConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/kvbmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kvbmConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/kvbmConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
