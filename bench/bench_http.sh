#!/usr/bin/env bash
# HTTP GET benchmark: turretd's GET /v1/kv/{key} (64-byte value) against nginx-light answering `return 200` with a
# 64-byte body, `wrk -t1 -c50` on both, alternating in the same run; prints per-round figures, medians and the ratio.
#
# Env: TURRETD (binary; default: the newest build*/services/turretd), ROUNDS (5), DURATION (5s), CONNECTIONS (50),
#      SERVER_THREADS (1: turretd threads = nginx worker_processes, so both servers get one core and wrk the other).
# Target (issue 3): turretd >= 0.9x nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-50}
SERVER_THREADS=${SERVER_THREADS:-1}
TURRETD=${TURRETD:-$(ls -t "$ROOT"/build*/services/turretd 2>/dev/null | head -1)}
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { [ -x "/usr/sbin/$tool" ] || { echo "missing $tool (scripts/deps.sh)"; exit 1; }; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$TURRETD" ] || { echo "turretd not found (build it, or set TURRETD)"; exit 1; }

TMP=$(mktemp -d /tmp/turret-bench-http.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

BODY=$(printf 'v%.0s' $(seq 1 64))  # 64 bytes

# --- turretd ---------------------------------------------------------------------------------------------------
cat > "$TMP/turret.yaml" <<YAML
server:
  threads: $SERVER_THREADS
logging:
  level: info
listeners:
  - name: resp
    protocol: resp
    address: 127.0.0.1:0
  - name: http
    protocol: http
    address: 127.0.0.1:0
store:
  kind: memory
YAML
"$TURRETD" --config "$TMP/turret.yaml" >"$TMP/turretd.log" 2>&1 &
PIDS+=($!)
HTTP_PORT=""
for _ in $(seq 1 200); do
  HTTP_PORT=$(grep -oE 'listening http [0-9.]+:[0-9]+' "$TMP/turretd.log" | head -1 | sed 's/.*://') || true
  [ -n "$HTTP_PORT" ] && break
  sleep 0.05
done
[ -n "$HTTP_PORT" ] || { echo "turretd did not start:"; cat "$TMP/turretd.log"; exit 1; }
curl -sf -X PUT --data-binary "$BODY" "http://127.0.0.1:$HTTP_PORT/v1/kv/bench:key" -o /dev/null
[ "$(curl -sf "http://127.0.0.1:$HTTP_PORT/v1/kv/bench:key")" = "$BODY" ] || { echo "turretd GET check failed"; exit 1; }

# --- nginx ---------------------------------------------------------------------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
sed -e "s|@PORT@|$NGINX_PORT|" -e "s|@PREFIX@|$TMP/nginx|g" -e "s|@WORKERS@|$SERVER_THREADS|" -e "s|@BODY@|$BODY|" \
  "$ROOT/bench/nginx/return200.conf.in" > "$TMP/nginx/nginx.conf"
if [ "$SERVER_THREADS" -gt 1 ]; then sed -i 's/^master_process off;/master_process on;/' "$TMP/nginx/nginx.conf"; fi
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
PIDS+=($!)
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$NGINX_PORT/" -o /dev/null && break
  sleep 0.05
done
[ "$(curl -sf "http://127.0.0.1:$NGINX_PORT/")" = "$BODY" ] || { echo "nginx did not start:"; cat "$TMP/nginx/error.log"; exit 1; }

run_wrk() {  # url -> requests/sec
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$1" | awk '/^Requests\/sec:/ {print $2}'
}

echo "wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds alternating; server threads/workers: $SERVER_THREADS"
echo "turretd: GET http://127.0.0.1:$HTTP_PORT/v1/kv/bench:key   nginx: GET http://127.0.0.1:$NGINX_PORT/ (return 200)"
T=() N=()
for r in $(seq 1 "$ROUNDS"); do
  t=$(run_wrk "http://127.0.0.1:$HTTP_PORT/v1/kv/bench:key")
  n=$(run_wrk "http://127.0.0.1:$NGINX_PORT/")
  T+=("$t") N+=("$n")
  printf 'round %d: turretd %10.0f req/s   nginx %10.0f req/s   ratio %.3f\n' "$r" "$t" "$n" "$(echo "$t / $n" | bc -l)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
MT=$(median "${T[@]}")
MN=$(median "${N[@]}")
printf 'median:  turretd %10.0f req/s   nginx %10.0f req/s   ratio %.3f (target >= 0.9)\n' "$MT" "$MN" "$(echo "$MT / $MN" | bc -l)"
