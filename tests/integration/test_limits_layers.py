"""rate_limit, load_shed and concurrency_limit from config, over real sockets on RESP, HTTP and gRPC.

- rate_limit 50/s burst 5 (one pipeline per protocol, so each has its own bucket): a client offering far more than
  50/s for about a second gets 50 x elapsed + 5 requests through, the others fail with the overloaded error at once:
  RESP "BUSY overloaded: rate limit exceeded" (redis-py keeps its connection), HTTP 429 with Retry-After and the JSON
  code too_many_requests, gRPC RESOURCE_EXHAUSTED; turret_rate_limit_rejected_total{pipeline} counts exactly the
  rejections.
- rate_limit per_command_class with classes {write: 5/s}: writes are limited, reads are not.
- [load_shed, concurrency_limit max 1, fault delay 400ms]: while one request is in flight, concurrent ones get the
  overloaded error immediately (not after the delay) on all three protocols; turret_load_shed_total counts them.
- concurrency_limit scope: per_connection under load_shed: a second request on the same gRPC channel is shed while
  one on another channel goes through.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
import unittest

import harness
from test_pipelines import config, kv_stub, listener_ports, metric

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

RATE, BURST = 50, 5
OFFER_SECONDS = 1.0

PIPELINES = f"""
pipelines:
  rl_resp: [{{layer: rate_limit, scope: global, rate: {RATE}/s, burst: {BURST}, max_wait: 0s}}]
  rl_http: [{{layer: rate_limit, scope: global, rate: {RATE}/s, burst: {BURST}, max_wait: 0s}}]
  rl_grpc: [{{layer: rate_limit, scope: global, rate: {RATE}/s, burst: {BURST}, max_wait: 0s}}]
  by_class:
    - layer: rate_limit
      scope: per_command_class
      rate: 100000/s
      classes: {{write: 5/s}}
  shed_resp: &shed
    - layer: load_shed
    - {{layer: concurrency_limit, max: 1}}
    - layer: fault
      delay: {{duration: 400ms, percent: 100}}
  shed_http: *shed
  shed_grpc: *shed
  shed_conn:
    - layer: load_shed
    - {{layer: concurrency_limit, max: 1, scope: per_connection}}
    - layer: fault
      delay: {{duration: 400ms, percent: 100}}
