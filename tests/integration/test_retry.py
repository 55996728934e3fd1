"""The retry and hedge layers in turretd, over real sockets.

- [retry (budget 0.2, 10/s), fault abort 100% unavailable]: N GETs over RESP (redis-py), HTTP and gRPC each get exactly
  one reply, the injected error; turret_retry_attempts_total{pipeline} (GET /metrics) shows that retries happened
  (attempts > N) and that the budget held them: attempts <= N + 0.2 x N + 10/s x elapsed seconds (rounded up to
  budget slots of 1s, plus one) and turret_retry_budget_exhausted_total counted the refusals.
- [retry, fault abort 50%]: each retry is sampled anew, so most GETs succeed; INCR and APPEND (non-idempotent) are not
  retried: one attempt each, applied exactly once per success; SET k v (idempotent by the command metadata) is.
- [hedge delay 20ms (3 hedges), fault delay 200ms on 50%]: GET latency stays well below 200ms for nearly all
  requests on RESP, HTTP and gRPC, each request answered once with its own value, while the same fault without the
  hedge delays about half of them.
"""
from __future__ import annotations

import http.client
import math
import time
import unittest

import harness
from test_pipelines import config, kv_stub, listener_ports, metric

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

PIPELINES = """
pipelines:
  all_fail:
    - layer: retry
      max_attempts: 3
      backoff: {base: 1ms, max: 4ms}
      budget: {ratio: 0.2, min_per_second: 10, window: 10s}
      per_try_timeout: 200ms
    - layer: fault
      abort: {percent: 100, error: unavailable}
  half_fail:
    - layer: retry
      max_attempts: 3
      backoff: {base: 1ms, max: 4ms}
      budget: {ratio: 1, min_per_second: 100, window: 10s}
    - layer: fault
      abort: {percent: 50, error: unavailable}
  hedged:
    - layer: hedge
      delay: 20ms
      max_hedges: 3
    - layer: fault
      delay: {duration: 200ms, percent: 50}
  slow:
    - layer: fault
      delay: {duration: 200ms, percent: 50}
"""

RATIO, MIN_PER_SECOND, SLOT = 0.2, 10, 1.0
INJECTED = "unavailable: injected fault"


