"""One turretd with RESP, HTTP and gRPC listeners: the three front ends reach the same core through the same pipeline.

Checks the promises of the front-end issue that span protocols: a value set over one protocol is read over the
others (binary keys and values included), a PUBLISH over HTTP reaches a RESP SUBSCRIBE, an SSE stream and a gRPC
Subscribe stream, and a TTL set over gRPC is seen by RESP and HTTP. And that REST and gRPC share their operations
(services/ops/): the same operation on the same data gives the same outcome, message and effect over both."""
from __future__ import annotations

import json
import threading
import unittest

import harness
from grpc_support import HAVE_GRPC, start_grpc_turret, stubs
from test_http import SseStream, q, request

if HAVE_GRPC:
    import grpc

try:
    import redis
except ImportError:  # pragma: no cover
    redis = None

BINARY_KEY = b"k\x00\r\n\xff\xfe key"
BINARY_VALUE = bytes(range(256)) * 4


def start_three_protocols(cls):
    """One turretd for the test class: cls.r (RESP, redis-py), cls.http (the HTTP port), cls.kv and cls.m (gRPC)."""
    cls.pb = stubs()
    cls.t = start_grpc_turret(cls, http=True)
    cls.channel = grpc.insecure_channel(cls.t.target)
    cls.addClassCleanup(cls.channel.close)
    cls.kv = cls.pb["kv_grpc"].KVStub(cls.channel)
    cls.m = cls.pb["kv"]
    cls.r = redis.Redis(port=cls.t.resp_port, socket_timeout=5)
    cls.addClassCleanup(cls.r.close)
    cls.http = cls.t.http_port


