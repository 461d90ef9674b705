#!/usr/bin/env bash
# Fuzzes the image path (decode of every format + the reference preprocessing) for SECONDS (default 60) from
# fuzz/image-seeds/ (tiny files of every format made from the vision fixture's gradient image) and the
# fixture's small inputs. Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in
# build-fuzz/image-artifacts/ (replay: build-fuzz/image_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build image_fuzz
fuzz_dirs image
cp fuzz/image-seeds/* "$SEEDS/"
INPUTS=../shared/fixtures/gemma3n-vision-tiny/inputs
for f in "$INPUTS"/scene_640x480.jpg "$INPUTS"/gradient_shapes_512x512.png; do
  [ -f "$f" ] && cp "$f" "$SEEDS/"
done
# The fuzz target's pixel limit is 1 Mi pixels: the decoders must not allocate by header claims beyond it.
fuzz_run image "$DURATION" 256
