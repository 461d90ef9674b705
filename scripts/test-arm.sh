#!/usr/bin/env bash
# Cross-builds the kernel libraries and their tests for AArch64 once, for plain ARMv8-A (the NEON,
# SDOT and SMMLA kernel sets are all in that one build, chosen at run time from HWCAP), and runs them
# under qemu-user on three CPUs: cortex-a57 (plain NEON), cortex-a76 (+dotprod) and max (+i8mm). Every
# kernel test runs each set the emulated CPU supports against its scalar twins; the output shows which
# sets each run used. Needs g++-aarch64-linux-gnu and qemu-user (scripts/install-deps.sh
# --with-arm-tests installs both); cmake/aarch64-linux-gnu.cmake names them and runs tests through qemu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${G3N_ARM_BUILD:-$root/build-arm}/armv8-a"
command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null || {
  echo "test-arm: needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
  exit 1
}
jobs="${G3N_JOBS:-2}"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-march=armv8-a" -DG3N_KERNEL_TESTS_ONLY=ON \
  "${launcher[@]}" >/dev/null
cmake --build "$dir" -j"$jobs" --target g3n_kernel_tests
# QEMU_CPU picks the emulated CPU (the toolchain file passes no -cpu, so this decides what HWCAP shows).
for cpu in cortex-a57 cortex-a76 max; do
  echo "== qemu -cpu $cpu"
  QEMU_CPU=$cpu ctest --test-dir "$dir" --output-on-failure --no-tests=error
  # What the run saw and used (the suite prints the features, the sets and the chosen one), and the counts.
  grep -h -E '^  (cpu features|vec_dot path|kernel sets|conv kernel sets|dispatched):|^\[==========\] .* ran|^\[  (PASSED|SKIPPED|FAILED) ' \
    "$dir/Testing/Temporary/LastTest.log"
  grep -h '^  kernel sets run:' "$dir/Testing/Temporary/LastTest.log" | sort | uniq -c
done
