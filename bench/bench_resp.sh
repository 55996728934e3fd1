#!/usr/bin/env bash
# turretd vs redis-server benchmark (throughput, CPU per request, memory, 5000 clients): see bench/README.md.
#   bench/bench_resp.sh [--quick] [--rounds N] [--skip memory,clients] [--turretd PATH] ...
# Uses $TURRETD or build/services/turretd (built Release by scripts/build.sh turretd when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TURRETD:-}" ] && [ ! -x build/services/turretd ]; then
  scripts/build.sh turretd
fi
# 5,000 concurrent clients need more than the usual 1024 descriptors (the script raises its own soft limit too).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 bench/bench_resp.py "$@"
