#!/usr/bin/env bash
# turretd in shard mode vs nutcracker over the same three redis-servers (throughput, proxy CPU per request):
#   bench/bench_shard.sh [-n REQUESTS] [--rounds N] [--depths 1,16] [--clients 50]
# Uses $TURRETD or build/services/turretd (built Release by scripts/build.sh turretd when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TURRETD:-}" ] && [ ! -x build/services/turretd ]; then
  scripts/build.sh turretd
fi
exec /usr/bin/python3 bench/bench_shard.py "$@"
