# Installs the library, its headers and a package config for find_package(amorsize).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS amorsize_core amorsize EXPORT amorsizeTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/amorsize DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(AMORSIZE_BUILD_RUNNER)
  install(TARGETS amorsize_runner EXPORT amorsizeTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(TARGETS amorsize-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(AMORSIZE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/amorsize)
install(EXPORT amorsizeTargets NAMESPACE amorsize:: DESTINATION ${AMORSIZE_CMAKE_DIR})
configure_package_config_file(cmake/amorsizeConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/amorsizeConfig.cmake INSTALL_DESTINATION ${AMORSIZE_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/amorsizeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/amorsizeConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/amorsizeConfigVersion.cmake
        DESTINATION ${AMORSIZE_CMAKE_DIR})
