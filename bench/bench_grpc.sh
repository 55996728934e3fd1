#!/usr/bin/env bash
# gRPC unary Get: turretd's gRPC front end vs a bare grpc++ callback server (bench/grpc_bare_server.cpp) answering the
# same message (a 64-byte value) from a plain hash map. Same run, interleaved, `h2load -c50 -m10` each.
#
#   bench/bench_grpc.sh [ROUNDS=30] [SECONDS=1]
#   env: TURRET_BUILD_DIR (default build), TURRETD, GRPC_BARE_SERVER, TURRET_THREADS (turretd workers, default 1),
#        H2LOAD_THREADS (default 1), SLICES (h2load runs per server and round, default 4)
#
# Each round starts both servers afresh and measures them in 2 x SLICES runs of SECONDS each (after 300 ms of
# warm-up), in ABBA order (A B B A A B B A ...; which server is A alternates between rounds): the machine's speed
# drifts by tens of percent within seconds here, and the ABBA order cancels a linear drift within a round. The
# round's ratio is turretd's mean over its slices / bare's; the headline is the median of the round ratios with a
# bootstrap 95% interval.
#
# Success is counted by gRPC status, not HTTP status (h2load counts every HTTP 200 as a success, even a call whose
# grpc-status is an error): a successful Get carries exactly one DATA payload of 71 bytes (5-byte gRPC frame header +
# the GetResponse: 0x0a 0x40 + 64 bytes) while an error is trailers-only (no DATA). OK calls = DATA bytes / 71; the
# script also checks the data byte count is an exact multiple and that both servers answer OK before measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-30}
SECS=${2:-1}
SLICES=${SLICES:-4}
BUILD=${TURRET_BUILD_DIR:-build}
TURRETD=${TURRETD:-$BUILD/services/turretd}
BARE=${GRPC_BARE_SERVER:-$BUILD/bench/grpc_bare_server}
THREADS=${TURRET_THREADS:-1}
H2T=${H2LOAD_THREADS:-1}
if [ ! -x "$TURRETD" ] || [ ! -x "$BARE" ]; then
  TURRET_BUILD_DIR=$BUILD scripts/build.sh turretd grpc_bare_server
fi
command -v h2load >/dev/null || { echo "h2load missing (apt-get install nghttp2-client)"; exit 1; }

