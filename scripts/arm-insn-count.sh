#!/usr/bin/env bash
# Static instruction counts per weight block of the AArch64 kernels, per kernel set (neon, neon+dotprod,
# neon+i8mm), from the disassembled objects of the cross build that scripts/test-arm.sh makes (built
# here if missing). Prints the Markdown table docs/kernels.md quotes. Needs binutils-aarch64-linux-gnu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${G3N_ARM_BUILD:-$root/build-arm}/armv8-a"
objs="$dir/CMakeFiles/g3n_kernels.dir/src/kernels"
if [ ! -f "$objs/vec_dot_neon_i8mm.cpp.o" ]; then
  cmake -S "$root" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-march=armv8-a" -DG3N_KERNEL_TESTS_ONLY=ON >/dev/null
  cmake --build "$dir" -j"${G3N_JOBS:-2}" --target g3n_kernels
fi
python3 "$root/scripts/arm-insn-count.py" "$objs/vec_dot_neon.cpp.o" "$objs/vec_dot_neon_dotprod.cpp.o" \
  "$objs/vec_dot_neon_i8mm.cpp.o"
