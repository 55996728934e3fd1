#!/usr/bin/python3
"""Instructions per RESP request of one or more turretd builds under callgrind (repeatable, unlike wall-clock CPU).

    bench/callgrind_resp.py [-n REQUESTS] [--depth P] [--redis] TURRETD [TURRETD ...]

For each binary: turretd (server.threads 1) under `valgrind --tool=callgrind` serves `redis-benchmark -c 50 -P DEPTH
-t get,set -r 100000 -n N` (N GETs and N SETs), once with N = REQUESTS and once with N = REQUESTS / 10; the
difference of the two runs' instruction counts (start-up, warm-up and shutdown cancel out) divided by the difference
in requests is the cost of one request in the server process (all threads). Prints Ir per request and the ratio to the
first binary. --redis measures Debian's redis-server the same way first, as the reference (user-space instructions
only: callgrind does not see the kernel, where most of a -P 1 request's CPU goes).
On this machine kind the figure repeats to well under 1% from run to run (throughput moves by 10-30%).
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402  (free ports, redis-benchmark)


def wait_pong(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"turretd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"PING\r\n")
                s.settimeout(30)
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("turretd under callgrind did not answer PING")


def instructions(binary: str, n: int, depth: int, work: str) -> int:
    port = harness.free_port()
    if binary == "redis-server":
        argv = [harness.REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    else:
        cfg = os.path.join(work, f"cg-{port}.yaml")
        Path(cfg).write_text("server: {threads: 1, shutdown_grace: 1s}\nlogging: {level: warn}\n"
                             f"listeners: [{{name: resp, protocol: resp, address: '127.0.0.1:{port}'}}]\n")
        argv = [binary, "--config", cfg]
    out = os.path.join(work, f"callgrind.{port}")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_pong(port, proc)
        subprocess.run([harness.REDIS_BENCHMARK, "-p", str(port), "-c", "50", "-P", str(depth), "-t", "get,set",
                        "-r", "100000", "-n", str(n), "-q"], check=True, capture_output=True, timeout=3600)
    finally:
        proc.terminate()
        proc.wait(300)
    for line in Path(out).read_text().splitlines():
        m = re.match(r"(?:summary|totals): (\d+)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"no totals in {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("-n", type=int, default=200000, help="GETs (and SETs) of the long run (default 200000)")
    ap.add_argument("--depth", type=int, default=16, help="redis-benchmark -P (default 16)")
    ap.add_argument("--redis", action="store_true", help="measure redis-server first, as the reference")
    args = ap.parse_args()
    if args.redis:
        args.binaries.insert(0, "redis-server")
    short = max(1, args.n // 10)
    print(f"== callgrind: redis-benchmark -c 50 -P {args.depth} -t get,set -r 100000, -n {args.n} minus -n {short}")
    first = None
    with tempfile.TemporaryDirectory(prefix="turret-callgrind-resp-") as work:
        for b in args.binaries:
            per_request = (instructions(b, args.n, args.depth, work) - instructions(b, short, args.depth, work)) / (
                2 * (args.n - short))
            first = first or per_request
            print(f"{per_request:10.1f} Ir/request  {per_request / first:6.3f}x  {b}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
