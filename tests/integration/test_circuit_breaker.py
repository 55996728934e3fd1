"""The circuit_breaker layer over real sockets.

One turretd; the pipeline `broken` is [circuit_breaker{consecutive_failures: 3, open_for: 1s}, fault{abort 100%
unavailable}], served by a RESP, an HTTP and a gRPC listener (one pipeline, so one breaker for the three):
- the first 3 requests reach the fault layer ("injected fault"); then the breaker is open and every request fails at
  once with its own error, condition unavailable: RESP "-ERR unavailable: circuit open", HTTP 503 with Retry-After,
  gRPC UNAVAILABLE; turret_circuit_state{pipeline="broken"} is 1 on /metrics, with the rejections and the transition
  counted;
- after open_for, the next request is let through as a half-open probe; it fails (the fault is still there), so the
  breaker opens again at once.
"""
from __future__ import annotations

import http.client
import json
import time
import unittest

import harness
from test_pipelines import config, kv_stub, listener_ports, metric

BROKEN = """
pipelines:
  broken:
    - layer: circuit_breaker
      consecutive_failures: 3
      open_for: 1s
    - layer: fault
      abort: {percent: 100, error: unavailable}
"""

INJECTED = b"-ERR unavailable: injected fault\r\n"
OPEN = b"-ERR unavailable: circuit open\r\n"
OPEN_FOR = 1.0


class CircuitBreaker(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        # The plain RESP listener first: the harness PINGs the first one until the server answers.
        listeners = [("plain", "resp", None), ("resp", "resp", "broken"), ("http", "http", "broken"),
                     ("metrics", "http", None)]
        cls.grpc = False
        try:
            import grpc_support
            grpc_support.stubs()
            listeners.append(("grpc", "grpc", "broken"))
            cls.grpc = True
        except unittest.SkipTest:
            pass
        cls.srv = harness.start_target(cls, config(listeners, BROKEN))
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])

    def series(self, name: str, **labels: str) -> float:
        text = ",".join([f'pipeline="broken"'] + [f'{k}="{v}"' for k, v in labels.items()])
        return metric(self.ports["metrics"], f"{name}{{{text}}}")

    def make_open(self, resp: harness.RespConn) -> None:
        """Makes sure the breaker is open now: a half-open breaker lets the next request through as a probe, which
        the fault fails, and that opens it again."""
        for _ in range(3):
            if resp.call("GET", "k") == OPEN:
                return
        self.fail("the breaker does not open")

    def http_get(self) -> tuple[int, dict, str | None]:
        c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=harness.IO_TIMEOUT)
        try:
            c.request("GET", "/v1/kv/k")
            r = c.getresponse()
            return r.status, json.loads(r.read()), r.getheader("Retry-After")
        finally:
            c.close()

    def test_breaker_on_every_protocol(self):
        grpc_call = None
        if self.grpc:
            import grpc
            pb, kv = kv_stub(self, self.ports["grpc"])
            grpc_call = lambda: kv.Get(pb["kv"].GetRequest(key=b"k"), timeout=5)  # noqa: E731

        with harness.RespConn(self.ports["resp"]) as c:
            # Closed: the first three go inward and fail there; then open, without a fourth trip inward.
            self.assertEqual(self.series("turret_circuit_state"), 0)
            for _ in range(3):
                self.assertEqual(c.call("GET", "k"), INJECTED)
            opened = time.monotonic()
            for cmd in (["GET", "k"], ["SET", "k", "v"], ["PING"]):
                self.assertEqual(c.call(*cmd), OPEN)
            if time.monotonic() - opened < OPEN_FOR:  # (a stalled machine may already be past open_for)
                self.assertEqual(self.series("turret_circuit_state"), 1)
                self.assertEqual(self.series("turret_circuit_transitions_total", to="open"), 1)
                self.assertEqual(self.series("turret_circuit_transitions_total", to="half_open"), 0)
                self.assertEqual(self.series("turret_circuit_rejected_total"), 3)
            self.assertEqual(metric(self.ports["metrics"], 'turret_fault_injected_total{pipeline="broken",kind="abort"}'),
                             3)

            # The same breaker answers HTTP and gRPC while it is open.
            self.make_open(c)
            status, body, retry_after = self.http_get()
            self.assertEqual(status, 503, body)
            self.assertEqual(body["error"]["code"], "unavailable")
            self.assertIn("circuit open", body["error"]["message"])
            self.assertIsNotNone(retry_after)
            if grpc_call:
                import grpc
                self.make_open(c)
                with self.assertRaises(grpc.RpcError) as cm:
                    grpc_call()
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertIn("circuit open", cm.exception.details())

            # After open_for: one probe goes through (the fault fails it), and the breaker opens again at once.
            self.make_open(c)
            opens = self.series("turret_circuit_transitions_total", to="open")
            half = self.series("turret_circuit_transitions_total", to="half_open")
            injected = metric(self.ports["metrics"], 'turret_fault_injected_total{pipeline="broken",kind="abort"}')
            time.sleep(OPEN_FOR + 0.1)
            self.assertEqual(c.call("GET", "k"), INJECTED)
            self.assertEqual(c.call("GET", "k"), OPEN)
            self.assertEqual(self.series("turret_circuit_transitions_total", to="half_open"), half + 1)
            self.assertEqual(self.series("turret_circuit_transitions_total", to="open"), opens + 1)
            self.assertEqual(self.series("turret_circuit_transitions_total", to="closed"), 0)
            self.assertEqual(self.series("turret_circuit_state"), 1)
            self.assertEqual(metric(self.ports["metrics"], 'turret_fault_injected_total{pipeline="broken",kind="abort"}'),
                             injected + 1)


if __name__ == "__main__":
    unittest.main()
