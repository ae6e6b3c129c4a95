# SPDX-License-Identifier: MIT
# The ESP-IDF component (idf_component.yml, Kconfig at the top of the tree):
# the top-level CMakeLists.txt includes this file instead of everything
# else when ESP-IDF builds it. NOT built in this repository (no ESP-IDF
# here); tests/package/check_integrations.cmake checks in `make test` that
# it compiles exactly the files of device/sources.cmake.
#
# Always: common/ and the device library. With CONFIG_MQIM_MBEDTLS_TLS /
# CONFIG_MQIM_MBEDTLS_CRYPTO: the mbedTLS ports (ESP-IDF's mbedtls
# component). Transport, clock, entropy, outbox and state come from the
# application (docs/device.md, "Porting to a new board"). Library options:
# compile definitions for every component, e.g.
#   idf_build_set_property(COMPILE_DEFINITIONS "MQIM_CFG_RX_BUFFER_SIZE=4096" APPEND)
# in the project's CMakeLists.txt, so the library and the application agree.
include(${CMAKE_CURRENT_LIST_DIR}/../device/sources.cmake)

set(mqim_idf_srcs ${MQIM_COMMON_SOURCES} ${MQIM_DEVICE_SOURCES})
set(mqim_idf_includes ${MQIM_COMMON_INCLUDE_DIRS} ${MQIM_DEVICE_INCLUDE_DIRS})
set(mqim_idf_requires)
if(CONFIG_MQIM_MBEDTLS_TLS)
  list(APPEND mqim_idf_srcs ${MQIM_PORT_MBEDTLS_TLS_SOURCES})
endif()
if(CONFIG_MQIM_MBEDTLS_CRYPTO)
  list(APPEND mqim_idf_srcs ${MQIM_PORT_MBEDTLS_CRYPTO_SOURCES})
endif()
if(CONFIG_MQIM_MBEDTLS_TLS OR CONFIG_MQIM_MBEDTLS_CRYPTO)
  list(APPEND mqim_idf_includes ${MQIM_PORT_MBEDTLS_INCLUDE_DIRS})
  list(APPEND mqim_idf_requires mbedtls)
endif()

idf_component_register(SRCS ${mqim_idf_srcs}
                       INCLUDE_DIRS ${mqim_idf_includes}
                       REQUIRES ${mqim_idf_requires})
