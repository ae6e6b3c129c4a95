# SPDX-License-Identifier: MIT
# libmqim-device sources, for any build system: absolute paths (this file's
# directory), so include() works from another project, an ESP-IDF component
# (../CMakeLists.txt) or a Zephyr module (../zephyr/CMakeLists.txt). Including
# this file also includes common/sources.cmake (MQIM_COMMON_*): the library
# needs both. To add a source: one line in the list it belongs to.
#
#   MQIM_DEVICE_SOURCES / _INCLUDE_DIRS      the portable library (no OS, no allocation)
#   MQIM_PORT_MBEDTLS_TLS_SOURCES            TLS over any lower transport (mbedTLS)
#   MQIM_PORT_MBEDTLS_CRYPTO_SOURCES         the E2E crypto port (mbedTLS)
#   MQIM_PORT_MBEDTLS_SOURCES / _INCLUDE_DIRS  both of the above
#   MQIM_PORT_POSIX_SOURCES / _INCLUDE_DIRS  Linux: TCP, clock, entropy, TLS transport,
#                                            LMDB outbox, state and E2E store (needs
#                                            the mbedTLS port, LMDB and mbedTLS)
# The Cortex-M4 board's port lives with the board (boards/qemu-mps2-an386/board.c):
# a board's port is part of its firmware, not of the library.
include(${CMAKE_CURRENT_LIST_DIR}/../common/sources.cmake)

set(MQIM_DEVICE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(MQIM_DEVICE_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/mqtt_codec.c
  ${CMAKE_CURRENT_LIST_DIR}/src/ram_outbox.c
  ${CMAKE_CURRENT_LIST_DIR}/src/flash_outbox.c
  ${CMAKE_CURRENT_LIST_DIR}/src/inflight.c
  ${CMAKE_CURRENT_LIST_DIR}/src/session.c
  ${CMAKE_CURRENT_LIST_DIR}/src/client.c
  ${CMAKE_CURRENT_LIST_DIR}/src/client_file.c
  ${CMAKE_CURRENT_LIST_DIR}/src/client_read.c
  ${CMAKE_CURRENT_LIST_DIR}/src/client_request.c
  ${CMAKE_CURRENT_LIST_DIR}/src/client_signal.c
  ${CMAKE_CURRENT_LIST_DIR}/src/file_transfer.c
  ${CMAKE_CURRENT_LIST_DIR}/src/e2e.c
  ${CMAKE_CURRENT_LIST_DIR}/src/client_e2e.c)
set(MQIM_DEVICE_INCLUDE_DIRS
  ${CMAKE_CURRENT_LIST_DIR}/include)

# Ports (one list per port).
set(MQIM_PORT_MBEDTLS_TLS_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/port/mbedtls/mqim_tls.c)
set(MQIM_PORT_MBEDTLS_CRYPTO_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/port/mbedtls/mqim_crypto.c)
set(MQIM_PORT_MBEDTLS_SOURCES
  ${MQIM_PORT_MBEDTLS_TLS_SOURCES}
  ${MQIM_PORT_MBEDTLS_CRYPTO_SOURCES})
set(MQIM_PORT_MBEDTLS_INCLUDE_DIRS
  ${CMAKE_CURRENT_LIST_DIR}/port/mbedtls)

set(MQIM_PORT_POSIX_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/port/posix/mqim_posix_tcp.c
  ${CMAKE_CURRENT_LIST_DIR}/port/posix/mqim_posix_tls.c
  ${CMAKE_CURRENT_LIST_DIR}/port/posix/mqim_posix_lmdb.c)
set(MQIM_PORT_POSIX_INCLUDE_DIRS
  ${CMAKE_CURRENT_LIST_DIR}/port/posix)
