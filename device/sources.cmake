# libmqim-device sources, for any build system: paths relative to this file's
# directory. The top-level CMake uses them; a board's own build can include
# this file or copy the lists. Needs common/ too (common/sources.cmake).
set(MQIM_DEVICE_SOURCES
  src/mqtt_codec.c
  src/ram_outbox.c
  src/flash_outbox.c
  src/inflight.c
  src/session.c
  src/client.c
  src/file_transfer.c
  src/e2e.c
  src/client_e2e.c)
set(MQIM_DEVICE_INCLUDE_DIRS
  include)
