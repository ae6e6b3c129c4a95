/**
 * @file version.h
 * @brief The mqim release this source tree is.
 *
 * The one place the version is written: the top-level CMakeLists.txt reads
 * these three lines for `project(VERSION ...)` (cmake/mqim_version.cmake),
 * which puts it into the CMake package and the pkg-config file;
 * scripts/check-integrations checks idf_component.yml against it.
 * SPDX-License-Identifier: MIT
 */
#ifndef MQIM_VERSION_H
#define MQIM_VERSION_H

#define MQIM_VERSION_MAJOR 0
#define MQIM_VERSION_MINOR 1
#define MQIM_VERSION_PATCH 0

#define MQIM_VERSION_STR_(x) #x
#define MQIM_VERSION_XSTR_(x) MQIM_VERSION_STR_(x)
/** "MAJOR.MINOR.PATCH", e.g. "0.1.0". */
#define MQIM_VERSION_STRING                                                              \
    MQIM_VERSION_XSTR_(MQIM_VERSION_MAJOR) "." MQIM_VERSION_XSTR_(MQIM_VERSION_MINOR) "." \
        MQIM_VERSION_XSTR_(MQIM_VERSION_PATCH)
/** One number that orders releases: 0x00MMmmpp (0.1.0 is 0x000100). */
#define MQIM_VERSION_NUMBER \
    ((MQIM_VERSION_MAJOR << 16) | (MQIM_VERSION_MINOR << 8) | MQIM_VERSION_PATCH)

#endif /* MQIM_VERSION_H */
