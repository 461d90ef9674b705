#!/usr/bin/env bash
# Fuzzes the HTTP API in-process for SECONDS (default 60): arbitrary method, path, headers and JSON or
# multipart bodies through the server's route table and handlers (fuzz/http_fuzz.cpp), with the tiny
# fixture model loaded once as a text, a vision and an audio model, from fuzz/http-seeds/ (one well-formed
# request per endpoint and mode). Exits nonzero on a crash, leak, timeout or OOM; the reproducer is left in
# build-fuzz/http-artifacts/ (replay: build-fuzz/http_fuzz FILE).
set -euo pipefail
DURATION=${1:-60}
cd "$(dirname "$0")/.."
. scripts/fuzz-common.sh
fuzz_build http_fuzz
fuzz_dirs http
cp fuzz/http-seeds/* "$SEEDS/"
# A request runs the model (a prefill and a few tokens, an image or audio encode): 30 s leaves room for a
# busy machine; a request stuck for longer is a bug.
export FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-30}
# Loading the models allocates tens of MB at once; a request body is at most 64 KiB here.
fuzz_run http "$DURATION" 512
