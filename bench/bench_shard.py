#!/usr/bin/env python3
"""turretd in shard mode against nutcracker (twemproxy) over the same three redis-servers.

    bench/bench_shard.sh [-n REQUESTS] [--rounds N] [--depths 1,16] [--clients 50]

Starts three redis-servers on free ports, turretd (`store: {kind: upstream, mode: shard}`, no layers) and nutcracker
(ketama over the same servers), then runs `redis-benchmark -t get,set -r 100000 -P DEPTH` through each proxy, the
proxies alternating within each round. Throughput is redis-benchmark's; proxy CPU per request is utime+stime of the
proxy process (/proc/PID/stat, all threads) around the run divided by the requests. Prints each figure and the
turretd / nutcracker ratios (throughput: higher is better; CPU per request: lower is better). The machine is shared:
compare the ratios of one run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} does not accept connections on {port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def bench(port: int, pid: int, test: str, depth: int, n: int, clients: int) -> tuple[float, float]:
    before = cpu_seconds(pid)
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(n), "-P", str(depth),
                          "-r", "100000", "-t", test, "--csv"], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0] == test.upper():
            return float(cells[1]), cpu / n * 1e6
    raise SystemExit(f"no {test} figure in redis-benchmark's output:\n{out}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--depths", default="1,16")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--turretd", default=os.environ.get("TURRETD", str(ROOT / "build/services/turretd")))
    args = ap.parse_args()
    if not shutil.which("nutcracker"):
        raise SystemExit("nutcracker is not installed (scripts/deps.sh installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_shard."))
    procs: list[subprocess.Popen] = []

    def spawn(argv: list[str], port: int, what: str) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(tmp / f"{what}.log", "w"), cwd=tmp)
        procs.append(p)
        wait_port(port, p, what)
        return p

    try:
        rports = [free_port() for _ in range(3)]
        for i, p in enumerate(rports):
            spawn(["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--logfile", ""], p, f"redis{i}")
        tport, nport = free_port(), free_port()
        (tmp / "turret.yaml").write_text(
            "logging: {level: warn}\nlisteners:\n  - {name: resp, protocol: resp, address: 127.0.0.1:%d}\n"
            "store:\n  kind: upstream\n  mode: shard\n  endpoints: [%s]\n"
            % (tport, ", ".join(f"127.0.0.1:{p}" for p in rports)))
        (tmp / "nutcracker.yml").write_text(
            "shard:\n  listen: 127.0.0.1:%d\n  hash: fnv1a_64\n  distribution: ketama\n  redis: true\n"
            "  server_connections: 1\n  servers:\n%s" % (nport, "".join(f"   - 127.0.0.1:{p}:1\n" for p in rports)))
        proxies = {
            "turretd": (tport, spawn([args.turretd, "--config", str(tmp / "turret.yaml")], tport, "turretd")),
            "nutcracker": (nport, spawn(["nutcracker", "-c", str(tmp / "nutcracker.yml"), "-s", str(free_port())],
                                        nport, "nutcracker")),
        }
        depths = [int(d) for d in args.depths.split(",")]
        results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        for r in range(args.rounds):
            order = list(proxies) if r % 2 == 0 else list(proxies)[::-1]
            for depth in depths:
                for test in ("get", "set"):
                    for name in order:
                        port, proc = proxies[name]
                        results.setdefault((name, test, depth), []).append(
                            bench(port, proc.pid, test, depth, args.n, args.clients))
        print(f"{'test':>4} {'-P':>3} {'proxy':>11} {'req/s':>10} {'CPU us/req':>10}")
        for depth in depths:
            for test in ("get", "set"):
                med = {}
                for name in proxies:
                    rows = sorted(results[(name, test, depth)])
                    rps = rows[len(rows) // 2][0]
                    cpu = sorted(c for _, c in rows)[len(rows) // 2]
                    med[name] = (rps, cpu)
                    print(f"{test:>4} {depth:>3} {name:>11} {rps:>10.0f} {cpu:>10.2f}")
                t, n = med["turretd"], med["nutcracker"]
                print(f"{test:>4} {depth:>3} {'ratio':>11} {t[0] / n[0]:>9.2f}x {t[1] / n[1]:>9.2f}x"
                      "   (turretd / nutcracker: throughput, CPU per request)")
        return 0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
