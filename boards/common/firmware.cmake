# What every QEMU board's firmware shares: the test credentials as C,
# mbedTLS (2.28 or 3.6, whichever MBEDTLS_SRC holds) with
# mbedtls_config_fw.h, libmqim-device and common/ with the board's options
# (mqim_board_config.h in the board's directory), and mqim_add_firmware(),
# which links the common firmware_main.c with the board's own files.
# Included by a board's CMakeLists.txt after its toolchain is set.
#
#   -DMQIM_ROOT=<repo>               the mqim sources
#   -DMBEDTLS_SRC=<dir>              Debian's mbedTLS source (scripts/mbedtls-src DIR [2.28|3.6])
#   -DMQIM_FW_MATERIAL=<dir>         ca.crt and mcu.password (scripts/firmware-material)
#   -DMQIM_FW_USER / _DEVICE / _PEER names (mcu / qemu / linux)
set(MQIM_FW_USER "mcu" CACHE STRING "the firmware's mqim user")
set(MQIM_FW_DEVICE "qemu" CACHE STRING "its device name")
set(MQIM_FW_PEER "linux" CACHE STRING "the user it talks to")
if(NOT MQIM_ROOT OR NOT MBEDTLS_SRC OR NOT MQIM_FW_MATERIAL)
  message(FATAL_ERROR "set MQIM_ROOT, MBEDTLS_SRC and MQIM_FW_MATERIAL")
endif()
set(CMAKE_C_STANDARD 99)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(fw_common ${MQIM_ROOT}/boards/common)

# Credentials as C: the CA as a NUL-terminated byte array, names and the
# password as strings.
file(READ ${MQIM_FW_MATERIAL}/ca.crt ca_hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," ca_bytes "${ca_hex}")
file(READ ${MQIM_FW_MATERIAL}/${MQIM_FW_USER}.password fw_password)
string(STRIP "${fw_password}" fw_password)
file(WRITE ${CMAKE_BINARY_DIR}/gen/mqim_fw_credentials.h.new
  "/* Generated from ${MQIM_FW_MATERIAL}: test credentials, never a real device's. */\n"
  "#define FW_USER \"${MQIM_FW_USER}\"\n#define FW_DEVICE \"${MQIM_FW_DEVICE}\"\n"
  "#define FW_PEER \"${MQIM_FW_PEER}\"\n#define FW_PASSWORD \"${fw_password}\"\n"
  "#define FW_SERVER_NAME \"localhost\"\n"
  "static const unsigned char fw_ca_pem[] = { ${ca_bytes} 0x00 };\n")
configure_file(${CMAKE_BINARY_DIR}/gen/mqim_fw_credentials.h.new ${CMAKE_BINARY_DIR}/gen/mqim_fw_credentials.h COPYONLY)

# mbedTLS: every library source; the config leaves most of them empty and
# --gc-sections drops what is not called.
file(GLOB mbedtls_sources ${MBEDTLS_SRC}/library/*.c)
add_library(mbedtls_fw STATIC ${mbedtls_sources})
target_include_directories(mbedtls_fw PUBLIC ${MBEDTLS_SRC}/include ${fw_common})
target_compile_definitions(mbedtls_fw PUBLIC MBEDTLS_CONFIG_FILE="mbedtls_config_fw.h")
target_compile_options(mbedtls_fw PRIVATE -Os -w)

# libmqim-device and common/, from their source lists (absolute paths;
# device/sources.cmake includes common's), with this board's options; the
# TLS port on top.
include(${MQIM_ROOT}/device/sources.cmake)
add_library(mqim_fw STATIC ${MQIM_COMMON_SOURCES} ${MQIM_DEVICE_SOURCES} ${MQIM_PORT_MBEDTLS_TLS_SOURCES})
target_include_directories(mqim_fw PUBLIC ${MQIM_COMMON_INCLUDE_DIRS} ${MQIM_DEVICE_INCLUDE_DIRS}
                           ${MQIM_PORT_MBEDTLS_INCLUDE_DIRS} ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(mqim_fw PUBLIC MQIM_DEVICE_CONFIG_FILE="mqim_board_config.h")
target_compile_options(mqim_fw PRIVATE -Os -Wall -Wextra -Werror)
target_link_libraries(mqim_fw PUBLIC mbedtls_fw)

# mqim_add_firmware(<elf> <board name> <linker script> <board sources>...)
function(mqim_add_firmware elf board_name linker_script)
  string(REGEX REPLACE "\\.elf$" "" base ${elf})
  add_executable(${elf} ${fw_common}/firmware_main.c ${fw_common}/ram_state.c ${ARGN})
  target_include_directories(${elf} PRIVATE ${CMAKE_BINARY_DIR}/gen ${fw_common} ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(${elf} PRIVATE FW_BOARD_NAME="${board_name}")
  target_compile_options(${elf} PRIVATE -Os -Wall -Wextra -Werror)
  target_link_libraries(${elf} PRIVATE mqim_fw)
  target_link_options(${elf} PRIVATE -T${linker_script} -nostartfiles
                      -Wl,-Map=${CMAKE_BINARY_DIR}/${base}.map -Wl,--print-memory-usage)
endfunction()
