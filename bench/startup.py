#!/usr/bin/python3
"""turretd's binary size and start-up time, for one or two builds side by side (see bench/README.md).

    bench/startup.py [--turretd PATH] [--baseline PATH] [--plugin PATH] [--runs N]

For each binary:
1. Size: the file, its text/data/bss (`size`), and the dynamic symbol table (.dynsym + .dynstr + .gnu.hash), which is
   what exporting symbols for plugins costs.
2. `turretd --version`: exec, dynamic loading and relocation, static initialisers, exit. Median wall time of N runs.
3. Time to the first PONG: spawn turretd on a config with one RESP listener on a free port, connect and PING until
   it answers. Median of N/10 runs. With --plugin, once more with `plugins: [PATH]` and a pipeline using the layer
   `hello` (examples/plugins), for the turretd under test.
The runs of the two binaries alternate, so a slow drift of the machine hits both alike; compare the ratios.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402  (free ports)


def sizes(binary: str) -> dict[str, int]:
    out = {"file": os.path.getsize(binary)}
    text = subprocess.run(["size", binary], capture_output=True, text=True, check=True).stdout.splitlines()[1].split()
    out["text"], out["data"], out["bss"] = int(text[0]), int(text[1]), int(text[2])
    sections = subprocess.run(["readelf", "-S", "-W", binary], capture_output=True, text=True, check=True).stdout
    dyn = 0
    for line in sections.splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 5 and parts[1] in (".dynsym", ".dynstr", ".gnu.hash"):
            dyn += int(parts[5], 16)
    out["dynamic symbols"] = dyn
    return out


def version_run(binary: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([binary, "--version"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def first_pong(binary: str, config_dir: str, plugin: str | None) -> float:
    port = harness.free_port()
    lines = ["server: {threads: 2, shutdown_grace: 1s}", "logging: {level: warn}",
             f"listeners: [{{name: resp, protocol: resp, address: '127.0.0.1:{port}'}}]"]
    if plugin:
        lines += [f"plugins: ['{plugin}']", "pipeline: [{layer: hello}]"]
    cfg = os.path.join(config_dir, f"startup-{port}.yaml")
    Path(cfg).write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{binary} exited with {proc.returncode}: {proc.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.0005)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turretd", default=os.environ.get("TURRETD", str(ROOT / "build" / "services" / "turretd")))
    ap.add_argument("--baseline", help="a second turretd binary (e.g. a build before a change)")
    ap.add_argument("--plugin",
                    help="a plugin registering the layer `hello` (build/examples/plugins/libturret_hello.so)")
    ap.add_argument("--runs", type=int, default=200, help="--version runs per binary (first-PONG runs: runs / 10)")
    args = ap.parse_args()
    if args.plugin:
        args.plugin = os.path.abspath(args.plugin)  # (a relative path in a config is relative to the config file)
    binaries = {"turretd": args.turretd}
    if args.baseline:
        binaries["baseline"] = args.baseline

    print("== size (bytes)")
    rows = {name: sizes(b) for name, b in binaries.items()}
    keys = list(next(iter(rows.values())))
    print(f"{'':>9} " + " ".join(f"{k:>16}" for k in keys))
    for name, r in rows.items():
        print(f"{name:>9} " + " ".join(f"{r[k]:>16,}" for k in keys))
    if args.baseline:
        print(f"{'ratio':>9} " + " ".join(f"{rows['turretd'][k] / max(rows['baseline'][k], 1):>15.3f}x" for k in keys))

    version = {name: [] for name in binaries}
    pong = {name: [] for name in binaries}
    pong_plugin: list[float] = []
    with tempfile.TemporaryDirectory(prefix="turret-startup-") as d:
        for i in range(args.runs):
            for name in (binaries if i % 2 == 0 else reversed(list(binaries))):
                version[name].append(version_run(binaries[name]))
        for i in range(max(1, args.runs // 10)):
            for name in (binaries if i % 2 == 0 else reversed(list(binaries))):
                pong[name].append(first_pong(binaries[name], d, None))
            if args.plugin:
                pong_plugin.append(first_pong(args.turretd, d, args.plugin))

    print(f"\n== start-up, median (ms): --version x{args.runs}, first PONG x{max(1, args.runs // 10)}")
    for name in binaries:
        print(f"{name:>9}  --version {statistics.median(version[name]) * 1e3:7.2f}   "
              f"first PONG {statistics.median(pong[name]) * 1e3:7.2f}")
    if args.baseline:
        ratio = {k: statistics.median(v["turretd"]) / statistics.median(v["baseline"])
                 for k, v in (("version", version), ("pong", pong))}
        print(f"{'ratio':>9}  --version {ratio['version']:6.3f}x   first PONG {ratio['pong']:6.3f}x")
    if args.plugin:
        print(f"{'turretd':>9}  first PONG with the hello plugin loaded: {statistics.median(pong_plugin) * 1e3:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
