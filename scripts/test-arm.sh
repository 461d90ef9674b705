#!/usr/bin/env bash
# Cross-builds the kernel library and its tests for AArch64 and runs them under qemu-user: the NEON
# kernels are held to their scalar twins on an ARM instruction set this x86 machine cannot run itself.
# Twice: plain ARMv8-A (widening multiplies) and ARMv8.2-A with the dot-product extension (SDOT).
# Needs g++-aarch64-linux-gnu and qemu-user (scripts/install-deps.sh --with-arm-tests installs both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${G3N_ARM_BUILD:-$root/build-arm}"
cxx=aarch64-linux-gnu-g++
command -v "$cxx" >/dev/null && command -v qemu-aarch64 >/dev/null || {
  echo "test-arm: needs $cxx and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2
  exit 1
}
gtest=/usr/src/googletest/googletest
mkdir -p "$out"
jobs="${G3N_JOBS:-2}"
for arch in armv8-a armv8.2-a+dotprod; do
  dir="$out/$arch"
  mkdir -p "$dir"
  flags=(-std=c++20 -O2 -march="$arch" -I"$root/src" -I"$gtest/include" -I"$gtest" -pthread)
  srcs=("$root"/src/kernels/*.cpp "$root"/src/quant/*.cpp "$root/src/runtime/thread_pool.cpp"
        "$root"/tests/kernels_*_test.cpp "$gtest/src/gtest-all.cc" "$gtest/src/gtest_main.cc")
  # Rebuild an object when its source, any header or the flags changed; compile to a temporary name so
  # an interrupted run leaves nothing that looks up to date.
  stamp="$dir/flags"
  if [[ "$(cat "$stamp" 2>/dev/null)" != "${flags[*]}" ]]; then rm -f "$dir"/*.o; echo "${flags[*]}" > "$stamp"; fi
  newest_header=$(ls -t "$root"/src/*/*.h | head -1)
  objs=()
  for s in "${srcs[@]}"; do
    o="$dir/$(basename "${s%.*}").o"
    objs+=("$o")
    if [[ ! -f "$o" || "$s" -nt "$o" || "$newest_header" -nt "$o" ]]; then
      while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
      ("$cxx" "${flags[@]}" -c "$s" -o "$o.tmp" && mv "$o.tmp" "$o") &
    fi
  done
  for pid in $(jobs -p); do wait "$pid"; done
  for o in "${objs[@]}"; do [[ -f "$o" ]] || { echo "test-arm: failed to build $o" >&2; exit 1; }; done
  "$cxx" "${flags[@]}" "${objs[@]}" -o "$dir/kernel_tests"
  echo "== $arch"
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 -cpu max "$dir/kernel_tests" --gtest_brief=1
done
