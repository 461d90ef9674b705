# Cross-compiling for AArch64 Linux with Debian's g++-aarch64-linux-gnu; the built programs (the kernel
# tests) run under qemu-user, which CTest and gtest discovery call through CMAKE_CROSSCOMPILING_EMULATOR.
# No -cpu here: the QEMU_CPU environment variable chooses the emulated CPU (scripts/test-arm.sh runs
# cortex-a57, cortex-a76 and max), and with it the HWCAP bits that pick the kernel sets; unset, qemu
# emulates its default CPU, which has every extension it knows.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
