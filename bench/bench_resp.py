#!/usr/bin/python3
"""turretd vs redis-server, measured in the same run (see bench/README.md).

1. Throughput and server CPU per request: redis-benchmark -c 50, SET and GET, at -P 1 and -P 16, three rounds; each
   round runs every (test, pipeline) case against both servers back to back, the order alternating per round.
   Server CPU = utime+stime of the server process (/proc/PID/stat, all threads) sampled around each run, divided by
   the requests of that run. Prints per-run figures, then medians and turretd/redis-server ratios.
2. Memory: 1,000,000 keys (16-byte keys, 16-byte values) loaded into both by a pipelined loader; VmRSS of each.
3. 5,000 concurrent clients against turretd (redis-benchmark -c 5000); any error fails.
4. redis-benchmark -t set,get,incr,mset against turretd with no errors.
With --baseline PATH, a second turretd (another build, e.g. before a change) runs every throughput case in the same
rounds, and the medians add the ratio turretd/baseline.
Exit status 0 when every check ran without errors (the performance ratios are reported, not enforced).
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402  (server processes, /proc helpers)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def find_turretd(arg: str | None) -> str:
    for cand in [arg, os.environ.get("TURRETD"), ROOT / "build" / "services" / "turretd"]:
        if cand and Path(cand).is_file():
            return str(cand)
    sys.exit("bench: no turretd binary (build it: scripts/build.sh turretd, or pass --turretd / $TURRETD)")


def build_type_note(binary: str) -> str:
    cache = Path(binary).resolve().parent.parent / "CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text().splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                t = line.split("=", 1)[1]
                return t if t == "Release" else f"{t} (WARNING: not a Release build)"
    return "unknown"


def run_benchmark(port: int, test: str, n: int, clients: int, pipeline: int, keyspace: int,
                  extra: list[str] | None = None, timeout: float = 600) -> tuple[float, str, int]:
    """One redis-benchmark run; returns (requests per second, combined output, exit code)."""
    argv = [harness.REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-t", test, "-n", str(n), "-c",
            str(clients), "-P", str(pipeline), "--csv"]
    if keyspace:
        argv += ["-r", str(keyspace)]
    argv += extra or []
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    rps = 0.0
    for row in csv.reader(io.StringIO(p.stdout)):
        if row and row[0] != "test" and len(row) > 1:
            try:
                rps = float(row[1])
            except ValueError:
                pass
    return rps, p.stdout + p.stderr, p.returncode


def measured_run(server: harness.ServerProcess, test: str, n: int, clients: int, pipeline: int, keyspace: int):
    t0 = server.cpu_ticks()
    w0 = time.monotonic()
    rps, out, rc = run_benchmark(server.port, test, n, clients, pipeline, keyspace)
    wall = time.monotonic() - w0
    cpu_s = (server.cpu_ticks() - t0) / CLK_TCK
    if rc != 0 or rps <= 0 or "rror" in out:
        raise RuntimeError(f"redis-benchmark failed against {server.kind} (rc={rc}):\n{out[-2000:]}")
    return {"rps": rps, "cpu_us_per_req": cpu_s / n * 1e6, "wall": wall, "cpu_s": cpu_s}


def load_keys(port: int, count: int, batch: int = 10000) -> float:
    """SET key:%012d (16 bytes) to a 16-byte value, pipelined; returns seconds."""
    start = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    errors = []

    def writer():
        try:
            for base in range(0, count, batch):
                chunk = b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$16\r\nval:%012d\r\n" % (i, i)
                                 for i in range(base, min(count, base + batch)))
                sock.sendall(chunk)
        except OSError as e:
            errors.append(e)
    t = threading.Thread(target=writer)
    t.start()
    expected = 5 * count  # "+OK\r\n" per key
    got = 0
    sock.settimeout(120)
    while got < expected:
        data = sock.recv(1 << 20)
        if not data:
            break
        if data.strip(b"+OK\r\n"):
            raise RuntimeError(f"unexpected reply while loading: {data[:100]!r}")
        got += len(data)
    t.join()
    sock.close()
    if errors or got != expected:
        raise RuntimeError(f"loader: {errors} got {got}/{expected} bytes of replies")
    return time.monotonic() - start


def dbsize(port: int) -> int:
    with harness.RespConn(port, timeout=30) as c:
        return int(c.call("DBSIZE")[1:-2])


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def print_medians(results: dict, cases: list[tuple[str, int]], a: str, b: str) -> None:
    """Median req/s and CPU us/request of servers a and b per case, and the ratios a/b."""
    print(f"{'test':>4} {'P':>3} {a + ' req/s':>14} {b + ' req/s':>14} {'ratio':>6}   "
          f"{a + ' us/req':>15} {b + ' us/req':>15} {'ratio':>6}")
    for t, p in cases:
        ar, br, ac, bc = (statistics.median(x[k] for x in results[(name, t, p)])
                          for k, name in (("rps", a), ("rps", b), ("cpu_us_per_req", a), ("cpu_us_per_req", b)))
        print(f"{t.upper():>4} {p:>3} {ar:>14,.0f} {br:>14,.0f} {fmt_ratio(ar, br):>6}   "
              f"{ac:>15.3f} {bc:>15.3f} {fmt_ratio(ac, bc):>6}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turretd", help="turretd binary (default: $TURRETD, then build/services/turretd)")
    ap.add_argument("--baseline", help="a second turretd binary measured in the same throughput rounds")
    ap.add_argument("--depths", default="1,16", help="comma list of redis-benchmark -P values (default 1,16)")
    ap.add_argument("--tests", default="set,get", help="comma list of redis-benchmark tests (default set,get)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("-n1", type=int, default=int(os.environ.get("BENCH_N_P1", 300000)),
                    help="requests per run at -P 1 (default 300000: ~3-5 s here)")
    ap.add_argument("-n16", type=int, default=int(os.environ.get("BENCH_N_P16", 3000000)),
                    help="requests per run at -P 16 (default 3000000: ~3-5 s here)")
    ap.add_argument("--keyspace", type=int, default=100000, help="redis-benchmark -r (0: one key)")
    ap.add_argument("--threads", type=int, default=0, help="turretd server.threads (0 = auto: one per core, less one)")
    ap.add_argument("--memory-keys", type=int, default=1000000)
    ap.add_argument("--many-clients", type=int, default=5000)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: throughput,memory,clients,standard")
    ap.add_argument("--quick", action="store_true", help="tiny runs to check the script itself")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if args.quick:
        args.n1, args.n16, args.rounds, args.memory_keys, args.many_clients = 20000, 200000, 1, 100000, 500

    # Raise the fd limit for us and every child (servers and redis-benchmark).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.many_clients * 2 + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    binary = find_turretd(args.turretd)
    harness.TURRETD = binary
    print(f"turretd: {binary} (build: {build_type_note(binary)})")
    print(f"redis-server: {subprocess.run([harness.REDIS_SERVER, '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"machine: {os.cpu_count()} cores; fd limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")
    failures: list[str] = []

    config = harness.turretd_yaml(threads=args.threads, level="warn",
                                  resp={"maxclients": max(10000, args.many_clients + 100)})
    turret = harness.TurretServer(config)
    redis = harness.RedisServer(["--maxclients", str(max(10000, args.many_clients + 100))])
    servers = {"turretd": turret, "redis": redis}
    depths = [int(x) for x in args.depths.split(",") if x]
    tests = [x for x in args.tests.split(",") if x]
    try:
        if args.baseline:
            servers["baseline"] = harness.TurretServer(config, binary=args.baseline)
            print(f"baseline: {args.baseline} (build: {build_type_note(args.baseline)}), "
                  f"pid {servers['baseline'].pid} port {servers['baseline'].port}")
        print(f"turretd pid {turret.pid} port {turret.port}; redis-server pid {redis.pid} port {redis.port}\n")

        if "throughput" not in skip:
            cases = [(t, p) for p in depths for t in tests]
            results = {(name, t, p): [] for name in servers for t, p in cases}
            print(f"== throughput: redis-benchmark -c {args.clients} -r {args.keyspace} -t {args.tests}, "
                  f"-n {args.n1} at -P 1, -n {args.n16} at -P > 1 (-P {args.depths}); {args.rounds} rounds, "
                  f"alternating")
            print(f"{'round':>5} {'test':>4} {'P':>3} {'server':>8} {'req/s':>12} {'cpu us/req':>11} {'wall s':>7}")
            for rnd in range(args.rounds):
                order = [n for n in servers if n != "redis"] + ["redis"]
                if rnd % 2:
                    order.reverse()
                for t, p in cases:
                    for name in order:
                        n = args.n1 if p == 1 else args.n16
                        r = measured_run(servers[name], t, n, args.clients, p, args.keyspace)
                        results[(name, t, p)].append(r)
                        print(f"{rnd + 1:>5} {t:>4} {p:>3} {name:>8} {r['rps']:>12,.0f} {r['cpu_us_per_req']:>11.3f} "
                              f"{r['wall']:>7.2f}", flush=True)
            print("\n== medians (ratio = turretd / redis-server; throughput >= 1.0x and CPU/request <= 1.0x is the target)")
            print_medians(results, cases, "turretd", "redis")
            if args.baseline:
                print("\n== turretd vs baseline (ratio = turretd / baseline)")
                print_medians(results, cases, "turretd", "baseline")
            print()

        if "memory" not in skip:
            print(f"== memory: {args.memory_keys:,} keys, 16-byte keys and 16-byte values")
            rows = {}
            for name, s in servers.items():
                with harness.RespConn(s.port, timeout=60) as c:
                    c.call("FLUSHALL")
                time.sleep(0.5)
                before = s.rss_kb()
                secs = load_keys(s.port, args.memory_keys)
                n = dbsize(s.port)
                time.sleep(0.5)
                after = s.rss_kb()
                rows[name] = (before, after, n, secs)
                print(f"{name:>8}: VmRSS {after / 1024:8.1f} MB (empty {before / 1024:6.1f} MB, data "
                      f"{(after - before) / 1024:7.1f} MB, {(after - before) * 1024 / max(n, 1):5.1f} B/key), "
                      f"dbsize {n:,}, loaded in {secs:.1f} s")
                if n != args.memory_keys:
                    failures.append(f"memory: {name} dbsize {n} != {args.memory_keys}")
            print(f"   ratio turretd/redis-server VmRSS: {fmt_ratio(rows['turretd'][1], rows['redis'][1])} "
                  f"(target <= 1.0x)\n")
            for s in servers.values():
                with harness.RespConn(s.port, timeout=60) as c:
                    c.call("FLUSHALL")

        if "clients" not in skip:
            n = max(200000, args.many_clients * 40)
            print(f"== {args.many_clients} concurrent clients: redis-benchmark -c {args.many_clients} -t set,get "
                  f"-n {n} (turretd)")
            for t in ("set", "get"):
                rps, out, rc = run_benchmark(turret.port, t, n, args.many_clients, 1, args.keyspace)
                bad = rc != 0 or rps <= 0 or "rror" in out
                print(f"   {t.upper()}: {rps:,.0f} req/s, exit {rc}, errors: {'YES' if bad else 'none'}")
                if bad:
                    failures.append(f"{args.many_clients} clients {t}: {out[-1500:]}")
            if not turret.alive():
                failures.append("turretd died during the many-clients run")
            print()

        if "standard" not in skip:
            print("== redis-benchmark -t set,get,incr,mset (turretd, -n 100000)")
            argv = [harness.REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(turret.port), "-t", "set,get,incr,mset",
                    "-n", "100000", "-q"]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            out = (p.stdout + p.stderr).replace("\r", "\n")
            lines = [l.strip() for l in out.splitlines() if "requests per second" in l]
            for l in lines:
                print("   " + l)
            if p.returncode != 0 or "rror" in out or len(lines) != 4:
                failures.append(f"standard tests: exit {p.returncode}\n{out[-1500:]}")
                print("   errors: YES")
            else:
                print("   errors: none")
            print()
    finally:
        for s in servers.values():
            s.cleanup()
    if failures:
        print("FAILURES:\n" + "\n".join(failures))
        return 1
    print("all bench checks ran without errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
