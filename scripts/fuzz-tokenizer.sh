#!/usr/bin/env bash
# Fuzzes the tokenizer with the real Gemma 3 vocabulary (../shared/fixtures/gemma3-vocab/vocab.gguf) for
# SECONDS (default 60): encoding arbitrary bytes and decoding arbitrary ids (fuzz/tokenizer_fuzz.cpp), from
# fuzz/tokenizer-seeds/. Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in
# build-fuzz/tokenizer-artifacts/ (replay: build-fuzz/tokenizer_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build tokenizer_fuzz
fuzz_dirs tokenizer
cp fuzz/tokenizer-seeds/* "$SEEDS/"
# The vocabulary takes a few hundred MB once; per input, memory is linear in its length.
fuzz_run tokenizer "$DURATION" 256
