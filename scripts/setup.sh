#!/usr/bin/env bash
# Installs every dependency from Debian's packages (idempotent), then configures and builds tcemu.
# Usage: scripts/setup.sh [build-dir]      (default build dir: build)
#        scripts/setup.sh --deps-only       (install the packages only; scripts/sanitize.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"

PACKAGES=(build-essential cmake ninja-build pkg-config git
          verilator libsystemc-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev
          libopenblas-dev)  # libopenblas-dev: the OpenBLAS sgemm that `tcemu bench tensor-engine` compares with

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ "$BUILD_DIR" == "--deps-only" ]]; then exit 0; fi

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
