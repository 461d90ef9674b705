#!/usr/bin/env bash
# Fuzzes the Modelfile parser and the PARAMETER value parsers for SECONDS (default 60)
# (fuzz/modelfile_fuzz.cpp), from fuzz/modelfile-seeds/. Exits nonzero on a crash, leak, timeout or OOM;
# the reproducer is left in build-fuzz/modelfile-artifacts/ (replay: build-fuzz/modelfile_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build modelfile_fuzz
fuzz_dirs modelfile
cp fuzz/modelfile-seeds/* "$SEEDS/"
# Parsing is linear in the input: a 64 KiB Modelfile needs well under 64 MB.
fuzz_run modelfile "$DURATION" 64
