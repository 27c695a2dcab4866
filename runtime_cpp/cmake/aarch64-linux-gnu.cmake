# Cross-build the runtime for 64-bit ARM Linux (Raspberry Pi 4/5, Jetson, any aarch64 board)
# with Debian's cross toolchain (apt-get install g++-aarch64-linux-gnu):
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=runtime_cpp/cmake/aarch64-linux-gnu.cmake \
#         -DEDGECV_TVM_LIB_DIR=<aarch64 runtime>/lib -DEDGECV_TVM_FFI_DIR=<aarch64 runtime>
# Built programs (the ctest suite included) run here under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(EDGECV_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the cross toolchain's programs")
set(CMAKE_C_COMPILER "${EDGECV_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${EDGECV_CROSS_PREFIX}g++")

# The target's system libraries; packages (find_package) may also come from an install prefix.
set(EDGECV_CROSS_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "aarch64 libraries and headers")
set(CMAKE_FIND_ROOT_PATH "${EDGECV_CROSS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

find_program(EDGECV_QEMU qemu-aarch64)
if(EDGECV_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${EDGECV_QEMU};-L;${EDGECV_CROSS_SYSROOT}")
endif()
