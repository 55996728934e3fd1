"""Named pipelines and the fault layer, over real sockets.

- One turretd, two RESP listeners on different named pipelines: `chaos` (fault abort 100% unavailable) fails every
  command, the other (the empty default pipeline) works, on the same keyspace; redis-cli and python3-redis.
- turretd_fault_injected_total{pipeline,kind} counts the aborts (GET /metrics).
- --check-config through the real binary: an unknown pipeline name, and "default" defined twice, name file, line,
  column and key.
- [timeout 50ms, fault delay 200ms at 50%]: every request gets exactly one reply, the timeout error or its own
  answer, and the connection stays in sync: RESP, HTTP (504) and gRPC (DEADLINE_EXCEEDED).
- [fault abort] (fails before calling inward) and [fault abort, phase: response] (the core runs and writes its reply,
  then the layer fails: a partial write, here of a 1 MiB value): exactly one reply per request, the layer's error,
  and the connection stays usable, on RESP, HTTP and gRPC.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import harness

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

LISTEN_RE = re.compile(rb"listening (resp|http|grpc) \S*?:(\d+) name=(\S+)")


def listener_ports(srv: harness.ServerProcess, names: list[str]) -> dict[str, int]:
    """The bound port of each listener (by name), from turretd's log."""
    deadline = time.monotonic() + harness.START_TIMEOUT
    while True:
        found = {m.group(3).decode(): int(m.group(2)) for m in LISTEN_RE.finditer(Path(srv.log_path).read_bytes())}
        if all(n in found for n in names):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"listeners {names} not all in the log:\n{srv.log_text()}")
        time.sleep(0.02)


def config(listeners: list[tuple[str, str, str | None]], pipelines: str, threads: int = 2) -> str:
    """A turretd config: listeners as (name, protocol, pipeline or None) on 127.0.0.1:0, then `pipelines`."""
    lines = ["server:", f"  threads: {threads}", "  shutdown_grace: 5s", "logging:", "  level: info", "listeners:"]
    for name, protocol, pipeline in listeners:
        lines += [f"  - name: {name}", f"    protocol: {protocol}", "    address: 127.0.0.1:0"]
        if pipeline:
            lines.append(f"    pipeline: {pipeline}")
    lines += ["store:", "  kind: memory", "  databases: 16"]
    return "\n".join(lines) + "\n" + pipelines.strip("\n") + "\n"


def metric(http_port: int, series: str) -> float:
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=harness.IO_TIMEOUT)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no series {series} in /metrics:\n{text}")


def have_grpc() -> bool:
    """Whether the gRPC client side is usable here (python3-grpcio and the generated modules)."""
    try:
        import grpc_support
        grpc_support.stubs()
        return True
    except unittest.SkipTest:
        return False


def kv_stub(test: unittest.TestCase, port: int):
    """(the generated modules, a KV stub) on a channel to 127.0.0.1:port, closed at the test's cleanup."""
    import grpc
    import grpc_support
    pb = grpc_support.stubs()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    test.addCleanup(channel.close)
    return pb, pb["kv_grpc"].KVStub(channel)


