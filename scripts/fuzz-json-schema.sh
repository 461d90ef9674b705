#!/usr/bin/env bash
# Fuzzes structured output for SECONDS (default 60): JSON-schema compilation, the JSON automaton and its
# logits masks, and the tool-call grammar (fuzz/json_schema_fuzz.cpp), from fuzz/json_schema-seeds/.
# Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in build-fuzz/json_schema-artifacts/
# (replay: build-fuzz/json_schema_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build json_schema_fuzz
fuzz_dirs json_schema
cp fuzz/json_schema-seeds/* "$SEEDS/"
# A schema of 64 KiB compiles to a few MB of nodes at most.
fuzz_run json_schema "$DURATION" 256
