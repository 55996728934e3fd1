"""The load_balance layer over real sockets.

turretd's store is one in-process core, so the endpoints of a load_balance entry are that core inside sub-pipelines
of their own: here `good` (none) and `bad` (a fault layer aborting every request with `unavailable`), balanced
round robin with outlier ejection after 3 consecutive failures. One such pipeline per protocol (each its own
balancer), so that each test sees its balancer fresh:
- the first requests alternate between the endpoints: exactly 3 fail (requests 2, 4 and 6, with the injected
  fault's error), then the bad endpoint is ejected and every following request succeeds: RESP (raw and redis-py),
  HTTP and gRPC;
- /metrics: turret_lb_ejections_total{pipeline} = 1, turret_lb_endpoints_healthy{pipeline} = 1,
  turret_lb_picks_total{pipeline,endpoint} = 3 for the bad endpoint;
- active health checks on the server's runtime take the bad endpoint out before any request reaches it;
- --check-config through the real binary: an unknown policy and a duplicate endpoint name name file, line and key.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import harness
from test_pipelines import config, have_grpc, kv_stub, listener_ports, metric

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

BALANCED = """
    - layer: load_balance
      policy: round_robin
      endpoints:
        - {name: good}
        - name: bad
          pipeline:
            - layer: fault
              abort: {percent: 100, error: unavailable}
      outlier: {consecutive_failures: 3, base_ejection: 60s}
"""

PROTOCOLS = ("resp", "redispy", "http", "grpc")


def pipelines() -> str:
    return "pipelines:\n" + "".join(f"  lb_{p}:\n{BALANCED}" for p in PROTOCOLS)


class EjectsTheFailingEndpoint(unittest.TestCase):
    WARMUP = 6  # requests 2, 4 and 6 reach the bad endpoint; the third failure ejects it
    AFTER = 24

    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        # "plain" first: the harness's start-up PING goes to the first RESP listener, and must not take a turn
        listeners = [("plain", "resp", None), ("resp", "resp", "lb_resp"), ("redispy", "resp", "lb_redispy"),
                     ("http", "http", "lb_http")]
        cls.grpc = have_grpc()
        if cls.grpc:
            listeners.append(("grpc", "grpc", "lb_grpc"))
        cls.srv = harness.start_target(cls, config(listeners, pipelines()))
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])

    def check_outcomes(self, outcomes: list[bool], pipeline: str) -> None:
        """Exactly 3 failures, all among the first WARMUP requests, then only successes; the metrics agree."""
        failed = [i for i, ok in enumerate(outcomes) if not ok]
        self.assertEqual(len(failed), 3, outcomes)
        self.assertTrue(all(i < self.WARMUP for i in failed), failed)
        self.assertTrue(all(outcomes[self.WARMUP:]))
        http_port = self.ports["http"]
        self.assertEqual(metric(http_port, f'turret_lb_ejections_total{{pipeline="{pipeline}"}}'), 1)
        self.assertEqual(metric(http_port, f'turret_lb_endpoints_healthy{{pipeline="{pipeline}"}}'), 1)
        self.assertEqual(metric(http_port, f'turret_lb_picks_total{{pipeline="{pipeline}",endpoint="bad"}}'), 3)
        self.assertEqual(metric(http_port, f'turret_lb_picks_total{{pipeline="{pipeline}",endpoint="good"}}'),
                         len(outcomes) - 3)

    def test_resp(self):
        outcomes = []
        with harness.RespConn(self.ports["resp"]) as c:
            self.assertEqual(c.call("SET", "lb", "v"), b"+OK\r\n")  # request 1: the good endpoint
            outcomes.append(True)
            for i in range(self.WARMUP + self.AFTER - 1):
                reply = c.call("GET", "lb")
                if reply.startswith(b"-"):
                    self.assertEqual(reply, b"-ERR unavailable: injected fault\r\n")
                    outcomes.append(False)
                else:
                    self.assertEqual(reply, b"$1\r\nv\r\n")
                    outcomes.append(True)
            # pipelined, after the ejection: every reply is the good endpoint's
            c.send(b"".join(harness.encode_command("GET", "lb") for _ in range(10)))
            self.assertEqual(c.read_replies(10), [b"$1\r\nv\r\n"] * 10)
        self.check_outcomes(outcomes + [True] * 10, "lb_resp")

    @unittest.skipIf(redis is None, "python3-redis not installed")
    def test_redis_py(self):
        r = redis.Redis(host="127.0.0.1", port=self.ports["redispy"], socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(r.close)
        outcomes = []
        for i in range(self.WARMUP + self.AFTER):
            try:
                r.set(f"py{i}", i)
                outcomes.append(True)
            except redis.exceptions.ResponseError as e:  # not a ConnectionError: the connection stays
                self.assertEqual(str(e), "unavailable: injected fault")
                outcomes.append(False)
        self.check_outcomes(outcomes, "lb_redispy")
        self.assertEqual(r.get(f"py{self.WARMUP + self.AFTER - 1}"), str(self.WARMUP + self.AFTER - 1).encode())

    def test_http(self):
        c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=harness.IO_TIMEOUT)
        self.addCleanup(c.close)
        outcomes = []
        for i in range(self.WARMUP + self.AFTER):
            c.request("PUT", f"/v1/kv/h{i}", body=b"v")  # one keep-alive connection throughout
            resp = c.getresponse()
            body = resp.read()
            if resp.status == 503:
                self.assertEqual(json.loads(body)["error"]["code"], "unavailable")
                outcomes.append(False)
            else:
                self.assertIn(resp.status, (200, 201, 204), body)
                outcomes.append(True)
        self.check_outcomes(outcomes, "lb_http")

    def test_grpc(self):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        pb, kv = kv_stub(self, self.ports["grpc"])
        outcomes = []
        for i in range(self.WARMUP + self.AFTER):
            try:
                kv.Set(pb["kv"].SetRequest(key=f"g{i}".encode(), value=b"v"), timeout=5)
                outcomes.append(True)
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                outcomes.append(False)
        self.check_outcomes(outcomes, "lb_grpc")


class HealthChecksTakeOutTheFailingEndpoint(unittest.TestCase):
    """Active health checks on the server's runtime: the bad endpoint's readiness probe fails (its fault aborts in
    ready()), so within a few intervals it is out of service, before any request; then every request succeeds."""

    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        text = config([("plain", "resp", None), ("resp", "resp", "checked"), ("http", "http", None)], """
