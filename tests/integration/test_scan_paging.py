"""Paging property tests (issue 8): the REST scan (`GET /v1/kv?prefix=&limit=&cursor=`) and gRPC Scan page through the
keyspace under every limit and batch size while other clients add and delete keys: every key present for the whole
scan is returned at least once, nothing but keys that existed at some point is returned, and the scan ends.

One turretd (RESP + gRPC + HTTP) serves every scan. While a scan runs:
- a writer thread on its own RESP connection keeps setting and deleting keys of a volatile set;
- between pages, a burst (RESP, one MSET or DEL per page) first adds BURST keys, then deletes them again. That makes
  the table grow and then shrink while the scan's cursor is somewhere in the middle (keyspace.cpp grows above 3/4
  load and shrinks below 1/10: ~200 keys sit in 512 slots, ~2200 need 4096), with incremental rehashing in between.
The stable keys are never touched: the property is checked on them.
"""
from __future__ import annotations

import http.client
import json
import threading
import time
import unittest
import urllib.parse

import harness
from grpc_support import HAVE_GRPC, start_grpc_turret, stubs

if HAVE_GRPC:
    import grpc

try:
    import redis
except ImportError:  # pragma: no cover - python3-redis is a declared dependency
    redis = None

STABLE = {b"st:%03d" % i for i in range(120)}
VOLATILE = [b"vo:%03d" % i for i in range(80)]
BURST = [b"bu:%04d" % i for i in range(2000)]
BURST_CHUNKS = 4  # the burst is added over this many pages, then deleted over as many
LIMITS = list(range(1, 13))
BATCH_SIZES = list(range(1, 11))


class Churn:
    """Another client changing the keyspace during a scan: a steady writer thread over the volatile keys, and the
    burst, advanced one step per page by the scanning loop (page()). The burst starts at page `start`."""

    def __init__(self, port: int, start: int) -> None:
        self.r = redis.Redis(port=port, socket_timeout=10)
        self.burst = redis.Redis(port=port, socket_timeout=10)
        self.start_page = start
        self.pages = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, daemon=True)

    def __enter__(self) -> "Churn":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        # Leave the keyspace as it was: the stable keys only.
        self.burst.delete(*BURST)
        self.burst.delete(*VOLATILE)
        self.r.close()
        self.burst.close()

    def _write(self) -> None:
        try:
            i = 0
            while not self.stop.is_set():
                p = self.r.pipeline(transaction=False)
                for _ in range(8):
                    key = VOLATILE[(i * 7) % len(VOLATILE)]
                    if i % 3 == 2:
                        p.delete(key)
                    else:
                        p.set(key, b"v")
                    i += 1
                p.execute()
                time.sleep(0.002)
        except BaseException as e:  # reported by check()
            self.error = e

    def page(self) -> None:
        """Called after every page of a scan."""
        step = self.pages - self.start_page
        self.pages += 1
        chunk = len(BURST) // BURST_CHUNKS
        if 0 <= step < BURST_CHUNKS:
            part = BURST[step * chunk:(step + 1) * chunk]
            self.burst.mset({k: b"b" for k in part})
        elif BURST_CHUNKS <= step < 2 * BURST_CHUNKS:
            part = BURST[(step - BURST_CHUNKS) * chunk:(step - BURST_CHUNKS + 1) * chunk]
            self.burst.delete(*part)

    def check(self, test: unittest.TestCase) -> None:
        test.assertIsNone(self.error, f"the writer thread failed: {self.error!r}")
        test.assertTrue(self.thread.is_alive() or self.stop.is_set())


