#!/usr/bin/env bash
# Fuzzes the GGUF reader for SECONDS (default 60) from a small corpus (generated files + the first 4 KiB of
# the fixture files). Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in
# build-fuzz/gguf-artifacts/ (replay: build-fuzz/gguf_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build gguf_fuzz gguf_fuzz_seeds
fuzz_dirs gguf
"$BUILD/gguf_fuzz_seeds" "$SEEDS"
FIXTURES=../shared/fixtures
for f in "$FIXTURES"/gemma3n-tiny/models/*.gguf "$FIXTURES"/gemma3-vocab/*.gguf; do
  [ -f "$f" ] && head -c 4096 "$f" > "$SEEDS/head-$(basename "$f")"
done
# Parsing is linear in the input: a 64 KiB input needs < 10 MB, so 64 MB in one allocation is a bug.
fuzz_run gguf "$DURATION" 64
