#!/usr/bin/env bash
# Fuzzes the image path (decode of every format + the reference preprocessing): builds image_fuzz with clang
# (libFuzzer + ASan + UBSan) in build-fuzz and runs it for SECONDS (default 60) from fuzz/image-seeds/ (tiny
# files of every format made from the vision fixture's gradient image) and the fixture's small inputs.
# Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in build-fuzz/image-artifacts/
# (replay: build-fuzz/image_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
BUILD=build-fuzz
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DG3N_BUILD_TESTS=OFF -DG3N_BUILD_FUZZERS=ON >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target image_fuzz

SEEDS=$BUILD/image-seeds
CORPUS=$BUILD/image-corpus          # grows across runs
ARTIFACTS=$BUILD/image-artifacts
rm -rf "$SEEDS"
mkdir -p "$SEEDS" "$CORPUS" "$ARTIFACTS"
cp fuzz/image-seeds/* "$SEEDS/"
INPUTS=../shared/fixtures/gemma3n-vision-tiny/inputs
for f in "$INPUTS"/scene_640x480.jpg "$INPUTS"/gradient_shapes_512x512.png; do
  [ -f "$f" ] && cp "$f" "$SEEDS/"
done

# -timeout: one input taking >10 s is a bug (the fuzz target's pixel limit is 1 Mi pixels).
# -malloc_limit_mb: the decoders must not allocate by header claims beyond the pixel limit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# fuzz/image-regressions/ holds inputs that once failed; they seed every run.
exec "$BUILD/image_fuzz" "$CORPUS" "$SEEDS" fuzz/image-regressions \
  -max_len=65536 -max_total_time="$DURATION" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
  -dict=fuzz/image.dict -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 -print_pcs=0