@unittest.skipUnless(HAVE_GRPC and redis, "python3-grpcio and python3-redis are required")
class ScanPaging(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pb = stubs()
        cls.m = cls.pb["kv"]
        cls.t = start_grpc_turret(cls, http=True)
        cls.channel = grpc.insecure_channel(cls.t.target)
        cls.addClassCleanup(cls.channel.close)
        cls.kv = cls.pb["kv_grpc"].KVStub(cls.channel)
        r = redis.Redis(port=cls.t.resp_port, socket_timeout=10)
        r.flushall()
        r.mset({k: b"s" for k in STABLE})
        r.close()
        cls.http = http.client.HTTPConnection("127.0.0.1", cls.t.http_port, timeout=10)
        cls.addClassCleanup(cls.http.close)

    def setUp(self):
        self.assertTrue(self.t.server.alive(), self.t.server.log_text())

    # -- the property -------------------------------------------------------------------------------------------------
    def check_scan(self, what: str, got: set[bytes], prefix: bytes) -> None:
        want = {k for k in STABLE if k.startswith(prefix)}
        missing = want - got
        self.assertFalse(missing, f"{what}: {len(missing)} stable keys never returned, e.g. {sorted(missing)[:5]}")
        ever = STABLE | set(VOLATILE) | set(BURST)
        unknown = got - ever
        self.assertFalse(unknown, f"{what}: returned keys that never existed: {sorted(unknown)[:5]}")
        self.assertTrue(all(k.startswith(prefix) for k in got), f"{what}: keys outside the prefix {prefix!r}")

    def max_calls(self, limit: int) -> int:
        # Generous: every key that can exist, `limit` at a time (a cursor that never reaches 0 fails here).
        return (len(STABLE) + len(VOLATILE) + len(BURST)) // max(1, limit) + 200

    # -- gRPC ---------------------------------------------------------------------------------------------------------
    def grpc_scan(self, limit: int, batch: int, prefix: bytes, churn: Churn) -> set[bytes]:
        what = f"gRPC Scan limit={limit} batch_size={batch} prefix={prefix!r}"
        got: set[bytes] = set()
        cursor = 0
        for _ in range(self.max_calls(limit)):
            counts = []
            for rs in self.kv.Scan(self.m.ScanRequest(prefix=prefix, limit=limit, batch_size=batch, cursor=cursor),
                                   timeout=10):
                counts.append(len(rs.keys))
                got.update(rs.keys)
                cursor = rs.cursor
            if limit and sum(counts) > limit:
                # Only the first SCAN step of a call may exceed the limit, alone in one response (kv.proto).
                self.assertEqual(sum(1 for c in counts if c), 1, f"{what}: {counts} keys per response over the limit")
            churn.page()
            if cursor == 0:
                return got
        self.fail(f"{what}: no cursor 0 after {self.max_calls(limit)} calls")

    def assertChurnSeen(self, what: str, scans: int, with_burst: int, with_volatile: int) -> None:
        """The churn overlapped the scans (else the property would hold trivially): keys of the burst and of the
        writer thread were returned by most scans that did not filter them out."""
        self.assertGreater(with_burst, scans // 2, f"{what}: the burst overlapped only {with_burst} of {scans} scans")
        self.assertGreater(with_volatile, scans // 2,
                           f"{what}: the writer's keys were seen in only {with_volatile} of {scans} scans")

    def test_grpc_scan_every_limit_and_batch_size(self):
        started = time.monotonic()
        scans = with_burst = with_volatile = 0
        for batch in BATCH_SIZES:
            for limit in LIMITS + [1000, 0]:
                prefix = b"st:" if batch % 2 else b""
                with Churn(self.t.resp_port, start=(limit + batch) % 5) as churn:
                    got = self.grpc_scan(limit, batch, prefix, churn)
                    churn.check(self)
                self.check_scan(f"gRPC Scan limit={limit} batch_size={batch}", got, prefix)
                if not prefix and 0 < limit <= max(LIMITS):
                    scans += 1
                    with_burst += bool(got & set(BURST))
                    with_volatile += bool(got & set(VOLATILE))
        self.assertChurnSeen("gRPC", scans, with_burst, with_volatile)
        self.assertTrue(self.t.server.alive(), self.t.server.log_text())
        print(f"gRPC: {len(BATCH_SIZES) * (len(LIMITS) + 2)} scans in {time.monotonic() - started:.1f}s, "
              f"{with_burst}/{scans} overlapped by the burst")

    # -- REST ---------------------------------------------------------------------------------------------------------
    def rest_page(self, limit: int, cursor: str | None, prefix: bytes) -> dict:
        query = {"limit": str(limit), "prefix": prefix.decode()}
        if cursor is not None:
            query["cursor"] = cursor
        self.http.request("GET", "/v1/kv?" + urllib.parse.urlencode(query))
        r = self.http.getresponse()
        body = r.read()
        self.assertEqual(r.status, 200, body)
        return json.loads(body)

    def rest_scan(self, limit: int, prefix: bytes, churn: Churn) -> set[bytes]:
        what = f"REST scan limit={limit} prefix={prefix!r}"
        got: set[bytes] = set()
        cursor = None
        for _ in range(self.max_calls(limit)):
            page = self.rest_page(limit, cursor, prefix)
            self.assertEqual(page["encoding"], "utf8")
            got.update(k.encode() for k in page["keys"])
            cursor = page["next_cursor"]
            churn.page()
            if cursor is None:
                return got
            self.assertNotEqual(cursor, "0", f"{what}: next_cursor 0 is spelled null")
        self.fail(f"{what}: no end (next_cursor null) after {self.max_calls(limit)} pages")

    def test_rest_scan_every_limit(self):
        scans = with_burst = with_volatile = 0
        for limit in LIMITS + [1000, 10000]:
            for prefix in (b"", b"st:"):
                with Churn(self.t.resp_port, start=limit % 5) as churn:
                    got = self.rest_scan(limit, prefix, churn)
                    churn.check(self)
                self.check_scan(f"REST scan limit={limit}", got, prefix)
                if not prefix and limit <= max(LIMITS):
                    scans += 1
                    with_burst += bool(got & set(BURST))
                    with_volatile += bool(got & set(VOLATILE))
        self.assertChurnSeen("REST", scans, with_burst, with_volatile)
        self.assertTrue(self.t.server.alive(), self.t.server.log_text())
        print(f"REST: {with_burst}/{scans} overlapped by the burst")


if __name__ == "__main__":
    unittest.main()
