#!/usr/bin/env bash
# Fuzzes the safetensors reader (src/tools/safetensors.cpp) for SECONDS (default 60) from a few small
# hand-written files. Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in
# build-fuzz/safetensors-artifacts/ (replay: build-fuzz/safetensors_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build safetensors_fuzz
fuzz_dirs safetensors
mkdir -p fuzz/safetensors-regressions
# seed NAME JSON DATA_BYTES: an 8-byte little-endian header length, the header, then DATA_BYTES zero bytes.
seed() {
  local n=${#2}
  { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $(((n >> 8) & 255)) $(((n >> 16) & 255)) $(((n >> 24) & 255)))"
    printf '%s' "$2"
    head -c "$3" /dev/zero; } > "$SEEDS/$1"
}
seed two '{"__metadata__":{"format":"pt"},"a.weight":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}' 28
seed scalar '{"s":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}' 2
seed empty '{}' 0
# Parsing is linear in the input: a 64 KiB input needs a few MB, so 64 MB in one allocation is a bug.
fuzz_run safetensors "$DURATION" 64