@unittest.skipUnless(HAVE_GRPC and redis, "python3-grpcio and python3-redis are required")
class CrossProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_three_protocols(cls)

    def setUp(self):
        self.r.flushall()

    def grpc_get(self, key: bytes):
        try:
            return self.kv.Get(self.m.GetRequest(key=key), timeout=5).value
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def http_get(self, key: bytes):
        r = request(self.http, "GET", "/v1/kv/" + q(key))
        if r.status == 404:
            return None
        self.assertEqual(r.status, 200, r.body)
        return r.body

    def test_resp_set_is_read_over_http_and_grpc(self):
        self.r.set("greeting", b"hello")
        self.assertEqual(self.http_get(b"greeting"), b"hello")
        self.assertEqual(self.grpc_get(b"greeting"), b"hello")

    def test_binary_keys_and_values_survive_every_protocol(self):
        writers = {
            "resp": lambda k, v: self.r.set(k, v),
            "http": lambda k, v: self.assertIn(request(self.http, "PUT", "/v1/kv/" + q(k), v).status, (200, 201)),
            "grpc": lambda k, v: self.kv.Set(self.m.SetRequest(key=k, value=v), timeout=5),
        }
        readers = {"resp": self.r.get, "http": self.http_get, "grpc": self.grpc_get}
        for wname, write in writers.items():
            key = BINARY_KEY + wname.encode()
            value = BINARY_VALUE + wname.encode()
            write(key, value)
            for rname, read in readers.items():
                with self.subTest(written=wname, read=rname):
                    self.assertEqual(read(key), value)

    def metrics(self) -> dict:
        """GET /metrics as {'name{labels}': value}."""
        r = request(self.http, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        out = {}
        for line in r.body.decode().splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                out[series] = float(value)
        return out

    def test_metrics_count_the_requests_of_every_front_end(self):
        grpc_get_nf = 'turret_requests_total{frontend="grpc",command="Get",status="NOT_FOUND"}'
        grpc_get_ok = 'turret_requests_total{frontend="grpc",command="Get",status="OK"}'
        grpc_set_ok = 'turret_requests_total{frontend="grpc",command="Set",status="OK"}'
        grpc_set_fp = 'turret_requests_total{frontend="grpc",command="Set",status="FAILED_PRECONDITION"}'
        grpc_get_count = 'turret_request_duration_seconds_count{frontend="grpc",command="Get"}'
        grpc_get_inf = 'turret_request_duration_seconds_bucket{frontend="grpc",command="Get",le="+Inf"}'
        grpc_scan_ok = 'turret_requests_total{frontend="grpc",command="Scan",status="OK"}'
        # key-value commands, whatever the front end (one dispatch records them: turret/kv/dispatch.hpp)
        resp_get_ok = 'turret_commands_total{frontend="resp",command="get",outcome="ok"}'
        grpc_cmd_get = 'turret_commands_total{frontend="grpc",command="get",outcome="ok"}'
        grpc_cmd_set = 'turret_commands_total{frontend="grpc",command="set",outcome="ok"}'
        http_cmd_get = 'turret_commands_total{frontend="http",command="get",outcome="ok"}'
        resp_get_count = 'turret_command_duration_seconds_count{frontend="resp",command="get"}'
        http_get_404 = 'turret_requests_total{frontend="http",command="kv.get",status="404"}'
        before = self.metrics()
        m = self.m
        for _ in range(3):
            self.assertIsNone(self.grpc_get(b"absent"))
        self.kv.Set(m.SetRequest(key=b"present", value=b"v"), timeout=5)
        self.kv.Set(m.SetRequest(key=b"present", value=b"v"), timeout=5)
        with self.assertRaises(grpc.RpcError):
            self.kv.Set(m.SetRequest(key=b"present", value=b"w", condition=m.CONDITION_IF_NOT_EXISTS), timeout=5)
        self.assertEqual(self.grpc_get(b"present"), b"v")
        list(self.kv.Scan(m.ScanRequest(prefix=b"pre"), timeout=5))
        self.assertEqual(self.r.get("present"), b"v")
        self.assertIsNone(self.http_get(b"absent"))
        after = self.metrics()

        def delta(series):
            return after.get(series, 0) - before.get(series, 0)

        self.assertEqual(delta(grpc_get_nf), 3)
        self.assertEqual(delta(grpc_get_ok), 1)
        self.assertEqual(delta(grpc_set_ok), 2)
        self.assertEqual(delta(grpc_set_fp), 1)
        self.assertEqual(delta(grpc_get_count), 4)
        self.assertEqual(delta(grpc_get_inf), 4)
        self.assertEqual(delta(grpc_scan_ok), 1)
        self.assertEqual(delta(resp_get_ok), 1)
        self.assertEqual(delta(resp_get_count), 1)
        self.assertEqual(delta(grpc_cmd_get), 4)  # a GET that finds nothing is a null reply, not an error
        self.assertEqual(delta(grpc_cmd_set), 3)  # SET NX that does not set replies null: ok for the command
        self.assertEqual(delta(http_cmd_get), 1)
        self.assertEqual(delta(http_get_404), 1)
        # a gRPC Get takes well under a second here: the sum of durations grew, by less than 4 s
        grpc_get_sum = 'turret_request_duration_seconds_sum{frontend="grpc",command="Get"}'
        self.assertTrue(0 < delta(grpc_get_sum) < 4, delta(grpc_get_sum))

    def test_grpc_ttl_is_seen_by_resp_and_http(self):
        self.kv.Set(self.m.SetRequest(key=b"session", value=b"v", ttl_ms=90_000), timeout=5)
        self.assertIn(self.r.ttl("session"), (89, 90))
        ttl_ms = request(self.http, "GET", "/v1/kv/session/ttl").json()["ttl_ms"]
        self.assertTrue(88_000 < ttl_ms <= 90_000, ttl_ms)
        # and the other way round: PERSIST over RESP is seen by gRPC
        self.r.persist("session")
        self.assertLess(self.kv.Ttl(self.m.TtlRequest(key=b"session"), timeout=5).ttl_ms, 0)

    def test_http_publish_reaches_resp_sse_and_grpc_subscribers(self):
        ps = self.r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("news")
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")

        sse = SseStream(self.http, "/v1/subscribe/news")
        self.addCleanup(sse.close)
        sse.read_until(b"event: subscribed")

        call = self.kv.Subscribe(self.m.SubscribeRequest(channels=[b"news"]), timeout=30)
        self.addCleanup(call.cancel)
        self.assertTrue(next(call).HasField("subscribed"))
        got = {}
        reader = threading.Thread(target=lambda: got.setdefault("grpc", next(call).message), daemon=True)
        reader.start()

        r = request(self.http, "POST", "/v1/publish/news", b"extra! extra!")
        self.assertEqual((r.status, r.json()), (200, {"receivers": 3}))

        msg = ps.get_message(timeout=5)
        self.assertEqual((msg["type"], msg["channel"], msg["data"]), ("message", b"news", b"extra! extra!"))
        sse.read_until(b"extra! extra!")
        self.assertIn({"channel": "news", "message": "extra! extra!"},
                      [{k: e[k] for k in ("channel", "message") if k in e} for e in sse.events()])
        reader.join(timeout=5)
        self.assertIn("grpc", got, "the gRPC Subscribe stream got no message")
        self.assertEqual((got["grpc"].channel, got["grpc"].payload), (b"news", b"extra! extra!"))

    def test_one_keyspace_sixteen_databases(self):
        # HTTP and gRPC sessions use database 0, like a fresh RESP connection.
        self.r.execute_command("SELECT", 1)
        self.r.set("only-in-db1", "x")
        self.r.execute_command("SELECT", 0)
        self.assertIsNone(self.http_get(b"only-in-db1"))
        self.assertIsNone(self.grpc_get(b"only-in-db1"))
        request(self.http, "PUT", "/v1/kv/in-db0", b"y")
        self.assertEqual(self.r.get("in-db0"), b"y")



# How each protocol spells an outcome (services/http/rest_codec.hpp, services/grpc/grpc_status.hpp). A Redis error
# about the value (not an integer, overflow, wrong type) is 409 over REST and FAILED_PRECONDITION over gRPC: both
# count as a failed precondition here, and their messages (Redis's text) must agree as well.
HTTP_OUTCOMES = {404: "not_found", 412: "precondition_failed", 409: "precondition_failed", 400: "invalid_argument"}


@unittest.skipUnless(HAVE_GRPC and redis, "python3-grpcio and python3-redis are required")
class SameOperationSameResult(unittest.TestCase):
    """Each case runs one operation over REST and over gRPC, each time from the same data (set up over RESP), and
    compares the outcome, its message, the answer (normalised) and the data afterwards."""

    @classmethod
    def setUpClass(cls):
        start_three_protocols(cls)

    def over_http(self, method: str, path: str, body: bytes | None = None, answer=None):
        r = request(self.http, method, path, body)
        if r.status in (200, 201, 204):
            return "ok", None, answer(r) if answer else None
        return HTTP_OUTCOMES.get(r.status, f"http {r.status}"), r.json()["error"]["message"], None

    def over_grpc(self, rpc: str, message, answer=None):
        codes = {grpc.StatusCode.NOT_FOUND: "not_found", grpc.StatusCode.FAILED_PRECONDITION: "precondition_failed",
                 grpc.StatusCode.INVALID_ARGUMENT: "invalid_argument"}
        try:
            rs = getattr(self.kv, rpc)(message, timeout=5)
        except grpc.RpcError as e:
            return codes.get(e.code(), str(e.code())), e.details(), None
        return "ok", None, answer(rs) if answer else None

    def same(self, setup, http, grpc_call, expect, state=None):
        """Runs `http` and `grpc_call` each after FLUSHALL + `setup`; both must give `expect` (outcome, message,
        answer) and leave the same `state()`."""
        results, states = {}, {}
        for name, run in (("http", http), ("grpc", grpc_call)):
            self.r.flushall()
            setup()
            results[name] = run()
            states[name] = state() if state else None
        self.assertEqual(results["http"], expect, "over REST")
        self.assertEqual(results["grpc"], expect, "over gRPC")
        self.assertEqual(states["http"], states["grpc"])

    def test_missing_key_is_not_found_everywhere(self):
        m = self.m
        nothing = lambda: None
        self.same(nothing, lambda: self.over_http("GET", "/v1/kv/k"),
                  lambda: self.over_grpc("Get", m.GetRequest(key=b"k")), ("not_found", "key not found", None))
        self.same(nothing, lambda: self.over_http("GET", "/v1/kv/k/ttl"),
                  lambda: self.over_grpc("Ttl", m.TtlRequest(key=b"k")), ("not_found", "key not found", None))
        self.same(nothing, lambda: self.over_http("PUT", "/v1/kv/k/ttl?ttl_ms=5000"),
                  lambda: self.over_grpc("Expire", m.ExpireRequest(key=b"k", ttl_ms=5000)),
                  ("not_found", "key not found", None), state=lambda: self.r.exists("k"))
        self.same(nothing, lambda: self.over_http("DELETE", "/v1/kv/k/ttl"),
                  lambda: self.over_grpc("Persist", m.PersistRequest(key=b"k")), ("not_found", "key not found", None))

    def test_persist_and_ttl(self):
        """Persist: PERSIST, then EXISTS when it removed nothing. A key without a TTL is a success on both."""
        m = self.m
        no_ttl = lambda: self.r.set("k", "v")
        with_ttl = lambda: self.r.set("k", "v", px=100_000)
        state = lambda: (self.r.get("k"), self.r.pttl("k"))
        self.same(no_ttl, lambda: self.over_http("DELETE", "/v1/kv/k/ttl"),
                  lambda: self.over_grpc("Persist", m.PersistRequest(key=b"k")), ("ok", None, None), state)
        self.same(with_ttl, lambda: self.over_http("DELETE", "/v1/kv/k/ttl"),
                  lambda: self.over_grpc("Persist", m.PersistRequest(key=b"k")), ("ok", None, None), state)
        # The TTL of a key without one: null over REST, -1 over gRPC; "none" for both here.
        self.same(no_ttl, lambda: self.over_http("GET", "/v1/kv/k/ttl", answer=lambda r: r.json()["ttl_ms"]),
                  lambda: self.over_grpc("Ttl", m.TtlRequest(key=b"k"), lambda rs: None if rs.ttl_ms == -1 else rs),
                  ("ok", None, None))
        self.same(no_ttl, lambda: self.over_http("PUT", "/v1/kv/k/ttl?ttl_ms=100000"),
                  lambda: self.over_grpc("Expire", m.ExpireRequest(key=b"k", ttl_ms=100_000)), ("ok", None, None),
                  lambda: 90_000 < self.r.pttl("k") <= 100_000)

    def test_one_ttl_rule(self):
        """A TTL is a positive number of milliseconds, on every operation that takes one."""
        m = self.m
        exists = lambda: self.r.set("k", "v")
        state = lambda: (self.r.get("k"), self.r.pttl("k"))
        refused = ("invalid_argument", "ttl must be positive", None)
        for ttl in (0, -5):
            with self.subTest(ttl=ttl):
                self.same(exists, lambda: self.over_http("PUT", f"/v1/kv/k/ttl?ttl_ms={ttl}"),
                          lambda: self.over_grpc("Expire", m.ExpireRequest(key=b"k", ttl_ms=ttl)), refused, state)
        # (gRPC's Set spells "no TTL" as ttl_ms 0, so only a negative one can be compared)
        self.same(exists, lambda: self.over_http("PUT", "/v1/kv/k?ttl_ms=-5", b"w"),
                  lambda: self.over_grpc("Set", m.SetRequest(key=b"k", value=b"w", ttl_ms=-5)), refused, state)

    def test_conditions(self):
        m = self.m
        exists = lambda: self.r.set("k", "v")
        nothing = lambda: None
        state = lambda: (self.r.get("k"), self.r.get("j"))
        self.same(exists, lambda: self.over_http("PUT", "/v1/kv/k?nx=true", b"w"),
                  lambda: self.over_grpc("Set", m.SetRequest(key=b"k", value=b"w", condition=m.CONDITION_IF_NOT_EXISTS)),
                  ("precondition_failed", "key already exists", None), state)
        self.same(nothing, lambda: self.over_http("PUT", "/v1/kv/k?xx=true", b"w"),
                  lambda: self.over_grpc("Set", m.SetRequest(key=b"k", value=b"w", condition=m.CONDITION_IF_EXISTS)),
                  ("precondition_failed", "key does not exist", None), state)
        self.same(exists, lambda: self.over_http("POST", "/v1/kv:mset",
                                                 json.dumps({"values": {"j": "1", "k": "2"}, "nx": True}).encode()),
                  lambda: self.over_grpc("MSet", m.MSetRequest(entries=[m.KeyValue(key=b"j", value=b"1"),
                                                                        m.KeyValue(key=b"k", value=b"2")],
                                                               if_none_exist=True)),
                  ("precondition_failed", "a key already exists", None), state)
        self.same(exists, lambda: self.over_http("PUT", "/v1/kv/k?xx=true&get=true", b"w", lambda r: r.body),
                  lambda: self.over_grpc("Set", m.SetRequest(key=b"k", value=b"w", condition=m.CONDITION_IF_EXISTS,
                                                             return_previous=True), lambda rs: rs.previous),
                  ("ok", None, b"v"), state)

    def test_multi_key_operations_need_a_key(self):
        m = self.m
        nothing = lambda: None
        refused = ("invalid_argument", "at least one key is required", None)
        self.same(nothing, lambda: self.over_http("POST", "/v1/kv:mget", b'{"keys": []}'),
                  lambda: self.over_grpc("MGet", m.MGetRequest()), refused)
        self.same(nothing, lambda: self.over_http("POST", "/v1/kv:mset", b'{"values": {}}'),
                  lambda: self.over_grpc("MSet", m.MSetRequest()), refused)

    def test_redis_errors_carry_the_same_message(self):
        m = self.m
        for value, message in ((b"abc", "ERR value is not an integer or out of range"),
                               (b"9223372036854775807", "ERR increment or decrement would overflow")):
            with self.subTest(value=value):
                self.same(lambda: self.r.set("n", value), lambda: self.over_http("POST", "/v1/kv/n/incr"),
                          lambda: self.over_grpc("Incr", m.IncrRequest(key=b"n", delta=1)),
                          ("precondition_failed", message, None), lambda: self.r.get("n"))
        self.same(lambda: self.r.set("n", 41), lambda: self.over_http("POST", "/v1/kv/n/incr", answer=lambda r: r.json()),
                  lambda: self.over_grpc("Incr", m.IncrRequest(key=b"n", delta=1), lambda rs: rs.value),
                  ("ok", None, 42), lambda: self.r.get("n"))


if __name__ == "__main__":
    unittest.main()
