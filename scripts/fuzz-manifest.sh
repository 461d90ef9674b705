#!/usr/bin/env bash
# Fuzzes Ollama manifest parsing (as read from a store or a registry) and model names for SECONDS (default
# 60) (fuzz/manifest_fuzz.cpp), from fuzz/manifest-seeds/. Exits
# nonzero on a crash, leak, timeout or OOM; the reproducer is left in build-fuzz/manifest-artifacts/
# (replay: build-fuzz/manifest_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build manifest_fuzz
fuzz_dirs manifest
cp fuzz/manifest-seeds/* "$SEEDS/"
# Parsing is linear in the input: a 64 KiB manifest needs well under 64 MB.
fuzz_run manifest "$DURATION" 64
