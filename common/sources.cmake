# SPDX-License-Identifier: MIT
# common/ sources, for any build system: absolute paths (this file's
# directory), so include() works from another project, an ESP-IDF component
# or a Zephyr module. device/sources.cmake includes this file. To add a
# source: one line here.
set(MQIM_COMMON_DIR ${CMAKE_CURRENT_LIST_DIR})
set(MQIM_COMMON_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/src/status.c
  ${CMAKE_CURRENT_LIST_DIR}/src/name.c
  ${CMAKE_CURRENT_LIST_DIR}/src/utf8.c
  ${CMAKE_CURRENT_LIST_DIR}/src/topic.c
  ${CMAKE_CURRENT_LIST_DIR}/src/topic_parse.c
  ${CMAKE_CURRENT_LIST_DIR}/src/json_write.c
  ${CMAKE_CURRENT_LIST_DIR}/src/json_read.c
  ${CMAKE_CURRENT_LIST_DIR}/src/gateway_status.c
  ${CMAKE_CURRENT_LIST_DIR}/src/envelope.c
  ${CMAKE_CURRENT_LIST_DIR}/src/id.c
  ${CMAKE_CURRENT_LIST_DIR}/src/sha256.c
  ${CMAKE_CURRENT_LIST_DIR}/src/base64.c
  ${CMAKE_CURRENT_LIST_DIR}/src/file_meta.c)
set(MQIM_COMMON_INCLUDE_DIRS
  ${CMAKE_CURRENT_LIST_DIR}/include)