"""

DELAY = 0.4


def have_grpc() -> bool:
    try:
        import grpc_support
        grpc_support.stubs()
        return True
    except unittest.SkipTest:
        return False


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        cls.grpc = have_grpc()
        listeners = [("metrics", "http", None), ("rl_resp", "resp", "rl_resp"), ("rl_http", "http", "rl_http"),
                     ("class_resp", "resp", "by_class"), ("shed_resp", "resp", "shed_resp"),
                     ("shed_http", "http", "shed_http")]
        if cls.grpc:
            listeners += [("rl_grpc", "grpc", "rl_grpc"), ("shed_grpc", "grpc", "shed_grpc"),
                          ("shed_conn", "grpc", "shed_conn")]
        cls.srv = harness.start_target(cls, config(listeners, PIPELINES, threads=2))
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])

    def rejected(self, pipeline: str) -> float:
        return metric(self.ports["metrics"], f'turret_rate_limit_rejected_total{{pipeline="{pipeline}"}}')

    def shed(self, pipeline: str) -> float:
        return metric(self.ports["metrics"], f'turret_load_shed_total{{pipeline="{pipeline}"}}')

    def offer(self, attempt) -> tuple[int, int, float]:
        """Calls attempt() (True = admitted, False = rejected) back to back for OFFER_SECONDS: (admitted, rejected,
        elapsed seconds from the first call's start to the last one's end)."""
        admitted = rejected = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < OFFER_SECONDS:
            if attempt():
                admitted += 1
            else:
                rejected += 1
        return admitted, rejected, time.monotonic() - t0

    def assert_rate(self, admitted: int, rejected: int, elapsed: float) -> None:
        # The bucket starts full (BURST) and refills at RATE: admitted = floor(RATE * t) + BURST for the server's
        # span t of the requests, which lies within the client's elapsed time.
        self.assertGreater(rejected, 5 * admitted, "offered load too low to test the limit")
        self.assertLessEqual(admitted, RATE * elapsed + BURST)
        self.assertGreaterEqual(admitted, RATE * elapsed + BURST - 0.05 * RATE * elapsed - 2)

    @unittest.skipIf(redis is None, "python3-redis not installed")
    def test_rate_limit_resp(self):
        r = redis.Redis(host="127.0.0.1", port=self.ports["rl_resp"], socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(r.close)
        before = self.rejected("rl_resp")
        errors = []

        def attempt() -> bool:
            try:
                return r.ping()
            except redis.exceptions.ResponseError as e:  # not a ConnectionError: the connection stays
                errors.append(str(e))
                return False

        admitted, rejected, elapsed = self.offer(attempt)
        self.assert_rate(admitted, rejected, elapsed)
        # redis-py 4.3 raises BUSY as a plain ResponseError with the whole text
        self.assertEqual(set(errors), {"BUSY overloaded: rate limit exceeded"})
        self.assertEqual(self.rejected("rl_resp") - before, rejected)
        with harness.RespConn(self.ports["rl_resp"]) as c:
            time.sleep(2 * BURST / RATE)  # the bucket refills
            self.assertEqual(c.call("PING"), b"+PONG\r\n")

    def test_rate_limit_http(self):
        c = http.client.HTTPConnection("127.0.0.1", self.ports["rl_http"], timeout=harness.IO_TIMEOUT)
        self.addCleanup(c.close)
        before = self.rejected("rl_http")
        seen_429 = []

        def attempt() -> bool:
            c.request("GET", "/v1/kv/missing")  # one keep-alive connection throughout
            resp = c.getresponse()
            body = resp.read()
            if resp.status == 404:
                return True
            self.assertEqual(resp.status, 429, body)
            if not seen_429:
                self.assertEqual(json.loads(body)["error"]["code"], "too_many_requests")
                self.assertEqual(resp.getheader("Retry-After"), "1")
                seen_429.append(body)
            return False

        admitted, rejected, elapsed = self.offer(attempt)
        self.assert_rate(admitted, rejected, elapsed)
        self.assertEqual(self.rejected("rl_http") - before, rejected)

    def test_rate_limit_grpc(self):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        pb, kv = kv_stub(self, self.ports["rl_grpc"])
        before = self.rejected("rl_grpc")

        def attempt() -> bool:
            try:
                kv.Get(pb["kv"].GetRequest(key=b"missing"), timeout=5)
                return True
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    return True
                self.assertEqual(e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, e.details())
                return False

        admitted, rejected, elapsed = self.offer(attempt)
        self.assert_rate(admitted, rejected, elapsed)
        self.assertEqual(self.rejected("rl_grpc") - before, rejected)

    def test_per_command_class_limits_writes_not_reads(self):
        with harness.RespConn(self.ports["class_resp"]) as c:
            t0 = time.monotonic()
            writes = [c.call("SET", f"w{i}", "v") for i in range(40)]
            reads = [c.call("GET", f"w{i % 40}") for i in range(400)]
            elapsed = time.monotonic() - t0
        ok = [w for w in writes if w == b"+OK\r\n"]
        self.assertEqual(set(writes) - {b"+OK\r\n"}, {b"-BUSY overloaded: rate limit exceeded\r\n"})
        self.assertGreaterEqual(len(ok), 5)  # the default burst: one second of 5/s
        self.assertLessEqual(len(ok), 5 + 5 * elapsed)
        # every read answered: the admitted writes' values, nil for the refused ones
        self.assertEqual(sum(r == b"$1\r\nv\r\n" for r in reads), 10 * len(ok))
        self.assertEqual(sum(r == b"$-1\r\n" for r in reads), 400 - 10 * len(ok))
        self.assertEqual(self.rejected("by_class"), 40 - len(ok))

    def concurrently(self, first, others: list) -> tuple[object, list, list[float]]:
        """Starts first(), then (once it is in flight) each of others concurrently: (first's result, the others'
        results, the others' durations)."""
        out = {}

        def run_first():
            out["first"] = first()

        t = threading.Thread(target=run_first)
        t.start()
        time.sleep(0.1)  # first is now inside its 400ms delay, holding the only slot
        results, durations = [None] * len(others), [0.0] * len(others)

        def run(i):
            t0 = time.monotonic()
            results[i] = others[i]()
            durations[i] = time.monotonic() - t0

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(others))]
        for th in threads:
            th.start()
        for th in threads + [t]:
            th.join(10)
        return out.get("first"), results, durations

    def test_load_shed_resp(self):
        conns = [harness.RespConn(self.ports["shed_resp"]) for _ in range(4)]
        for c in conns:
            self.addCleanup(c.close)
        before = self.shed("shed_resp")
        first, results, durations = self.concurrently(
            lambda: conns[0].call("ECHO", "first"), [lambda c=c: c.call("ECHO", "other") for c in conns[1:]])
        self.assertEqual(first, b"$5\r\nfirst\r\n")
        self.assertEqual(results, [b"-BUSY overloaded: service overloaded: request shed\r\n"] * 3)
        self.assertLess(max(durations), DELAY / 2)  # at once, not after the delay
        self.assertEqual(self.shed("shed_resp") - before, 3)
        self.assertEqual(conns[1].call("ECHO", "later"), b"$5\r\nlater\r\n")  # the slot is free again

    def test_load_shed_http(self):
        def get(key: str):
            c = http.client.HTTPConnection("127.0.0.1", self.ports["shed_http"], timeout=harness.IO_TIMEOUT)
            try:
                c.request("GET", f"/v1/kv/{key}")
                r = c.getresponse()
                return r.status, r.getheader("Retry-After"), json.loads(r.read())
            finally:
                c.close()

        first, results, durations = self.concurrently(lambda: get("a"), [lambda: get("b"), lambda: get("c")])
        self.assertEqual(first[0], 404)
        for status, retry_after, body in results:
            self.assertEqual(status, 429)
            self.assertEqual(retry_after, "1")
            self.assertEqual(body["error"]["code"], "too_many_requests")
        self.assertLess(max(durations), DELAY / 2)

    def test_load_shed_grpc(self):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        pb, kv = kv_stub(self, self.ports["shed_grpc"])

        def get(key: bytes):
            try:
                kv.Get(pb["kv"].GetRequest(key=key), timeout=5)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

        first, results, durations = self.concurrently(lambda: get(b"a"), [lambda: get(b"b"), lambda: get(b"c")])
        self.assertEqual(first, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(results, [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2)
        self.assertLess(max(durations), DELAY / 2)
        self.assertEqual(self.shed("shed_grpc"), 2)

    def test_per_connection_limit_grpc(self):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        import grpc_support
        pb = grpc_support.stubs()
        stubs = []
        for _ in range(2):  # two channels, each with its own connection (no shared subchannel)
            channel = grpc.insecure_channel(f"127.0.0.1:{self.ports['shed_conn']}",
                                            options=[("grpc.use_local_subchannel_pool", 1)])
            self.addCleanup(channel.close)
            grpc.channel_ready_future(channel).result(timeout=harness.IO_TIMEOUT)
            stubs.append(pb["kv_grpc"].KVStub(channel))
        one, other = stubs

        def get(stub, key: bytes):
            try:
                stub.Get(pb["kv"].GetRequest(key=key), timeout=5)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

        first, results, _ = self.concurrently(lambda: get(one, b"a"), [lambda: get(one, b"b"),
                                                                        lambda: get(other, b"c")])
        self.assertEqual(first, grpc.StatusCode.NOT_FOUND)
        # the same channel (one HTTP/2 connection) is at its limit; the other channel has its own
        self.assertEqual(results, [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND])


if __name__ == "__main__":
    unittest.main()
