#!/usr/bin/env bash
# Install what is missing, build turretd (Release) and run it on its embedded default config.
# Extra arguments go to turretd (e.g. --config deploy/turret.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh turretd
exec "${TURRET_BUILD_DIR:-build}/services/turretd" "$@"
