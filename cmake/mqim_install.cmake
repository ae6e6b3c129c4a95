# SPDX-License-Identifier: MIT
# What `cmake --install` puts under the prefix, besides the executables
# (mqim-gateway, mqim: installed by their own directories):
#
#   lib/libmqim_common.a, libmqim_device.a      the portable libraries (default options)
#   lib/libmqim_device_host.a, libmqim_device_posix.a   where the POSIX port is built
#   include/mqim/*.h                            the public headers of common/ and device/
#   include/mqim/posix/, include/mqim/mbedtls/  the port headers (flat includes, as in the tree)
#   lib/cmake/mqim/                             find_package(mqim CONFIG COMPONENTS device)
#   lib/pkgconfig/mqim-device.pc, mqim-device-posix.pc
#   share/doc/mqim/LICENSE, CHANGELOG.md
include(CMakePackageConfigHelpers)

set(mqim_install_targets mqim_common mqim_device)
if(TARGET mqim_device_posix)
  list(APPEND mqim_install_targets mqim_device_host mqim_device_posix)
endif()
install(TARGETS ${mqim_install_targets} EXPORT mqimTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/common/include/mqim ${PROJECT_SOURCE_DIR}/device/include/mqim
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
if(TARGET mqim_device_posix)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/device/port/posix/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mqim/posix
          FILES_MATCHING PATTERN "*.h")
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/device/port/mbedtls/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/mqim/mbedtls
          FILES_MATCHING PATTERN "*.h")
endif()

# The CMake package.
set(mqim_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/mqim)
install(EXPORT mqimTargets NAMESPACE mqim:: DESTINATION ${mqim_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/mqimConfig.cmake.in
  ${PROJECT_BINARY_DIR}/package/mqimConfig.cmake INSTALL_DESTINATION ${mqim_cmake_dir})
# 0.x: a minor release may break the API, so only the same minor matches.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/package/mqimConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/package/mqimConfig.cmake ${PROJECT_BINARY_DIR}/package/mqimConfigVersion.cmake
        DESTINATION ${mqim_cmake_dir})

# pkg-config: prefix relative to the .pc file, so the tree can be moved.
set(mqim_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH mqim_pc_to_prefix /prefix/${mqim_pc_dir} /prefix)
string(REGEX REPLACE "/$" "" mqim_pc_to_prefix "${mqim_pc_to_prefix}")
set(mqim_pc_files mqim-device)
if(TARGET mqim_device_posix)
  list(APPEND mqim_pc_files mqim-device-posix)
endif()
foreach(pc ${mqim_pc_files})
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${PROJECT_BINARY_DIR}/package/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/package/${pc}.pc DESTINATION ${mqim_pc_dir})
endforeach()

install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/CHANGELOG.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
