"""Hot reload of turretd's configuration (SIGHUP and POST /admin/reload), over real sockets.

- A pipeline changed from empty to [fault abort 100%] by SIGHUP: the same open redis-py connection gets the fault
  error on its next command; reverting the file and SIGHUP again restores it.
- An invalid file (an unknown key): the old configuration keeps serving, the log names file:line:col and key,
  POST /admin/reload answers 400 with the same text, turret_config_reloads_total{result="failure"} counts it.
- A listener added (started, serves, listed in the summary) and removed (drained: its port refuses connections).
- Reload under continuous load: redis-benchmark (RESP), wrk (HTTP GET /v1/kv/{key}) and h2load (gRPC Get) run for
  ~5 s while the configuration is reloaded 5 times: no connection error, no failed request (the tools' outputs and
  the server's own turret_commands_total{outcome} series).
- concurrency_limit state carries over: with max 1 and a request held in flight (fault delay), a reload of an
  unrelated change keeps the held slot counted: a second request still waits for the first.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import harness
from test_pipelines import listener_ports, metric

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

RELOADED = b"configuration reloaded from"


def config(pipeline: str = "", extra_listeners: list[tuple[str, str]] | None = None, extra: str = "",
           threads: int = 2, grace: str = "2s") -> str:
    """RESP, HTTP and gRPC listeners on 127.0.0.1:0 (names resp, http, grpc), the default pipeline `pipeline` (YAML
    list entries, already indented by 2), then `extra` top-level text."""
    lines = ["server:", f"  threads: {threads}", f"  shutdown_grace: {grace}", "logging:", "  level: info",
             "listeners:"]
    for name, protocol in [("resp", "resp"), ("http", "http"), ("grpc", "grpc")] + (extra_listeners or []):
        lines += [f"  - name: {name}", f"    protocol: {protocol}", "    address: 127.0.0.1:0"]
    lines += ["store:", "  kind: memory", "  databases: 16"]
    if pipeline:
        lines += ["pipeline:", pipeline.rstrip("\n")]
    return "\n".join(lines) + "\n" + (extra.strip("\n") + "\n" if extra else "")


def post_reload(http_port: int) -> tuple[int, dict]:
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=harness.IO_TIMEOUT * 2)
    try:
        c.request("POST", "/admin/reload", body=b"", headers={"Content-Length": "0"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


class ReloadBase(unittest.TestCase):
    TEXT = config()

    def setUp(self):
        harness.require_turretd(self)
        self.srv = harness.start_target(self, self.TEXT)
        ports = listener_ports(self.srv, ["resp", "http", "grpc"])
        self.resp, self.http, self.grpc = ports["resp"], ports["http"], ports["grpc"]

    def write(self, text: str) -> None:
        Path(self.srv.config_path).write_text(text)

    def log(self) -> bytes:
        return Path(self.srv.log_path).read_bytes()

    def sighup_and_wait(self, text: str | None = None, expect: bytes = RELOADED) -> None:
        """Writes `text` (if given), sends SIGHUP and waits for one more `expect` line in the log."""
        if text is not None:
            self.write(text)
        before = self.log().count(expect)
        self.srv.signal(signal.SIGHUP)
        ok = harness.wait_for(lambda: self.log().count(expect) > before, timeout=harness.START_TIMEOUT)
        self.assertTrue(ok, f"no new {expect!r} in the log:\n{self.srv.log_text()}")

    def reloads(self, result: str) -> float:
        return metric(self.http, f'turret_config_reloads_total{{result="{result}"}}')


class ReloadPipelines(ReloadBase):
    @unittest.skipIf(redis is None, "python3-redis not available")
    def test_sighup_swaps_the_pipeline_under_an_open_connection(self):
        r = redis.Redis(port=self.resp, socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(r.close)
        r.set("k", "v")
        self.assertEqual(r.get("k"), b"v")
        t0 = metric(self.http, "turret_config_last_reload_success_timestamp_seconds")
        self.assertGreater(t0, 1.6e9)  # set at start-up

        self.sighup_and_wait(config("  - layer: fault\n    abort: {percent: 100, error: unavailable}\n"))
        with self.assertRaises(redis.exceptions.ResponseError) as e:
            r.get("k")
        self.assertRegex(str(e.exception), r"^(ERR )?(unavailable: )?injected fault$")
        self.assertEqual(r.connection_pool._created_connections, 1)  # the same connection
        # POST /admin/reload goes through the listener's pipeline like any request: this one fails every request.
        status, body = post_reload(self.http)
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["code"], "unavailable")
        self.assertEqual(self.reloads("success"), 1)

        self.sighup_and_wait(config())
        self.assertEqual(r.get("k"), b"v")
        self.assertEqual(r.connection_pool._created_connections, 1)
        self.assertEqual(self.reloads("success"), 2)
        self.assertEqual(self.reloads("failure"), 0)
        self.assertGreaterEqual(metric(self.http, "turret_config_last_reload_success_timestamp_seconds"), t0)

    def test_invalid_file_keeps_the_old_configuration(self):
        bad = config("  - layer: fault\n    abort: {percent: 100, error: unavailable}\n").replace(
            "  shutdown_grace: 2s\n", "  shutdown_grace: 2s\n  colour: blue\n")
        line = bad.splitlines().index("  colour: blue") + 1
        expected = f"{self.srv.config_path}:{line}:3: server.colour: unknown key 'colour'"
        self.sighup_and_wait(bad, expect=b"reload: invalid configuration")
        self.assertIn(expected.encode(), self.log())
        with harness.RespConn(self.resp) as c:
            self.assertEqual(c.call("SET", "a", "1"), b"+OK\r\n")  # the old (empty) pipeline still serves
        status, body = post_reload(self.http)
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_config")
        self.assertTrue(body["error"]["message"].startswith(expected), body)
        self.assertEqual(self.reloads("failure"), 2)
        self.assertEqual(self.reloads("success"), 0)
        with harness.RespConn(self.resp) as c:
            self.assertEqual(c.call("GET", "a"), b"$1\r\n1\r\n")

        # Fixed file, through the endpoint: 200 and the summary.
        self.write(config("  - layer: timeout\n    duration: 2s\n"))
        status, body = post_reload(self.http)
        self.assertEqual(status, 200, body)
        self.assertTrue(body["reloaded"])
        self.assertIn({"name": "default", "layers": 1, "change": "changed"}, body["pipelines"])
        self.assertEqual(body["listeners"]["unchanged"], ["resp", "http", "grpc"])
        self.assertEqual(body["listeners"]["added"], [])
        self.assertEqual(self.reloads("success"), 1)

    def test_settings_that_need_a_restart_are_reported(self):
        self.write(config(threads=3))
        status, body = post_reload(self.http)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["not_applied"]), 1, body)
        self.assertTrue(body["not_applied"][0].startswith("server.threads: "), body)
        self.assertIn(b"reload: server.threads: changed in the file; needs a restart", self.log())


class ReloadListeners(ReloadBase):
    def test_listener_added_and_removed(self):
        self.write(config(extra_listeners=[("extra", "resp")]))
        status, body = post_reload(self.http)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["listeners"]["added"], ["extra"])
        port = listener_ports(self.srv, ["extra"])["extra"]
        with harness.RespConn(port) as c:
            self.assertEqual(c.call("PING"), b"+PONG\r\n")
        idle = harness.RespConn(port)
        self.addCleanup(idle.close)
        self.assertEqual(idle.call("SET", "x", "1"), b"+OK\r\n")
        keep = harness.RespConn(self.resp)  # a connection of a listener that stays
        self.addCleanup(keep.close)
        self.assertEqual(keep.call("PING"), b"+PONG\r\n")

        self.sighup_and_wait(config(), expect=b"listener extra drained")
        self.assertTrue(idle.read_eof(), "the removed listener's idle connection was not closed")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        self.assertEqual(keep.call("GET", "x"), b"$1\r\n1\r\n")  # untouched
        self.assertIn(b"removed=[extra]", self.log())

    def test_changed_listener_is_restarted(self):
        self.write(config(extra_listeners=[("extra", "resp")]))
        self.assertEqual(post_reload(self.http)[0], 200)
        self.write(config(extra_listeners=[("extra", "http")]))
        status, body = post_reload(self.http)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["listeners"]["restarted"], ["extra"])
        http_extra = re.compile(rb"listening http \S*?:(\d+) name=extra")
        harness.wait_for(lambda: http_extra.search(self.log()), timeout=5)
        ports = [int(m.group(1)) for m in http_extra.finditer(self.log())]
        self.assertEqual(len(ports), 1, self.srv.log_text())
        c = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=harness.IO_TIMEOUT)
        self.addCleanup(c.close)
        c.request("GET", "/healthz")
        self.assertEqual(c.getresponse().status, 200)


HELLO_PLUGIN = os.environ.get("TURRET_HELLO_PLUGIN")


class ReloadPlugins(ReloadBase):
    def test_a_plugin_added_by_a_reload_is_loaded_and_stays(self):
        if not HELLO_PLUGIN:
            raise unittest.SkipTest("$TURRET_HELLO_PLUGIN not set (run through ctest)")
        with_plugin = config("  - layer: hello\n", extra=f"plugins:\n  - {HELLO_PLUGIN}\n")
        self.write(with_plugin)
        status, body = post_reload(self.http)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["plugins_loaded"], [HELLO_PLUGIN])
        with harness.RespConn(self.resp) as c:
            self.assertEqual(c.call("PING"), b"+PONG\r\n")
        self.assertEqual(metric(self.http, 'turret_hello_requests_total{pipeline="default"}'), 1)

        # No longer listed: it stays loaded (code is never unloaded), the reload says so.
        self.write(config())
        status, body = post_reload(self.http)
        self.assertEqual(status, 200, body)
        self.assertIn(f"reload: plugin {HELLO_PLUGIN} is no longer listed; it stays loaded".encode(), self.log())


def parse_wrk(out: str) -> tuple[int, list[str]]:
    m = re.search(r"(\d+) requests in", out)
    problems = [l.strip() for l in out.splitlines() if "Socket errors" in l or "Non-2xx" in l]
    return (int(m.group(1)) if m else 0), problems


def parse_h2load(out: str) -> tuple[int, list[str]]:
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                  r"(\d+) timeout", out)
    if not m:
        return 0, [f"h2load output not understood: {out[-2000:]}"]
    done, ok, failed, errored, timeout = map(int, m.groups())
    problems = [] if failed == errored == timeout == 0 and ok == done else [m.group(0)]
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if codes and any(int(x) for x in codes.groups()[1:]):
        problems.append(codes.group(0))
    return ok, problems


@unittest.skipUnless(all(shutil.which(t) for t in ("wrk", "h2load")) and os.path.exists(harness.REDIS_BENCHMARK),
                     "redis-benchmark, wrk and h2load are needed")
class ReloadUnderLoad(ReloadBase):
    LOAD_SECONDS = 5
    PIPELINES = ["  - layer: timeout\n    duration: 2s\n  - layer: concurrency_limit\n    max: 10000\n",
                 "  - layer: timeout\n    duration: 3s\n  - layer: concurrency_limit\n    max: 10000\n"]

    def setUp(self):
        self.TEXT = config(self.PIPELINES[0], threads=2)
        super().setUp()

    def test_five_reloads_under_load_fail_nothing(self):
        value = "v" * 64
        with harness.RespConn(self.resp) as c:
            self.assertEqual(c.call("SET", "bench:key", value), b"+OK\r\n")
        work = Path(tempfile.mkdtemp(prefix="turret-reload-"))
        self.addCleanup(shutil.rmtree, work, True)
        key = b"bench:key"
        (work / "get.bin").write_bytes(b"\x00" + struct.pack(">I", 2 + len(key)) + b"\x0a" + bytes([len(key)]) + key)

        secs = self.LOAD_SECONDS
        procs = {
            # -l: loop until stopped. redis-benchmark exits at the first error reply or lost connection (and says
            # why): it must still be running at the end.
            "redis-benchmark": subprocess.Popen(
                ["stdbuf", "-oL", harness.REDIS_BENCHMARK, "-p", str(self.resp), "-c", "8", "-n", "20000", "-t",
                 "get", "-l", "-q"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
            "wrk": subprocess.Popen(
                ["wrk", "-t1", "-c8", f"-d{secs}s", f"http://127.0.0.1:{self.http}/v1/kv/bench:key"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
            "h2load": subprocess.Popen(
                ["h2load", "-c4", "-m4", "-t1", "-D", str(secs), "-d", str(work / "get.bin"), "-H",
                 "content-type: application/grpc", "-H", "te: trailers",
                 f"http://127.0.0.1:{self.grpc}/turret.kv.v1.KV/Get"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
        }
        outputs: dict[str, str] = {}
        readers = []
        for name, p in procs.items():
            t = threading.Thread(target=lambda n=name, p=p: outputs.__setitem__(n, p.stdout.read().decode(
                errors="replace")), daemon=True)
            t.start()
            readers.append(t)
        try:
            time.sleep(0.7)
            for i in range(5):
                self.sighup_and_wait(config(self.PIPELINES[(i + 1) % 2], threads=2))
                time.sleep(0.6)
            self.assertIsNone(procs["redis-benchmark"].poll(), "redis-benchmark stopped early")
            time.sleep(max(0.0, secs - 0.7 - 5 * 0.7))
        finally:
            procs["redis-benchmark"].kill()
            procs["redis-benchmark"].wait()
            for name in ("wrk", "h2load"):
                try:
                    procs[name].wait(timeout=secs + 10)
                except subprocess.TimeoutExpired:
                    procs[name].kill()
            for t in readers:
                t.join(timeout=10)
            for p in procs.values():
                p.stdout.close()
        self.assertEqual(self.reloads("success"), 5)

        problems = {}
        rb = outputs.get("redis-benchmark", "")
        bad = [l for l in rb.replace("\r", "\n").splitlines() if "rror" in l or "closed" in l or "reset" in l]
        if bad:
            problems["redis-benchmark"] = bad[:5]
        wrk_requests, wrk_problems = parse_wrk(outputs.get("wrk", ""))
        if wrk_problems or wrk_requests == 0:
            problems["wrk"] = wrk_problems or [outputs.get("wrk", "")[-1000:]]
        h2_ok, h2_problems = parse_h2load(outputs.get("h2load", ""))
        if h2_problems or h2_ok == 0:
            problems["h2load"] = h2_problems
        self.assertEqual(problems, {}, f"\n{self.srv.log_text()}")

        # The server's own account: every command of every front end succeeded, and each tool did send some.
        counts = {}
        for fe, cmd in (("resp", "get"), ("http", "get"), ("grpc", "get")):
            ok = metric(self.http, f'turret_commands_total{{frontend="{fe}",command="{cmd}",outcome="ok"}}')
            counts[fe] = int(ok)
            self.assertGreater(ok, 100, fe)
            for outcome in ("error", "failed"):
                try:
                    n = metric(self.http, f'turret_commands_total{{frontend="{fe}",command="{cmd}",outcome="{outcome}"}}')
                except AssertionError:
                    n = 0
                self.assertEqual(n, 0, f"{fe} {outcome}")
        self.assertNotIn(b"closing", self.log())
        print(f"\n  5 reloads under load, GETs answered: {counts} (wrk {wrk_requests}, h2load {h2_ok} succeeded)",
              file=sys.stderr)


class ReloadCarriesLimiterState(ReloadBase):
    PIPELINE = "  - layer: concurrency_limit\n    max: 1\n  - layer: fault\n    delay: {duration: 1500ms, percent: 100}\n"

    def setUp(self):
        self.TEXT = config(self.PIPELINE)
        super().setUp()

    def test_held_slot_still_counts_after_a_reload(self):
        results = {}

        def timed(name: str) -> None:
            t = time.monotonic()
            with harness.RespConn(self.resp, timeout=10) as c:
                results[name] = (c.call("PING"), time.monotonic() - t)

        first = threading.Thread(target=timed, args=("first",))
        first.start()
        time.sleep(0.2)
        # An unrelated change: one more pipeline; the default pipeline's entries stay as they are.
        self.sighup_and_wait(config(self.PIPELINE, extra="pipelines:\n  spare:\n    - layer: timeout\n"
                                                         "      duration: 1s\n"))
        second = threading.Thread(target=timed, args=("second",))
        second.start()
        first.join()
        second.join()
        self.assertEqual(results["first"][0], b"+PONG\r\n")
        self.assertEqual(results["second"][0], b"+PONG\r\n")
        # With the slot carried over the second waits for the first (~1.3 s left) and then its own delay (1.5 s); with
        # a fresh limiter it would take 1.5 s.
        self.assertGreater(results["second"][1], 2.2, results)


if __name__ == "__main__":
    unittest.main()
