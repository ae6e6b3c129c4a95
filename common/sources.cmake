# common/ sources, for any build system: paths relative to this file's
# directory (device/sources.cmake has the device library's).
set(MQIM_COMMON_SOURCES
  src/status.c
  src/name.c
  src/utf8.c
  src/topic.c
  src/json_write.c
  src/json_read.c
  src/envelope.c
  src/id.c
  src/sha256.c
  src/base64.c
  src/file_meta.c)
set(MQIM_COMMON_INCLUDE_DIRS
  include)
