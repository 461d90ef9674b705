#!/usr/bin/env bash
# Fuzzes the GGUF reader: builds gguf_fuzz with clang (libFuzzer + ASan + UBSan) in build-fuzz, seeds a small
# corpus (generated files + the first 4 KiB of the fixture files) and runs for SECONDS (default 60).
# Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in build-fuzz/gguf-artifacts/
# (replay: build-fuzz/gguf_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
BUILD=build-fuzz
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DG3N_BUILD_TESTS=OFF -DG3N_BUILD_FUZZERS=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target gguf_fuzz gguf_fuzz_seeds

SEEDS=$BUILD/gguf-seeds
CORPUS=$BUILD/gguf-corpus          # grows across runs
ARTIFACTS=$BUILD/gguf-artifacts
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$CORPUS" "$ARTIFACTS"
"$BUILD/gguf_fuzz_seeds" "$SEEDS"
FIXTURES=../shared/fixtures
for f in "$FIXTURES"/gemma3n-tiny/models/*.gguf "$FIXTURES"/gemma3-vocab/*.gguf; do
  [ -f "$f" ] && head -c 4096 "$f" > "$SEEDS/head-$(basename "$f")"
done

# -timeout: one input taking >10 s is a bug (parsing is linear in the input). -malloc_limit_mb flags any
# single allocation driven by a count rather than by bytes present (a 64 KiB input needs < 10 MB);
# a smaller ASan quarantine keeps long runs' RSS well under -rss_limit_mb.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# fuzz/gguf-regressions/ holds inputs that once failed; they seed every run.
exec "$BUILD/gguf_fuzz" "$CORPUS" "$SEEDS" fuzz/gguf-regressions \
  -max_len=65536 -max_total_time="$DURATION" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 \
  -dict=fuzz/gguf.dict -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 -print_pcs=0
