#!/usr/bin/env bash
# Cross-builds the kernel libraries and their tests for AArch64 and runs them under qemu-user: the NEON
# kernels are held to their scalar twins on an ARM instruction set this x86 machine cannot run itself.
# Twice: plain ARMv8-A (widening multiplies) and ARMv8.2-A with the dot-product extension (SDOT).
# Needs g++-aarch64-linux-gnu and qemu-user (scripts/install-deps.sh --with-arm-tests installs both);
# the toolchain file cmake/aarch64-linux-gnu.cmake names them and runs the tests through qemu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${G3N_ARM_BUILD:-$root/build-arm}"
command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null || {
  echo "test-arm: needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
  exit 1
}
jobs="${G3N_JOBS:-2}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
for arch in armv8-a armv8.2-a+dotprod; do
  dir="$out/$arch"
  cmake -S "$root" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-march=$arch" -DG3N_KERNEL_TESTS_ONLY=ON \
    "${launcher[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs" --target g3n_kernel_tests
  echo "== $arch"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error
  # Which kernel set the tests ran (the suite prints the dispatch it chose), and the counts.
  grep -h -E '^  (cpu features|vec_dot path):|^\[==========\] .* ran|^\[  (PASSED|SKIPPED) ' \
    "$dir/Testing/Temporary/LastTest.log"
done