pipelines:
  checked:
    - layer: load_balance
      policy: round_robin
      endpoints:
        - {name: good}
        - {name: bad, pipeline: [{layer: fault, abort: {percent: 100, error: unavailable}}]}
      health_check: {interval: 50ms, timeout: 1s, unhealthy: 2, healthy: 1}
""")
        cls.srv = harness.start_target(cls, text)
        cls.ports = listener_ports(cls.srv, ["plain", "resp", "http"])

    def test_out_before_any_request(self):
        series = 'turret_lb_endpoints_healthy{pipeline="checked"}'
        deadline = time.monotonic() + 5 * harness.TIMEOUT_SCALE
        while metric(self.ports["http"], series) != 1:
            self.assertLess(time.monotonic(), deadline, "the bad endpoint was not taken out of service")
            time.sleep(0.05)
        with harness.RespConn(self.ports["resp"]) as c:
            for i in range(20):
                self.assertEqual(c.call("SET", f"hc{i}", "v"), b"+OK\r\n")
        self.assertEqual(metric(self.ports["http"], 'turret_lb_picks_total{pipeline="checked",endpoint="bad"}'), 0)
        self.assertEqual(metric(self.ports["http"], 'turret_lb_picks_total{pipeline="checked",endpoint="good"}'), 20)


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.turretd = harness.require_turretd(self)
        self.dir = tempfile.mkdtemp(prefix="turret-lb-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def assert_rejected(self, pipeline: str, at_line: str, message: str) -> None:
        text = config([("a", "resp", "lb")], "pipelines:\n  lb:\n" + pipeline)
        path = os.path.join(self.dir, "turret.yaml")
        Path(path).write_text(text)
        p = subprocess.run([self.turretd, "--check-config", path], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 1, p.stdout)
        line = text.splitlines().index(at_line) + 1
        self.assertEqual(p.stderr.decode().strip(), f"{path}:{line}:{message}")

    def test_valid(self):
        text = config([("a", "resp", "lb")], "pipelines:\n  lb:\n" + BALANCED)
        path = os.path.join(self.dir, "ok.yaml")
        Path(path).write_text(text)
        p = subprocess.run([self.turretd, "--check-config", path], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_unknown_policy(self):
        self.assert_rejected("    - {layer: load_balance, endpoints: 2, policy: least_conn}\n",
                             "    - {layer: load_balance, endpoints: 2, policy: least_conn}",
                             "51: pipelines.lb[0].policy: unknown policy 'least_conn' (expected p2c, round_robin, "
                             "ring_hash or maglev)")

    def test_duplicate_endpoint(self):
        self.assert_rejected("    - layer: load_balance\n      endpoints: [{name: a}, {name: a}]\n",
                             "      endpoints: [{name: a}, {name: a}]",
                             "37: pipelines.lb[0].endpoints[1].name: duplicate endpoint name 'a'")


if __name__ == "__main__":
    unittest.main()