class Retry(unittest.TestCase):
    N = 30  # requests per protocol

    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        listeners = [("plain", "resp", None), ("http_admin", "http", None), ("all_fail", "resp", "all_fail"),
                     ("all_fail_http", "http", "all_fail"), ("half_fail", "resp", "half_fail"),
                     ("hedged", "resp", "hedged"), ("hedged_http", "http", "hedged"), ("slow", "resp", "slow")]
        cls.grpc = False
        try:
            import grpc_support
            grpc_support.stubs()
            listeners.append(("all_fail_grpc", "grpc", "all_fail"))
            listeners.append(("hedged_grpc", "grpc", "hedged"))
            cls.grpc = True
        except unittest.SkipTest:
            pass
        cls.srv = harness.start_target(cls, config(listeners, PIPELINES))
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])
        with harness.RespConn(cls.ports["plain"]) as c:
            for i in range(40):
                assert c.call("SET", f"k{i}", f"v{i}") == b"+OK\r\n"

    def attempts(self, pipeline: str) -> float:
        return metric(self.ports["http_admin"], f'turret_retry_attempts_total{{pipeline="{pipeline}"}}')

    def exhausted(self, pipeline: str) -> float:
        return metric(self.ports["http_admin"], f'turret_retry_budget_exhausted_total{{pipeline="{pipeline}"}}')

    def test_all_fail_one_reply_each_and_retries_within_budget(self):
        if redis is None:
            self.skipTest("python3-redis not installed")
        before, exhausted_before = self.attempts("all_fail"), self.exhausted("all_fail")
        t0 = time.monotonic()
        requests = 0
        # RESP, through redis-py: every GET raises the injected error, and the connection stays in sync.
        r = redis.Redis(host="127.0.0.1", port=self.ports["all_fail"], socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(r.close)
        for i in range(self.N):
            with self.assertRaises(redis.exceptions.ResponseError) as cm:
                r.get(f"k{i}")
            self.assertEqual(str(cm.exception), INJECTED)
            requests += 1
        # Raw RESP, pipelined: N errors, nothing else.
        with harness.RespConn(self.ports["all_fail"]) as c:
            c.send(b"".join(harness.encode_command("GET", f"k{i}") for i in range(self.N)))
            self.assertEqual(c.read_replies(self.N), [b"-ERR " + INJECTED.encode() + b"\r\n"] * self.N)
            self.assertEqual(c.read_available(0.2), b"")
            requests += self.N
        # HTTP: 503, one response per request on one keep-alive connection.
        h = http.client.HTTPConnection("127.0.0.1", self.ports["all_fail_http"], timeout=harness.IO_TIMEOUT)
        self.addCleanup(h.close)
        for i in range(self.N):
            h.request("GET", f"/v1/kv/k{i}")
            resp = h.getresponse()
            resp.read()
            self.assertEqual(resp.status, 503)
            requests += 1
        # gRPC: UNAVAILABLE.
        if self.grpc:
            import grpc
            pb, kv = kv_stub(self, self.ports["all_fail_grpc"])
            for i in range(self.N):
                with self.assertRaises(grpc.RpcError) as cm:
                    kv.Get(pb["kv"].GetRequest(key=f"k{i}".encode()), timeout=5)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                requests += 1
        elapsed = time.monotonic() - t0
        attempts = self.attempts("all_fail") - before
        # The floor is credited per budget slot (1s) as a slot begins: the slots this test touched, plus one for a
        # boundary crossed while the first requests of the run were being counted.
        bound = requests + RATIO * requests + MIN_PER_SECOND * (math.ceil(elapsed / SLOT) + 2) * SLOT
        self.assertGreater(attempts, requests)  # retries happened
        self.assertLessEqual(attempts, bound, f"{attempts} attempts for {requests} requests in {elapsed:.2f}s")
        self.assertLess(attempts, 2 * requests)  # far below what 3 attempts each would be (3 x requests)
        self.assertGreater(self.exhausted("all_fail") - exhausted_before, 0)

    def test_half_fail_gets_mostly_succeed(self):
        before = self.attempts("half_fail")
        ok = failed = 0
        with harness.RespConn(self.ports["half_fail"]) as c:
            for i in range(200):
                key = f"k{i % 40}"
                reply = c.call("GET", key)
                if reply == b"-ERR " + INJECTED.encode() + b"\r\n":
                    failed += 1
                else:
                    v = f"v{i % 40}"
                    self.assertEqual(reply, f"${len(v)}\r\n{v}\r\n".encode())
                    ok += 1
            self.assertEqual(c.read_available(0.1), b"")
        # 7 in 8 expected (175), 1 in 2 without retries (100): 140 is 7.5 and 5.7 standard deviations from them.
        self.assertGreater(ok, 140)
        self.assertGreater(self.attempts("half_fail") - before, 200)

    def test_half_fail_non_idempotent_writes_are_not_retried(self):
        with harness.RespConn(self.ports["plain"]) as plain:
            plain.call("DEL", "counter", "app")
        before = self.attempts("half_fail")
        n = 60
        incr_ok = append_ok = 0
        with harness.RespConn(self.ports["half_fail"]) as c:
            for i in range(n):
                reply = c.call("INCR", "counter")
                if not reply.startswith(b"-"):
                    incr_ok += 1
                    self.assertEqual(reply, f":{incr_ok}\r\n".encode())  # applied once per success
                reply = c.call("APPEND", "app", "x")
                if not reply.startswith(b"-"):
                    append_ok += 1
                    self.assertEqual(reply, f":{append_ok}\r\n".encode())
        self.assertEqual(self.attempts("half_fail") - before, 2 * n)  # one attempt each: no retry
        self.assertLess(incr_ok, n)
        self.assertLess(append_ok, n)
        with harness.RespConn(self.ports["plain"]) as plain:
            self.assertEqual(plain.call("GET", "counter"), f"${len(str(incr_ok))}\r\n{incr_ok}\r\n".encode())
            self.assertEqual(plain.call("STRLEN", "app"), f":{append_ok}\r\n".encode())

    def test_half_fail_idempotent_set_is_retried(self):
        # SET k v is idempotent by the command metadata (sending it twice has the effect and reply of once).
        before = self.attempts("half_fail")
        n = 200
        ok = 0
        with harness.RespConn(self.ports["half_fail"]) as c:
            for i in range(n):
                ok += c.call("SET", f"s{i}", "x") == b"+OK\r\n"
        self.assertGreater(self.attempts("half_fail") - before, n)
        # 7 in 8 expected, 1 in 2 without retries: 0.7 n is far from both (P < 1e-8 each way at n = 200).
        self.assertGreater(ok, 0.7 * n)

    def latencies(self, port: int, n: int) -> list[float]:
        out = []
        with harness.RespConn(port) as c:
            for i in range(n):
                key, v = f"k{i % 40}", f"v{i % 40}"
                t = time.monotonic()
                reply = c.call("GET", key)
                out.append(time.monotonic() - t)
                self.assertEqual(reply, f"${len(v)}\r\n{v}\r\n".encode())  # its own answer, once
            time.sleep(0.25)  # past every delay: a late second reply would arrive now
            self.assertEqual(c.read_available(0.1), b"")
        return out

    def test_hedge_keeps_latency_below_the_delay(self):
        n = 60
        hedged = self.latencies(self.ports["hedged"], n)
        slow = self.latencies(self.ports["slow"], n)
        fast_hedged = sum(1 for t in hedged if t < 0.15)
        fast_slow = sum(1 for t in slow if t < 0.15)
        # Hedged: only requests whose four attempts are all delayed (1 in 16) wait 200ms.
        self.assertGreaterEqual(fast_hedged, int(0.8 * n), sorted(hedged))
        self.assertLess(fast_slow, int(0.8 * n), sorted(slow))  # about half without the hedge
        self.assertGreater(metric(self.ports["http_admin"], 'turret_hedge_requests_total{pipeline="hedged"}'), 0)

    def test_hedge_over_http_and_grpc(self):
        n = 40
        h = http.client.HTTPConnection("127.0.0.1", self.ports["hedged_http"], timeout=harness.IO_TIMEOUT)
        self.addCleanup(h.close)
        took = []
        for i in range(n):
            t = time.monotonic()
            h.request("GET", f"/v1/kv/k{i % 40}")
            resp = h.getresponse()
            body = resp.read()
            took.append(time.monotonic() - t)
            self.assertEqual(resp.status, 200, body)
            self.assertIn(f"v{i % 40}".encode(), body)  # its own answer
        self.assertGreaterEqual(sum(1 for t in took if t < 0.15), int(0.8 * n), sorted(took))
        if self.grpc:
            pb, kv = kv_stub(self, self.ports["hedged_grpc"])
            took = []
            for i in range(n):
                t = time.monotonic()
                r = kv.Get(pb["kv"].GetRequest(key=f"k{i % 40}".encode()), timeout=5)
                took.append(time.monotonic() - t)
                self.assertEqual(r.value, f"v{i % 40}".encode())
            self.assertGreaterEqual(sum(1 for t in took if t < 0.15), int(0.8 * n), sorted(took))


if __name__ == "__main__":
    unittest.main()
