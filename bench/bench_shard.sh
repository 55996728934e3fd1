#!/usr/bin/env bash
# turretd's shard mode against nutcracker over the same three redis-servers, same run (throughput and proxy CPU per
# request at redis-benchmark -P 1 and -P 16, as ratios): bench/bench_shard_peers.py on bench/configs/shard.yaml.
#   bench/bench_shard.sh [--rounds N] [--depths 1,16] [--seconds S] [--quick] ...   (options: bench_shard_peers.py)
# Uses $TURRETD or build/services/turretd (built Release by scripts/build.sh turretd when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TURRETD:-}" ] && [ ! -x build/services/turretd ]; then
  scripts/build.sh turretd
fi
exec /usr/bin/python3 bench/bench_shard_peers.py --turretd-config bench/configs/shard.yaml "$@"
