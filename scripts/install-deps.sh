#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages g3n builds and tests with (idempotent; uses sudo when not root).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS=(build-essential cmake clang libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
      libcurl4-openssl-dev libssl-dev libcpp-httplib-dev libedit-dev curl
      g++-aarch64-linux-gnu qemu-user)  # the last two: NEON kernel tests (scripts/test-arm.sh)
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
