# Shared by scripts/fuzz-*.sh (sourced, not run): builds libFuzzer targets with clang (libFuzzer + ASan +
# UBSan) in build-fuzz and runs one. A target NAME is fuzz/NAME_fuzz.cpp with fuzz/NAME.dict and
# fuzz/NAME-regressions/ (inputs that once failed; they seed every run).
BUILD=build-fuzz
JOBS=${JOBS:-2}

# fuzz_build TARGET...
fuzz_build() {
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DG3N_BUILD_TESTS=OFF -DG3N_BUILD_FUZZERS=ON >/dev/null
  cmake --build "$BUILD" -j"$JOBS" --target "$@"
}

# fuzz_dirs NAME: sets SEEDS (emptied, for the caller to fill), CORPUS (grows across runs) and ARTIFACTS.
fuzz_dirs() {
  SEEDS=$BUILD/$1-seeds
  CORPUS=$BUILD/$1-corpus
  ARTIFACTS=$BUILD/$1-artifacts
  rm -rf "$SEEDS"
  mkdir -p "$SEEDS" "$CORPUS" "$ARTIFACTS"
}

# fuzz_run NAME SECONDS MALLOC_LIMIT_MB: replaces the shell with NAME_fuzz; exits nonzero on a crash, leak,
# timeout or OOM, leaving the reproducer in $ARTIFACTS (replay: $BUILD/NAME_fuzz FILE).
# -timeout: one input taking >10 s (FUZZ_TIMEOUT) is a bug. -malloc_limit_mb flags a single allocation driven by a claimed
# count rather than by bytes present. A smaller ASan quarantine keeps long runs' RSS well under -rss_limit_mb.
fuzz_run() {
  export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  exec "$BUILD/$1_fuzz" "$CORPUS" "$SEEDS" "fuzz/$1-regressions" \
    -max_len=65536 -max_total_time="$2" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -malloc_limit_mb="$3" \
    -dict="fuzz/$1.dict" -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 -print_pcs=0
}
