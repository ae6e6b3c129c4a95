# SPDX-License-Identifier: MIT
# Sets MQIM_VERSION ("MAJOR.MINOR.PATCH") from common/include/mqim/version.h,
# the one place the version is written: project(VERSION ...) takes it from
# here, and with it the CMake package and the pkg-config file. Works in
# script mode too (scripts/check-integrations).
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/../common/include/mqim/version.h _mqim_version_lines
     REGEX "^#define MQIM_VERSION_(MAJOR|MINOR|PATCH) +[0-9]+$")
set(MQIM_VERSION)
foreach(_mqim_part MAJOR MINOR PATCH)
  set(_mqim_found)
  foreach(_mqim_line ${_mqim_version_lines})
    if(_mqim_line MATCHES "^#define MQIM_VERSION_${_mqim_part} +([0-9]+)$")
      set(_mqim_found ${CMAKE_MATCH_1})
    endif()
  endforeach()
  if(_mqim_found STREQUAL "")
    message(FATAL_ERROR "common/include/mqim/version.h: no MQIM_VERSION_${_mqim_part}")
  endif()
  list(APPEND MQIM_VERSION ${_mqim_found})
endforeach()
string(REPLACE ";" "." MQIM_VERSION "${MQIM_VERSION}")
