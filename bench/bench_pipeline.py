#!/usr/bin/python3
"""What a pipeline of layers costs turretd: server CPU per request of turretd with a pipeline against the same turretd
with an empty one, measured side by side (see bench/README.md).

Servers (one turretd binary, one process each, RESP listener, default threads):
  empty    pipeline: []
  default  the embedded default configuration's pipeline (turretd --print-default-config), unchanged
  NAME     every --pipeline NAME=FILE: a YAML list of layer entries (e.g. bench/pipelines/full.yaml)
Each round runs redis-benchmark -c 50 -r 100000 (GET by default, -P 16 by default) against every server back to
back, the order alternating per round. Server CPU = utime+stime of the server process (/proc/PID/stat) sampled around
each run, divided by the run's requests. Prints per-run figures, then medians and the ratio of each pipeline's CPU
per request to the empty pipeline's (the issue's target for the default pipeline: at most 1.05x).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
import harness  # noqa: E402
from bench_resp import find_turretd, measured_run  # noqa: E402


def default_pipeline(binary: str) -> str:
    """The `pipeline:` block of the embedded default configuration, as YAML list text."""
    text = subprocess.run([binary, "--print-default-config"], capture_output=True, text=True, check=True).stdout
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("pipeline:"):
            inside = True
            continue
        if inside:
            if line and not line.startswith(" ") and not line.startswith("-"):
                break
            lines.append(line)
    return "\n".join(lines) + "\n"


def server_config(threads: int, pipeline_yaml: str) -> str:
    body = pipeline_yaml.strip("\n")
    top = "pipeline: []\n" if not body.strip() else "pipeline:\n" + "\n".join(
        ("  " + l if not l.startswith("  ") else l) for l in body.splitlines()) + "\n"
    return harness.turretd_yaml(threads=threads, level="warn", top_extra=top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turretd", help="turretd binary (default: $TURRETD, then build/services/turretd)")
    ap.add_argument("--pipeline", action="append", default=[], metavar="NAME=FILE",
                    help="another pipeline to measure: a YAML file holding a list of layer entries")
    ap.add_argument("--test", default="get", help="redis-benchmark test (default get)")
    ap.add_argument("--depth", type=int, default=16, help="redis-benchmark -P (default 16)")
    ap.add_argument("-n", type=int, default=3000000, help="requests per run (default 3,000,000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="turretd server.threads (0 = auto)")
    ap.add_argument("--quick", action="store_true", help="tiny runs to check the script itself")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rounds = 100000, 1

    binary = find_turretd(args.turretd)
    harness.TURRETD = binary
    pipelines = {"empty": "", "default": default_pipeline(binary)}
    for spec in args.pipeline:
        name, _, file = spec.partition("=")
        pipelines[name] = Path(file).read_text()
    print(f"turretd: {binary}")
    for name, text in pipelines.items():
        print(f"pipeline {name}: {' '.join(text.split()) or '[]'}")
    servers = {}
    try:
        for name, text in pipelines.items():
            servers[name] = harness.TurretServer(server_config(args.threads, text))
        print(f"\n== redis-benchmark -c 50 -r 100000 -t {args.test} -P {args.depth} -n {args.n}; {args.rounds} rounds")
        print(f"{'round':>5} {'pipeline':>10} {'req/s':>12} {'cpu us/req':>11}")
        results = {name: [] for name in servers}
        for rnd in range(args.rounds):
            order = list(servers)
            if rnd % 2:
                order.reverse()
            for name in order:
                r = measured_run(servers[name], args.test, args.n, 50, args.depth, 100000)
                results[name].append(r)
                print(f"{rnd + 1:>5} {name:>10} {r['rps']:>12,.0f} {r['cpu_us_per_req']:>11.4f}", flush=True)
        base = statistics.median(r["cpu_us_per_req"] for r in results["empty"])
        print("\n== medians (cpu ratio = pipeline / empty)")
        for name, rs in results.items():
            cpu = statistics.median(r["cpu_us_per_req"] for r in rs)
            rps = statistics.median(r["rps"] for r in rs)
            print(f"{name:>10}: {rps:>12,.0f} req/s  {cpu:.4f} us/req  cpu ratio {cpu / base:.3f}x")
    finally:
        for s in servers.values():
            s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
