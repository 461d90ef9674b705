#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages g3n builds and tests with (idempotent; uses sudo when not root).
# --with-arm-tests adds the AArch64 cross compiler and qemu-user that scripts/test-arm.sh needs.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(build-essential cmake clang libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
      libcurl4-openssl-dev libssl-dev libcpp-httplib-dev libedit-dev curl
      libturbojpeg0-dev libwebp-dev libstb-dev libsndfile1-dev libsoxr-dev libfftw3-dev)
if [ "${1:-}" = "--with-arm-tests" ]; then PKGS+=(g++-aarch64-linux-gnu qemu-user); fi
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# Node.js and npm run the client-library tests (tests/clients); installed only when missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nodejs npm
fi
