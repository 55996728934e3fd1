#!/usr/bin/python3
"""Sharding proxies over the same three redis-servers, measured in the same run: nutcracker (twemproxy, ketama) and,
optionally, turretd started with a config of yours.

Usage:
  bench/bench_shard_peers.py                                   # nutcracker alone (baseline figures)
  bench/bench_shard_peers.py --turretd-config FILE [--turretd PATH]
  bench/bench_shard_peers.py --quick                           # tiny runs: checks the script (~30 s)
Options: --rounds N (3), --clients N (50), --depths 1,16 (redis-benchmark -P), --tests set,get, --keyspace N
(redis-benchmark -r, 100000), --seconds S (3: -n of each depth is sized from a short probe through nutcracker so
that a run takes about S seconds; the same -n for every proxy), -n1 N / -n16 N (fixed -n at -P 1 / -P 16 instead),
--server-connections N (nutcracker's server_connections, 1), --turretd PATH (default $TURRETD, then
build/services/turretd).

The turretd config is a template: {port0} {port1} {port2} become the redis-servers' ports, {endpoint0}..{endpoint2}
"127.0.0.1:PORT", and {endpoints} the YAML flow list "[127.0.0.1:P0, 127.0.0.1:P1, 127.0.0.1:P2]"; every other
brace is left as it is. Its RESP listener should bind 127.0.0.1:0 (the port is read from turretd's
"listening resp" log line). For the upstream backend:

    server: {threads: 0}
    logging: {level: warn}
    listeners:
      - {name: resp, protocol: resp, address: 127.0.0.1:0}
    store:
      kind: upstream
      mode: shard
      endpoints: {endpoints}
      pipeline:
        - layer: load_balance
          policy: ring_hash

What it does: three redis-servers (tests/integration/redis_topology.py: free ports, no persistence, always
stopped), nutcracker on a free port (hash fnv1a_64, distribution ketama, auto_eject_hosts false), the turretd
target if given. Then, for `rounds` rounds, every (test, -P) case runs `redis-benchmark -c 50 -r 100000 --csv`
through every proxy back to back, the order alternating per round. Around each run it reads utime+stime of the
proxy process (/proc/PID/stat, all threads) and of the three redis-servers: CPU per request = delta / requests.
Prints one line per run, the medians, and with turretd the ratios turretd/nutcracker (target: throughput >= 1.0x,
proxy CPU per request <= 1.0x). Exit status 0 when every run completed without errors and every shard got keys.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402
import redis_topology  # noqa: E402
from bench_resp import CLK_TCK, measured_run, print_medians, run_benchmark  # noqa: E402

NUTCRACKER = "/usr/sbin/nutcracker"


def wait_pong(port: int, proc: subprocess.Popen, timeout: float = harness.START_TIMEOUT) -> None:
    """Until a RESP PING answers +PONG (nutcracker answers PING itself; it has no inline commands)."""
    def probe():
        with harness.RespConn(port, timeout=1.0) as c:
            reply = c.call("PING")
        return reply == b"+PONG\r\n", reply
    redis_topology.wait_until(f"PING on :{port}", probe, timeout,
                              give_up=lambda: proc.poll() is not None and f"exited with {proc.returncode}")


class Nutcracker(harness.ServerProcess):
    kind = "nutcracker"

    def __init__(self, endpoints: list[str], server_connections: int = 1) -> None:
        super().__init__()
        self.config_path = os.path.join(self.tmpdir, "nutcracker.yml")

        def argv():
            self.port, stats_port = harness.free_port(), harness.free_port()
            Path(self.config_path).write_text("\n".join([
                "shards:",
                f"  listen: 127.0.0.1:{self.port}",
                "  hash: fnv1a_64",
                "  distribution: ketama",
                "  redis: true",
                "  auto_eject_hosts: false",
                f"  server_connections: {server_connections}",
                "  servers:",
                *[f"   - {e}:1 shard{i}" for i, e in enumerate(endpoints)],
            ]) + "\n")
            return [NUTCRACKER, "-c", self.config_path, "-s", str(stats_port), "-a", "127.0.0.1"]
        self.start_on_free_ports(argv, lambda: wait_pong(self.port, self.proc), "nutcracker")


PLACEHOLDER_RE = re.compile(r"\{(?:(port|endpoint)(\d+)|(endpoints))\}")


def render_config(template: str, ports: list[int]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(3):
            return "[" + ", ".join(f"127.0.0.1:{p}" for p in ports) + "]"
        i = int(m.group(2))
        if i >= len(ports):
            raise SystemExit(f"bench: {m.group(0)} in the turretd config, but there are {len(ports)} shards")
        return str(ports[i]) if m.group(1) == "port" else f"127.0.0.1:{ports[i]}"
    return PLACEHOLDER_RE.sub(sub, template)


def find_turretd(arg: str | None) -> str:
    for cand in [arg, os.environ.get("TURRETD"), ROOT / "build" / "services" / "turretd"]:
        if cand and Path(cand).is_file():
            return str(cand)
    sys.exit("bench: --turretd-config given but no turretd binary (pass --turretd or set $TURRETD)")


def upstream_ticks(shards: redis_topology.Shards) -> int:
    return sum(s.cpu_ticks() for s in shards.servers)


def calibrate(proxy: harness.ServerProcess, test: str, pipeline: int, clients: int, keyspace: int,
              seconds: float) -> int:
    """-n for about `seconds` per run at this depth, from a short probe through proxy."""
    probe_n = 5000 if pipeline == 1 else 50000
    rps, out, rc = run_benchmark(proxy.port, test, probe_n, clients, pipeline, keyspace)
    if rc != 0 or rps <= 0:
        raise RuntimeError(f"calibration run failed (rc={rc}):\n{out[-2000:]}")
    return max(probe_n, int(rps * seconds) // 1000 * 1000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turretd-config", help="turretd config template ({port0}.., {endpoint0}.., {endpoints})")
    ap.add_argument("--turretd", help="turretd binary (default: $TURRETD, then build/services/turretd)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--depths", default="1,16")
    ap.add_argument("--tests", default="set,get")
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--seconds", type=float, default=3.0, help="target seconds per run when -n is not given")
    ap.add_argument("-n1", type=int, help="requests per run at -P 1 (default: sized by --seconds)")
    ap.add_argument("-n16", type=int, help="requests per run at -P > 1 (default: sized by --seconds)")
    ap.add_argument("--server-connections", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny runs to check the script itself")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 0.5
    if not os.path.exists(NUTCRACKER):
        sys.exit("bench: nutcracker missing (scripts/deps.sh installs it)")
    template = Path(args.turretd_config).read_text() if args.turretd_config else None
    binary = find_turretd(args.turretd) if template else None
    depths = [int(x) for x in args.depths.split(",") if x]
    tests = [x for x in args.tests.split(",") if x]

    version = subprocess.run([NUTCRACKER, "--version"], capture_output=True, text=True)
    print(f"nutcracker: {(version.stdout + version.stderr).splitlines()[0]}")
    if binary:
        print(f"turretd: {binary}; config template {args.turretd_config}")
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    failures = []
    with redis_topology.Shards(3) as shards:
        proxies: dict[str, harness.ServerProcess] = {}
        try:
            try:
                proxies["nutcracker"] = Nutcracker(shards.endpoints, args.server_connections)
                if template:
                    proxies["turretd"] = harness.TurretServer(render_config(template, shards.ports), binary=binary)
            except RuntimeError as e:
                print(f"ERROR: {e}", file=sys.stderr)
                return 1
            print(f"shards: {', '.join(f'{s.address} pid {s.pid}' for s in shards.servers)}")
            for name, p in proxies.items():
                print(f"{name}: 127.0.0.1:{p.port} pid {p.pid}")

            n_for = {}
            for p in depths:
                fixed = args.n1 if p == 1 else args.n16
                n_for[p] = fixed or calibrate(proxies["nutcracker"], "set", p, args.clients, args.keyspace,
                                              args.seconds)
            cases = [(t, p) for p in depths for t in tests]
            results = {(name, t, p): [] for name in proxies for t, p in cases}
            print(f"\n== redis-benchmark -c {args.clients} -r {args.keyspace} -t {args.tests}, "
                  + ", ".join(f"-n {n_for[p]} at -P {p}" for p in depths)
                  + f"; {args.rounds} rounds, alternating order")
            print(f"{'round':>5} {'test':>4} {'P':>3} {'proxy':>10} {'req/s':>12} {'proxy us/req':>13} "
                  f"{'shards us/req':>14} {'wall s':>7}")
            for rnd in range(args.rounds):
                order = list(proxies)
                if rnd % 2:
                    order.reverse()
                for t, p in cases:
                    for name in order:
                        u0 = upstream_ticks(shards)
                        try:
                            r = measured_run(proxies[name], t, n_for[p], args.clients, p, args.keyspace)
                        except RuntimeError as e:
                            failures.append(f"{name} {t} -P {p}: {e}")
                            print(f"{rnd + 1:>5} {t.upper():>4} {p:>3} {name:>10}  FAILED")
                            continue
                        r["shards_us_per_req"] = (upstream_ticks(shards) - u0) / CLK_TCK / n_for[p] * 1e6
                        results[(name, t, p)].append(r)
                        print(f"{rnd + 1:>5} {t.upper():>4} {p:>3} {name:>10} {r['rps']:>12,.0f} "
                              f"{r['cpu_us_per_req']:>13.3f} {r['shards_us_per_req']:>14.3f} {r['wall']:>7.2f}")

            print("\n== medians")
            print(f"{'test':>4} {'P':>3} {'proxy':>10} {'req/s':>12} {'proxy us/req':>13} {'shards us/req':>14}")
            for t, p in cases:
                for name in proxies:
                    rs = results[(name, t, p)]
                    if rs:
                        med = {k: statistics.median(x[k] for x in rs)
                               for k in ("rps", "cpu_us_per_req", "shards_us_per_req")}
                        print(f"{t.upper():>4} {p:>3} {name:>10} {med['rps']:>12,.0f} {med['cpu_us_per_req']:>13.3f} "
                              f"{med['shards_us_per_req']:>14.3f}")
            if "turretd" in proxies and all(results[(n, t, p)] for n in proxies for t, p in cases):
                print("\n== ratios turretd / nutcracker (target: req/s >= 1.0x, proxy us/req <= 1.0x)")
                print_medians(results, cases, "turretd", "nutcracker")

            keys = [s.call("DBSIZE") for s in shards.servers]
            print(f"\nkeys per shard after the runs: {keys}")
            if not all(keys):
                failures.append(f"a shard got no keys: {keys}")
            for name, p in proxies.items():
                if not p.alive():
                    failures.append(f"{name} died:\n{p.log_text(3000)}")
        finally:
            for p in proxies.values():
                try:
                    p.cleanup()
                except AssertionError as e:  # crashed
                    failures.append(str(e))
    for f in failures:
        print(f"ERROR: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
