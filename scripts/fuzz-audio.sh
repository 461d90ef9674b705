#!/usr/bin/env bash
# Fuzzes the audio path (decode of every accepted container and codec, down-mix, resampling, log-mel
# features of the first 30 s) for SECONDS (default 60) from synthetic tones written by audio_fuzz_seeds in
# every codec libsndfile writes, and the fixture's WAVs (libFuzzer keeps their first 64 KiB). Exits nonzero
# on a crash, leak, timeout or OOM; the reproducer is left in build-fuzz/audio-artifacts/ (replay:
# build-fuzz/audio_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build audio_fuzz audio_fuzz_seeds
fuzz_dirs audio
"$BUILD/audio_fuzz_seeds" "$SEEDS"
INPUTS=../shared/fixtures/gemma3n-audio-tiny/inputs
for f in "$INPUTS"/*.wav; do
  [ -f "$f" ] && cp "$f" "$SEEDS/"
done
# The fuzz target's duration limit is 40 s: a few MB of samples at most, whatever a header claims.
fuzz_run audio "$DURATION" 256
