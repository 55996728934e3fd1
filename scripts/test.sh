#!/usr/bin/env bash
# Install what is missing, build everything and run every test (unit, integration, differential against redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ulimit -n 65536 2>/dev/null || true
cd "${TURRET_BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