WORK=$(mktemp -d /tmp/turret-bench-grpc.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

KEY=bench:key
VALUE=$(printf 'v%.0s' $(seq 64))
RESP_SIZE=71

# Request body: gRPC frame (flag 0, 4-byte big-endian length) + GetRequest{key: "bench:key"} (0x0a len key).
/usr/bin/python3 - "$WORK/get.bin" "$KEY" <<'EOF'
import struct, sys
key = sys.argv[2].encode()
msg = b"\x0a" + bytes([len(key)]) + key
open(sys.argv[1], "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
EOF

wait_port() {  # log-file regex -> port
  local log=$1 rx=$2 i
  for i in $(seq 200); do
    if grep -qE "$rx" "$log" 2>/dev/null; then grep -oE "$rx" "$log" | head -1 | grep -oE '[0-9]+$'; return 0; fi
    sleep 0.05
  done
  echo "server did not start: $(cat "$log")" >&2
  return 1
}

# turretd: RESP (to seed the key) + gRPC, no pipeline layers (the default pipeline).
cat >"$WORK/turret.yaml" <<EOF
server:
  threads: $THREADS
  shutdown_grace: 1s
logging:
  level: warn
  format: text
listeners:
  - name: resp
    protocol: resp
    address: 127.0.0.1:0
  - name: grpc
    protocol: grpc
    address: 127.0.0.1:0
store:
  kind: memory
  databases: 16
EOF
# turretd logs at info level for the listening lines only when level <= info: use info and ignore the rest.
sed -i 's/level: warn/level: info/' "$WORK/turret.yaml"

# Both servers are started afresh for every round (and stopped after it): a server process keeps whatever luck it
# had at start-up (which cores its pollers settle on, where its memory landed) for its whole life, which showed as
# a persistent +-7% between two runs of the *same* binary when the processes were kept for the whole benchmark.
start_servers() {  # sets TURRET_GRPC, BARE_GRPC, SERVER_PIDS
  "$TURRETD" --config "$WORK/turret.yaml" >"$WORK/turretd.log" 2>&1 &
  SERVER_PIDS=($!)
  "$BARE" --port 0 --key "$KEY" --value-size 64 >"$WORK/bare.log" 2>&1 &
  SERVER_PIDS+=($!)
  PIDS+=("${SERVER_PIDS[@]}")
  TURRET_GRPC=$(wait_port "$WORK/turretd.log" 'listening grpc [0-9.]+:[0-9]+')
  local resp
  resp=$(wait_port "$WORK/turretd.log" 'listening resp [0-9.]+:[0-9]+')
  redis-cli -p "$resp" SET "$KEY" "$VALUE" >/dev/null
  BARE_GRPC=$(wait_port "$WORK/bare.log" 'listening grpc [0-9.]+:[0-9]+')
}
stop_servers() {
  kill "${SERVER_PIDS[@]}" 2>/dev/null || true
  wait "${SERVER_PIDS[@]}" 2>/dev/null || true
  PIDS=()
}

start_servers
# Sanity: both answer Get with grpc-status 0 and the same 64-byte value.
/usr/bin/python3 - "$TURRET_GRPC" "$BARE_GRPC" "$KEY" <<'EOF'
import sys, grpc
for port in sys.argv[1:3]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary("/turret.kv.v1.KV/Get")
        key = sys.argv[3].encode()
        rs = call(b"\x0a" + bytes([len(key)]) + key, timeout=5)
        assert rs == b"\x0a\x40" + b"v" * 64, (port, rs)
EOF
stop_servers

run_h2load() {  # port -> "ok_calls_per_second total_rps"
  local port=$1 out data secs reqs
  out=$(h2load -c50 -m10 -t"$H2T" -D "$SECS" --warm-up-time=300ms -d "$WORK/get.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$port/turret.kv.v1.KV/Get" 2>&1)
  data=$(echo "$out" | sed -nE 's/^traffic: .* \(([0-9]+)\) data$/\1/p; s/^traffic:.*headers.*, [0-9.]+[KMG]?B \(([0-9]+)\) data$/\1/p' | head -1)
  secs=$(echo "$out" | sed -nE 's/^finished in ([0-9.]+)s,.*/\1/p')
  reqs=$(echo "$out" | sed -nE 's/^finished in [0-9.]+s, ([0-9.]+) req\/s.*/\1/p')
  if [ -z "$data" ] || [ -z "$secs" ]; then echo "h2load output not understood:" >&2; echo "$out" >&2; return 1; fi
  if [ $((data % RESP_SIZE)) -ne 0 ]; then echo "warning: DATA bytes $data not a multiple of $RESP_SIZE" >&2; fi
  /usr/bin/python3 -c "print(f'{$data / $RESP_SIZE / $secs:.0f} {$reqs:.0f}')"
}

echo "gRPC unary Get, h2load -c50 -m10, ${ROUNDS} rounds of 2 x ${SLICES} runs of ${SECS}s (ABBA); turretd threads=$THREADS"
printf '%-6s %14s %14s %14s %14s %8s\n' round bare_ok/s bare_req/s turretd_ok/s turretd_req/s ratio
BARE_R=(); TURRET_R=()
for r in $(seq "$ROUNDS"); do
  start_servers
  b_ok=0; b_all=0; t_ok=0; t_all=0
  for i in $(seq 0 $((2 * SLICES - 1))); do
    # ABBA: slots 0 and 3 of every 4 go to A; A is bare in odd rounds, turretd in even ones.
    a_slot=$(( (i % 4 == 0 || i % 4 == 3) ? 1 : 0 ))
    if [ $(( (r + a_slot) % 2 )) -eq 0 ]; then
      read -r ok all < <(run_h2load "$BARE_GRPC"); b_ok=$((b_ok + ok)); b_all=$((b_all + all))
    else
      read -r ok all < <(run_h2load "$TURRET_GRPC"); t_ok=$((t_ok + ok)); t_all=$((t_all + all))
    fi
  done
  stop_servers
  b_ok=$((b_ok / SLICES)); b_all=$((b_all / SLICES)); t_ok=$((t_ok / SLICES)); t_all=$((t_all / SLICES))
  BARE_R+=("$b_ok"); TURRET_R+=("$t_ok")
  printf '%-6s %14s %14s %14s %14s %8s\n' "$r" "$b_ok" "$b_all" "$t_ok" "$t_all" \
    "$(/usr/bin/python3 -c "print(f'{$t_ok / $b_ok:.3f}')")"
done
/usr/bin/python3 - "${BARE_R[*]}" "${TURRET_R[*]}" <<'EOF'
import random, statistics, sys
bare = [float(x) for x in sys.argv[1].split()]
turret = [float(x) for x in sys.argv[2].split()]
ratios = [t / b for t, b in zip(turret, bare)]
mb, mt = statistics.median(bare), statistics.median(turret)
print(f"median OK calls/s: bare grpc++ {mb:.0f}, turretd {mt:.0f}; per-round ratios {min(ratios):.3f}..{max(ratios):.3f}")
# How sure is the median? A bootstrap over the rounds (resample with replacement, fixed seed): the 95% interval.
rng = random.Random(1)
boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
print(f"ratio turretd/bare (median of per-round ratios) = {statistics.median(ratios):.3f}x (target >= 0.95x); "
      f"95% bootstrap interval {boots[50]:.3f}..{boots[1949]:.3f}")
EOF
