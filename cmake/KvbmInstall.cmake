# Install rules: `cmake --install` exports kvbm::kvbm for find_package(kvbm).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS kvbm EXPORT kvbmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/kvbm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT kvbmTargets NAMESPACE kvbm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
configure_package_config_file(cmake/kvbmConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/kvbmConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/kvbmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kvbmConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/kvbmConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kvbm)