class TwoListenersTwoPipelines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        text = config([("plain", "resp", None), ("chaos", "resp", "chaos"), ("http", "http", None)], """
pipelines:
  chaos:
    - layer: fault
      abort: {percent: 100, error: unavailable}
""")
        cls.srv = harness.start_target(cls, text)
        ports = listener_ports(cls.srv, ["plain", "chaos", "http"])
        cls.plain, cls.chaos, cls.http = ports["plain"], ports["chaos"], ports["http"]

    def assert_injected(self, error: str) -> None:
        # Today's RESP front end sends "ERR <message>" for any layer error; once it sends the mapped error
        # (turret/error_mapping.hpp) this is "ERR unavailable: injected fault". Both are the injected fault.
        # (redis-py drops the "ERR " of the errors it raises.)
        self.assertRegex(error, r"^(ERR )?(unavailable: )?injected fault$")

    def test_raw_resp_every_command_fails_on_chaos_only(self):
        with harness.RespConn(self.plain) as ok, harness.RespConn(self.chaos) as bad:
            self.assertEqual(ok.call("SET", "k", "v"), b"+OK\r\n")
            for cmd in (["GET", "k"], ["PING"], ["SET", "k", "w"], ["DEL", "k"], ["ECHO", "x"]):
                with self.subTest(cmd=cmd):
                    reply = bad.call(*cmd)
                    self.assertTrue(reply.startswith(b"-"), reply)
                    self.assert_injected(reply[1:-2].decode())
            # nothing reached the keyspace through chaos; the plain listener still works on it
            self.assertEqual(ok.call("GET", "k"), b"$1\r\nv\r\n")
            self.assertEqual(ok.call("PING"), b"+PONG\r\n")

    @unittest.skipIf(redis is None, "python3-redis not installed")
    def test_redis_py(self):
        good = redis.Redis(host="127.0.0.1", port=self.plain, socket_timeout=harness.IO_TIMEOUT)
        bad = redis.Redis(host="127.0.0.1", port=self.chaos, socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(good.close)
        self.addCleanup(bad.close)
        self.assertTrue(good.set("py", "1"))
        self.assertEqual(good.incr("py"), 2)
        for call in (lambda: bad.get("py"), lambda: bad.set("py", "x"), bad.ping, lambda: bad.incr("py")):
            with self.assertRaises(redis.exceptions.ResponseError) as cm:
                call()
            # a ResponseError, not a ConnectionError: the client keeps its connection
            self.assert_injected(str(cm.exception))
        self.assertEqual(good.get("py"), b"2")

    def test_redis_cli(self):
        cli = harness.REDIS_CLI
        if not os.path.exists(cli):
            self.skipTest("redis-cli not installed")
        ok = subprocess.run([cli, "-p", str(self.plain), "SET", "cli", "1"], capture_output=True, timeout=10)
        self.assertEqual(ok.stdout.strip(), b"OK")
        bad = subprocess.run([cli, "-p", str(self.chaos), "GET", "cli"], capture_output=True, timeout=10)
        out = bad.stdout.decode().strip()
        self.assertTrue(out.startswith("ERR "), out)  # redis-cli prints "(error) " only on a terminal
        self.assert_injected(out)

    def test_fault_metric_counts_aborts_by_pipeline(self):
        series = 'turret_fault_injected_total{pipeline="chaos",kind="abort"}'
        before = metric(self.http, series)
        with harness.RespConn(self.chaos) as bad, harness.RespConn(self.plain) as ok:
            for i in range(5):
                bad.call("GET", f"m{i}")
            for i in range(3):
                ok.call("GET", f"m{i}")  # the default pipeline has no fault layer: not counted
        self.assertEqual(metric(self.http, series) - before, 5)
        self.assertEqual(metric(self.http, 'turret_fault_injected_total{pipeline="chaos",kind="delay"}'), 0)


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.turretd = harness.require_turretd(self)
        self.dir = tempfile.mkdtemp(prefix="turret-pipes-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def check(self, text: str) -> subprocess.CompletedProcess:
        path = os.path.join(self.dir, "turret.yaml")
        Path(path).write_text(text)
        self.path = path
        return subprocess.run([self.turretd, "--check-config", path], capture_output=True, timeout=20)

    def assert_rejected(self, text: str, at_line: str, message: str) -> None:
        """--check-config exits 1 with exactly "FILE:LINE:message", LINE being that of the line `at_line`."""
        p = self.check(text)
        self.assertEqual(p.returncode, 1, p.stdout)
        line = text.splitlines().index(at_line) + 1
        self.assertEqual(p.stderr.decode().strip(), f"{self.path}:{line}:{message}")

    def test_named_pipelines_ok(self):
        p = self.check(config([("a", "resp", "chaos"), ("b", "resp", None), ("c", "resp", "default")], """
pipeline:
  - {layer: timeout, duration: 2s}
pipelines:
  chaos:
    - layer: fault
      delay: {duration: 10ms, percent: 0.5}
      abort: {percent: 1, error: overloaded}
  empty: []
"""))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"configuration OK", p.stdout)

    def test_unknown_pipeline_names_file_line_and_key(self):
        text = config([("a", "resp", None), ("b", "resp", "chaoss")], """
pipelines:
  chaos: [{layer: fault, abort: {percent: 1, error: internal}}]
""")
        self.assert_rejected(text, "    pipeline: chaoss",
                             "15: listeners[1].pipeline: unknown pipeline 'chaoss' (defined: chaos, default)")

    def test_default_defined_twice(self):
        text = config([("a", "resp", None)], """
pipeline:
  - {layer: timeout, duration: 2s}
pipelines:
  default:
    - {layer: timeout, duration: 1s}
""")
        self.assert_rejected(text, "  default:", "3: pipelines.default: the pipeline 'default' is defined twice: by "
                             "the top-level 'pipeline:' and here (keep one)")

    def test_layer_error_inside_a_named_pipeline(self):
        text = config([("a", "resp", "chaos")], """
pipelines:
  chaos:
    - layer: fault
      abort: {percent: 10, error: teapot}
""")
        self.assert_rejected(text, "      abort: {percent: 10, error: teapot}",
                             "35: pipelines.chaos[0].abort.error: unknown error 'teapot' (expected unavailable, "
                             "overloaded, timeout or internal)")


# [timeout 50ms, fault delay 200ms] on half the requests: exactly one reply per request on every protocol.
SLOW = """
pipelines:
  slow:
    - layer: timeout
      duration: 50ms
    - layer: fault
      delay: {duration: 200ms, percent: 50}
"""


class TimeoutOverFaultDelay(unittest.TestCase):
    N = 16

    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        listeners = [("resp", "resp", "slow"), ("http", "http", "slow"), ("plain", "resp", None)]
        cls.grpc = have_grpc()
        if cls.grpc:
            listeners.append(("grpc", "grpc", "slow"))
        cls.srv = harness.start_target(cls, config(listeners, SLOW))
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])

    def test_resp(self):
        timeouts = answers = 0
        with harness.RespConn(self.ports["resp"]) as c:
            for i in range(self.N):
                reply = c.call("ECHO", f"m{i}")
                if reply == b"-ERR request timed out\r\n":
                    timeouts += 1
                else:
                    self.assertEqual(reply, f"${len(f'm{i}')}\r\nm{i}\r\n".encode())  # its own answer, in order
                    answers += 1
            time.sleep(0.3)  # past every delay: a late second reply would arrive now
            self.assertEqual(c.read_available(0.2), b"")
        self.assertGreater(timeouts, 0)
        self.assertGreater(answers, 0)

    def test_http(self):
        port = self.ports["http"]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.IO_TIMEOUT)
        self.addCleanup(c.close)
        statuses = []
        for i in range(self.N):
            c.request("GET", f"/v1/kv/nothing{i}")  # one keep-alive connection throughout
            r = c.getresponse()
            body = r.read()
            statuses.append(r.status)
            if r.status == 504:
                self.assertEqual(json.loads(body)["error"]["code"], "timeout")
            else:
                self.assertEqual(r.status, 404, body)
        self.assertIn(504, statuses)
        self.assertIn(404, statuses)

    def test_grpc(self):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        pb, kv = kv_stub(self, self.ports["grpc"])
        codes = []
        for i in range(self.N):
            try:
                kv.Get(pb["kv"].GetRequest(key=f"g{i}".encode()), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
        self.assertIn(grpc.StatusCode.DEADLINE_EXCEEDED, codes)
        self.assertIn(grpc.StatusCode.NOT_FOUND, codes)
        self.assertEqual(set(codes) - {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.NOT_FOUND}, set())

    def test_other_pipeline_is_not_delayed(self):
        with harness.RespConn(self.ports["plain"]) as c:
            t0 = time.monotonic()
            for i in range(self.N):
                self.assertEqual(c.call("PING"), b"+PONG\r\n")
            self.assertLess(time.monotonic() - t0, 0.8 * harness.TIMEOUT_SCALE)


FAILING = """
pipelines:
  abort:
    - layer: fault
      abort: {percent: 100, error: unavailable}
  partial:
    - layer: fault
      abort: {percent: 100, error: internal, phase: response}
"""

BIG = 1 << 20  # a reply the core writes in full before the layer fails


class OneReplyWhenTheLayerFails(unittest.TestCase):
    """Each failing pipeline on each protocol: the error is the one reply, nothing of the core's reply leaks out."""

    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        listeners = [("plain", "resp", None)]
        cls.grpc = have_grpc()
        for p in ("abort", "partial"):
            listeners += [(f"resp_{p}", "resp", p), (f"http_{p}", "http", p)]
            if cls.grpc:
                listeners.append((f"grpc_{p}", "grpc", p))
        cls.srv = harness.start_target(cls, config(listeners, FAILING))
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])
        with harness.RespConn(cls.ports["plain"]) as c:
            assert c.call("SET", "big", b"x" * BIG) == b"+OK\r\n"

    EXPECTED_RESP = {"abort": b"-ERR unavailable: injected fault\r\n", "partial": b"-ERR injected fault\r\n"}

    def check_resp(self, pipeline: str):
        with harness.RespConn(self.ports[f"resp_{pipeline}"]) as c, harness.RespConn(self.ports["plain"]) as plain:
            for i, cmd in enumerate((["GET", "big"], ["SET", f"w_{pipeline}", "v"], ["MGET", "big", "big"],
                                     ["ECHO", "x"], ["PING"])):
                with self.subTest(cmd=cmd):
                    self.assertEqual(c.call(*cmd), self.EXPECTED_RESP[pipeline])
            # pipelined: three commands, three errors, nothing else
            c.send(harness.encode_command("GET", "big") + harness.encode_command("PING")
                   + harness.encode_command("GET", "big"))
            self.assertEqual(c.read_replies(3), [self.EXPECTED_RESP[pipeline]] * 3)
            self.assertEqual(c.read_available(0.3), b"")
            # request phase: the core never ran; response phase: it did (the SET applied), and failed afterwards
            self.assertEqual(plain.call("EXISTS", f"w_{pipeline}"), b":1\r\n" if pipeline == "partial" else b":0\r\n")

    def test_resp_abort(self):
        self.check_resp("abort")

    def test_resp_partial_write(self):
        self.check_resp("partial")

    def check_http(self, pipeline: str, status: int, code: str):
        c = http.client.HTTPConnection("127.0.0.1", self.ports[f"http_{pipeline}"], timeout=harness.IO_TIMEOUT)
        self.addCleanup(c.close)
        sock = None
        for method, path, body in (("GET", "/v1/kv/big", None), ("PUT", f"/v1/kv/h_{pipeline}", b"v"),
                                   ("GET", "/v1/kv/big", None)):
            c.request(method, path, body=body)  # one keep-alive connection throughout
            r = c.getresponse()
            data = r.read()
            self.assertEqual(r.status, status, data[:200])
            self.assertEqual(json.loads(data)["error"]["code"], code)
            self.assertLess(len(data), 1000)  # the error body only, none of the 1 MiB value
            if status == 503:
                self.assertIsNotNone(r.getheader("Retry-After"))
            sock = sock or c.sock
            self.assertIs(c.sock, sock)  # still the same connection
        c.request("GET", "/healthz")  # not a key-value route: answered without the pipeline
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertIs(c.sock, sock)

    def test_http_abort(self):
        self.check_http("abort", 503, "unavailable")

    def test_http_partial_write(self):
        self.check_http("partial", 500, "internal")

    def check_grpc(self, pipeline: str, code_name: str):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        pb, kv = kv_stub(self, self.ports[f"grpc_{pipeline}"])
        calls = [lambda: kv.Get(pb["kv"].GetRequest(key=b"big"), timeout=5),
                 lambda: kv.Set(pb["kv"].SetRequest(key=f"g_{pipeline}".encode(), value=b"v"), timeout=5),
                 lambda: kv.Get(pb["kv"].GetRequest(key=b"big"), timeout=5)]
        for call in calls:
            with self.assertRaises(grpc.RpcError) as cm:
                call()
            self.assertEqual(cm.exception.code(), getattr(grpc.StatusCode, code_name))
        with harness.RespConn(self.ports["plain"]) as plain:
            self.assertEqual(plain.call("EXISTS", f"g_{pipeline}"), b":1\r\n" if pipeline == "partial" else b":0\r\n")

    def test_grpc_abort(self):
        self.check_grpc("abort", "UNAVAILABLE")

    def test_grpc_partial_write(self):
        self.check_grpc("partial", "INTERNAL")


if __name__ == "__main__":
    unittest.main()
