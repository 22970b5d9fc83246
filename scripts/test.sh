#!/usr/bin/env bash
# Installs what is missing, builds, and runs the test suite (ctest). Exits non-zero on any failure.
# Usage: scripts/test.sh [extra ctest args, e.g. -L rtl]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
cd build
ctest --output-on-failure --parallel "$(nproc)" "$@"
