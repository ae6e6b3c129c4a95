# Cross toolchain for an RV32IMAC microcontroller, QEMU's `virt` machine
# (Debian's gcc-riscv64-unknown-elf, multilib rv32imac/ilp32, with
# picolibc-riscv64-unknown-elf).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv32)
set(CMAKE_C_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_ASM_COMPILER riscv64-unknown-elf-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
# ISA spec 2.2 keeps the CSR instructions in I (GCC 12 defaults to the
# 2019 spec, where they need _zicsr, which its multilib selection ignores).
set(MQIM_CPU_FLAGS "-march=rv32imac -mabi=ilp32 -misa-spec=2.2 -mcmodel=medany")
# picolibc's specs once: CMake passes the C flags to the link as well.
set(CMAKE_C_FLAGS_INIT "${MQIM_CPU_FLAGS} --specs=picolibc.specs -ffunction-sections -fdata-sections")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${MQIM_CPU_FLAGS} -Wl,--gc-sections")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
