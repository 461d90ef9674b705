#!/usr/bin/env bash
# One command: install dependencies and build g3n (binary at build/g3n).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DG3N_BUILD_TESTS=OFF
cmake --build build -j"$JOBS" --target g3n
