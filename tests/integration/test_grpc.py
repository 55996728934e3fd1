"""gRPC front end of turretd, end to end: python3-grpcio with stubs generated at test time from protos/, a real turretd
(RESP + gRPC listeners on free ports), python3-redis for the cross-protocol checks."""
from __future__ import annotations

import os
import subprocess
import threading
import time
import unittest

import harness
from grpc_support import HAVE_GRPC, start_grpc_turret, stubs

if HAVE_GRPC:
    import grpc

try:
    import redis
except ImportError:  # pragma: no cover
    redis = None

BINARY = bytes(range(256))


def code_of(fn, *a, **kw):
    """Status code of a failing call (AssertionError when it succeeds)."""
    try:
        fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code()
    raise AssertionError("call succeeded")


@unittest.skipUnless(HAVE_GRPC, "python3-grpcio not installed")
class GrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pb = stubs()
        cls.t = start_grpc_turret(cls)
        cls.channel = grpc.insecure_channel(cls.t.target)
        cls.addClassCleanup(cls.channel.close)
        cls.kv = cls.pb["kv_grpc"].KVStub(cls.channel)
        cls.m = cls.pb["kv"]
        cls.r = redis.Redis(port=cls.t.resp_port, socket_timeout=5) if redis else None

    def assertAlive(self):
        self.assertTrue(self.t.server.alive(), self.t.server.log_text())
        self.kv.Set(self.m.SetRequest(key=b"alive", value=b"1"), timeout=5)

    # -- every RPC --------------------------------------------------------------------------------------------------
    def test_set_get_delete(self):
        m = self.m
        self.kv.Set(m.SetRequest(key=b"k", value=b"v"), timeout=5)
        self.assertEqual(self.kv.Get(m.GetRequest(key=b"k"), timeout=5).value, b"v")
        rs = self.kv.Set(m.SetRequest(key=b"k", value=b"w", return_previous=True), timeout=5)
        self.assertTrue(rs.had_previous)
        self.assertEqual(rs.previous, b"v")
        rs = self.kv.Set(m.SetRequest(key=b"new", value=b"x", return_previous=True), timeout=5)
        self.assertFalse(rs.had_previous)
        self.assertEqual(self.kv.Delete(m.DeleteRequest(keys=[b"k", b"new", b"missing"]), timeout=5).deleted, 2)
        self.assertEqual(code_of(self.kv.Get, m.GetRequest(key=b"k"), timeout=5), grpc.StatusCode.NOT_FOUND)

    def test_set_conditions(self):
        m = self.m
        self.assertEqual(code_of(self.kv.Set, m.SetRequest(key=b"c", value=b"1", condition=m.CONDITION_IF_EXISTS),
                                 timeout=5), grpc.StatusCode.FAILED_PRECONDITION)
        self.kv.Set(m.SetRequest(key=b"c", value=b"1", condition=m.CONDITION_IF_NOT_EXISTS), timeout=5)
        self.assertEqual(code_of(self.kv.Set, m.SetRequest(key=b"c", value=b"2", condition=m.CONDITION_IF_NOT_EXISTS),
                                 timeout=5), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(code_of(self.kv.Set, m.SetRequest(key=b"c", value=b"2", condition=m.CONDITION_IF_NOT_EXISTS,
                                                           return_previous=True), timeout=5),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.kv.Set(m.SetRequest(key=b"c", value=b"3", condition=m.CONDITION_IF_EXISTS), timeout=5)
        self.assertEqual(self.kv.Get(m.GetRequest(key=b"c"), timeout=5).value, b"3")

    def test_set_ttl_and_keep_ttl(self):
        m = self.m
        self.kv.Set(m.SetRequest(key=b"t", value=b"v", ttl_ms=100000), timeout=5)
        self.assertGreater(self.kv.Ttl(m.TtlRequest(key=b"t"), timeout=5).ttl_ms, 90000)
        self.kv.Set(m.SetRequest(key=b"t", value=b"w", keep_ttl=True), timeout=5)
        self.assertGreater(self.kv.Ttl(m.TtlRequest(key=b"t"), timeout=5).ttl_ms, 90000)
        self.kv.Set(m.SetRequest(key=b"t", value=b"w"), timeout=5)
        self.assertEqual(self.kv.Ttl(m.TtlRequest(key=b"t"), timeout=5).ttl_ms, -1)
        self.assertEqual(code_of(self.kv.Set, m.SetRequest(key=b"t", value=b"v", ttl_ms=-5), timeout=5),
                         grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(code_of(self.kv.Set, m.SetRequest(key=b"t", value=b"v", ttl_ms=5, keep_ttl=True), timeout=5),
                         grpc.StatusCode.INVALID_ARGUMENT)

    def test_mget_mset(self):
        m = self.m
        self.kv.MSet(m.MSetRequest(entries=[m.KeyValue(key=b"a", value=b"1"), m.KeyValue(key=b"b", value=b"2")]),
                     timeout=5)
        rs = self.kv.MGet(m.MGetRequest(keys=[b"a", b"nope", b"b"]), timeout=5)
        self.assertEqual([(v.found, v.value) for v in rs.values], [(True, b"1"), (False, b""), (True, b"2")])
        self.assertEqual(code_of(self.kv.MSet, m.MSetRequest(entries=[m.KeyValue(key=b"a", value=b"9"),
                                                                      m.KeyValue(key=b"z", value=b"9")],
                                                             if_none_exist=True), timeout=5),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(code_of(self.kv.Get, m.GetRequest(key=b"z"), timeout=5), grpc.StatusCode.NOT_FOUND)
        self.kv.MSet(m.MSetRequest(entries=[m.KeyValue(key=b"y", value=b"1")], if_none_exist=True), timeout=5)
        self.assertEqual(code_of(self.kv.MGet, m.MGetRequest(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(code_of(self.kv.MSet, m.MSetRequest(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(code_of(self.kv.Delete, m.DeleteRequest(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT)

    def test_incr(self):
        m = self.m
        self.assertEqual(self.kv.Incr(m.IncrRequest(key=b"n", delta=5), timeout=5).value, 5)
        self.assertEqual(self.kv.Incr(m.IncrRequest(key=b"n", delta=-7), timeout=5).value, -2)
        self.kv.Set(m.SetRequest(key=b"s", value=b"abc"), timeout=5)
        self.assertEqual(code_of(self.kv.Incr, m.IncrRequest(key=b"s", delta=1), timeout=5),
                         grpc.StatusCode.FAILED_PRECONDITION)
        self.kv.Set(m.SetRequest(key=b"big", value=b"9223372036854775807"), timeout=5)
        self.assertEqual(code_of(self.kv.Incr, m.IncrRequest(key=b"big", delta=1), timeout=5),
                         grpc.StatusCode.FAILED_PRECONDITION)

    def test_wrongtype(self):
        if not self.r:
            self.skipTest("python3-redis missing")
        for cmd in (("LPUSH", "wt", "x"), ("SADD", "wt", "x"), ("HSET", "wt", "f", "x")):
            try:
                self.r.execute_command(*cmd)
                break
            except redis.ResponseError:
                continue
        else:
            self.skipTest("no non-string type available")
        self.assertEqual(code_of(self.kv.Get, self.m.GetRequest(key=b"wt"), timeout=5),
                         grpc.StatusCode.FAILED_PRECONDITION)

    def test_expire_ttl_persist(self):
        m = self.m
        self.assertEqual(code_of(self.kv.Expire, m.ExpireRequest(key=b"e", ttl_ms=1000), timeout=5),
                         grpc.StatusCode.NOT_FOUND)
        self.assertEqual(code_of(self.kv.Ttl, m.TtlRequest(key=b"e"), timeout=5), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(code_of(self.kv.Persist, m.PersistRequest(key=b"e"), timeout=5), grpc.StatusCode.NOT_FOUND)
        self.kv.Set(m.SetRequest(key=b"e", value=b"v"), timeout=5)
        self.assertFalse(self.kv.Persist(m.PersistRequest(key=b"e"), timeout=5).removed)
        self.assertTrue(self.kv.Expire(m.ExpireRequest(key=b"e", ttl_ms=50000), timeout=5).applied)
        self.assertFalse(self.kv.Expire(m.ExpireRequest(key=b"e", ttl_ms=60000,
                                                        condition=m.EXPIRE_CONDITION_IF_NO_TTL), timeout=5).applied)
        self.assertTrue(self.kv.Expire(m.ExpireRequest(key=b"e", ttl_ms=60000,
                                                       condition=m.EXPIRE_CONDITION_IF_GREATER), timeout=5).applied)
        ttl = self.kv.Ttl(m.TtlRequest(key=b"e"), timeout=5).ttl_ms
        self.assertTrue(50000 < ttl <= 60000, ttl)
        self.assertTrue(self.kv.Persist(m.PersistRequest(key=b"e"), timeout=5).removed)
        self.assertEqual(self.kv.Ttl(m.TtlRequest(key=b"e"), timeout=5).ttl_ms, -1)
        # a TTL must be positive (as over REST): nothing changes
        for ttl in (0, -1):
            self.assertEqual(code_of(self.kv.Expire, m.ExpireRequest(key=b"e", ttl_ms=ttl), timeout=5),
                             grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.kv.Ttl(m.TtlRequest(key=b"e"), timeout=5).ttl_ms, -1)
        self.kv.Expire(m.ExpireRequest(key=b"e", ttl_ms=30), timeout=5)
        time.sleep(0.1)
        self.assertEqual(code_of(self.kv.Get, m.GetRequest(key=b"e"), timeout=5), grpc.StatusCode.NOT_FOUND)

    def test_scan(self):
        m = self.m
        keys = {b"p:%d" % i for i in range(300)} | {b"p:*literal"}
        self.kv.MSet(m.MSetRequest(entries=[m.KeyValue(key=k, value=b"v") for k in keys] +
                                   [m.KeyValue(key=b"other%d" % i, value=b"v") for i in range(50)]), timeout=5)
        got = []
        batches = 0
        for rs in self.kv.Scan(m.ScanRequest(prefix=b"p:", batch_size=20), timeout=10):
            batches += 1
            got += rs.keys
        self.assertEqual(sorted(got), sorted(keys))
        self.assertGreater(batches, 1)
        # prefix with glob metacharacters is literal
        got = [k for rs in self.kv.Scan(m.ScanRequest(prefix=b"p:*"), timeout=10) for k in rs.keys]
        self.assertEqual(got, [b"p:*literal"])
        got = [k for rs in self.kv.Scan(m.ScanRequest(match=b"p:1?"), timeout=10) for k in rs.keys]
        self.assertEqual(sorted(got), sorted(b"p:%d" % i for i in range(10, 20)))
        # A limit cuts between SCAN steps (kv.proto's cursor contract): up to 7 keys, and the cursor resumes the rest.
        rss = list(self.kv.Scan(m.ScanRequest(prefix=b"p:", limit=7), timeout=10))
        got = [k for rs in rss for k in rs.keys]
        self.assertTrue(1 <= len(got) <= 7, got)
        self.assertNotEqual(rss[-1].cursor, 0)
        resumed = self.kv.Scan(m.ScanRequest(prefix=b"p:", cursor=rss[-1].cursor), timeout=10)
        rest = [k for rs in resumed for k in rs.keys]
        self.assertEqual(set(got) | set(rest), keys)
        got = [k for rs in self.kv.Scan(m.ScanRequest(), timeout=10) for k in rs.keys]
        self.assertTrue(keys <= set(got) and {b"other%d" % i for i in range(50)} <= set(got))

    def test_binary_keys_values(self):
        m = self.m
        key = b"\x00bin\xff\r\n" + BINARY
        self.kv.Set(m.SetRequest(key=key, value=BINARY * 4), timeout=5)
        self.assertEqual(self.kv.Get(m.GetRequest(key=key), timeout=5).value, BINARY * 4)
        if self.r:
            self.assertEqual(self.r.get(key), BINARY * 4)
            self.r.set(BINARY, b"\x00\x01")
            self.assertEqual(self.kv.Get(m.GetRequest(key=BINARY), timeout=5).value, b"\x00\x01")

    # -- pub/sub ----------------------------------------------------------------------------------------------------
    def _subscribe(self, **kw):
        call = self.kv.Subscribe(self.m.SubscribeRequest(**kw), timeout=30)
        first = next(call)
        self.assertTrue(first.HasField("subscribed"), first)
        return call, first

    def test_publish_subscribe_grpc(self):
        m = self.m
        call, first = self._subscribe(channels=[b"ch", BINARY], patterns=[b"pat.*"])
        self.assertEqual(first.subscribed.count, 3)
        self.assertEqual(self.kv.Publish(m.PublishRequest(channel=b"ch", message=b"one"), timeout=5).receivers, 1)
        self.kv.Publish(m.PublishRequest(channel=BINARY, message=BINARY), timeout=5)
        self.kv.Publish(m.PublishRequest(channel=b"pat.x", message=b"two"), timeout=5)
        msgs = [next(call).message for _ in range(3)]
        self.assertEqual((msgs[0].channel, msgs[0].pattern, msgs[0].payload), (b"ch", b"", b"one"))
        self.assertEqual((msgs[1].channel, msgs[1].payload), (BINARY, BINARY))
        self.assertEqual((msgs[2].channel, msgs[2].pattern, msgs[2].payload), (b"pat.x", b"pat.*", b"two"))
        call.cancel()
        with self.assertRaises(grpc.RpcError) as cm:
            next(call)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.CANCELLED)
        # the server detached the session: no subscriber left
        self.assertTrue(harness.wait_for(
            lambda: self.kv.Publish(m.PublishRequest(channel=b"ch", message=b"x"), timeout=5).receivers == 0))

    def test_subscribe_requires_a_channel(self):
        call = self.kv.Subscribe(self.m.SubscribeRequest(), timeout=5)
        with self.assertRaises(grpc.RpcError) as cm:
            next(call)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # -- cross protocol ---------------------------------------------------------------------------------------------
    @unittest.skipUnless(redis, "python3-redis missing")
    def test_resp_set_grpc_get(self):
        self.r.set("from-resp", b"value\x00")
        self.assertEqual(self.kv.Get(self.m.GetRequest(key=b"from-resp"), timeout=5).value, b"value\x00")

    @unittest.skipUnless(redis, "python3-redis missing")
    def test_grpc_ttl_seen_by_resp(self):
        self.kv.Set(self.m.SetRequest(key=b"ttl", value=b"v", ttl_ms=120000), timeout=5)
        self.assertIn(self.r.ttl("ttl"), (119, 120))
        self.kv.Expire(self.m.ExpireRequest(key=b"ttl", ttl_ms=300000), timeout=5)
        self.assertIn(self.r.ttl("ttl"), (299, 300))

    @unittest.skipUnless(redis, "python3-redis missing")
    def test_resp_publish_reaches_grpc_subscribe(self):
        call, _ = self._subscribe(channels=[b"news"])
        self.assertEqual(self.r.publish("news", b"hello\xff"), 1)
        msg = next(call).message
        self.assertEqual((msg.channel, msg.payload), (b"news", b"hello\xff"))
        call.cancel()

    @unittest.skipUnless(redis, "python3-redis missing")
    def test_grpc_publish_reaches_resp_subscriber(self):
        ps = self.r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("alerts")
        self.assertEqual(ps.get_message(timeout=5)["type"], "subscribe")
        self.assertEqual(self.kv.Publish(self.m.PublishRequest(channel=b"alerts", message=b"m"), timeout=5).receivers, 1)
        msg = ps.get_message(timeout=5)
        self.assertEqual((msg["channel"], msg["data"]), (b"alerts", b"m"))

    def test_requirepass_makes_grpc_calls_unauthenticated(self):
        # gRPC has no AUTH: once a password is required, every call fails with UNAUTHENTICATED (Redis's NOAUTH).
        admin = redis.Redis(port=self.t.resp_port, socket_timeout=5)
        self.addCleanup(admin.close)
        admin.config_set("requirepass", "s3cret")  # this connection stays authenticated
        try:
            self.assertEqual(code_of(self.kv.Get, self.m.GetRequest(key=b"k"), timeout=5),
                             grpc.StatusCode.UNAUTHENTICATED)
            self.assertEqual(code_of(self.kv.Set, self.m.SetRequest(key=b"k", value=b"v"), timeout=5),
                             grpc.StatusCode.UNAUTHENTICATED)
        finally:
            admin.config_set("requirepass", "")
        self.kv.Set(self.m.SetRequest(key=b"k", value=b"v"), timeout=5)
        self.assertEqual(self.kv.Get(self.m.GetRequest(key=b"k"), timeout=5).value, b"v")

    # -- metadata, deadlines, cancellation ----------------------------------------------------------------------------
    def test_request_id_echoed(self):
        _, call = self.kv.Set.with_call(self.m.SetRequest(key=b"x", value=b"1"),
                                        metadata=[("x-request-id", "abc-123")], timeout=5)
        self.assertIn(("x-request-id", "abc-123"), list(call.initial_metadata()))

    def test_deadline_exceeded(self):
        # A stream outliving the client's deadline ends with DEADLINE_EXCEEDED (the server cancels the request).
        call = self.kv.Subscribe(self.m.SubscribeRequest(channels=[b"quiet"]), timeout=0.3)
        next(call)
        with self.assertRaises(grpc.RpcError) as cm:
            next(call)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertAlive()

    def test_cancel_unary_in_flight(self):
        fut = self.kv.Incr.future(self.m.IncrRequest(key=b"cx", delta=1), timeout=5)
        fut.cancel()
        try:
            fut.result()
        except grpc.FutureCancelledError:
            pass
        self.assertAlive()

    # -- health, reflection -------------------------------------------------------------------------------------------
    def test_health(self):
        h = self.pb["health_grpc"].HealthStub(self.channel)
        hp = self.pb["health"]
        for service in ("", "turret.kv.v1.KV"):
            rs = h.Check(hp.HealthCheckRequest(service=service), timeout=5)
            self.assertEqual(rs.status, hp.HealthCheckResponse.SERVING, service)

    def test_reflection(self):
        r = self.pb["refl_grpc"].ServerReflectionStub(self.channel)
        rp = self.pb["refl"]
        replies = list(r.ServerReflectionInfo(iter([rp.ServerReflectionRequest(list_services="")]), timeout=5))
        names = {s.name for s in replies[0].list_services_response.service}
        self.assertIn("turret.kv.v1.KV", names)
        self.assertIn("grpc.health.v1.Health", names)
        replies = list(r.ServerReflectionInfo(
            iter([rp.ServerReflectionRequest(file_containing_symbol="turret.kv.v1.KV")]), timeout=5))
        self.assertTrue(replies[0].file_descriptor_response.file_descriptor_proto)

    def test_reflection_v1_stream(self):
        """grpc.reflection.v1 (what current grpcurl and grpcui ask first): several requests on one stream, each
        answered in order; files come with their dependencies; unknown names get NOT_FOUND error responses."""
        from google.protobuf import descriptor_pb2
        r = self.pb["refl_v1_grpc"].ServerReflectionStub(self.channel)
        rp = self.pb["refl_v1"]
        reqs = [rp.ServerReflectionRequest(host="h", list_services=""),
                rp.ServerReflectionRequest(file_containing_symbol="turret.kv.v1.KV.Get"),
                rp.ServerReflectionRequest(file_by_filename="turret/kv/v1/kv.proto"),
                rp.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
                rp.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
                rp.ServerReflectionRequest(file_by_filename="nope.proto"),
                rp.ServerReflectionRequest(all_extension_numbers_of_type="google.protobuf.FieldOptions"),
                rp.ServerReflectionRequest()]
        replies = list(r.ServerReflectionInfo(iter(reqs), timeout=5))
        self.assertEqual(len(replies), len(reqs))
        for q, a in zip(reqs, replies):
            self.assertEqual(a.original_request, q)
        self.assertEqual(replies[0].valid_host, "h")
        names = {s.name for s in replies[0].list_services_response.service}
        self.assertEqual(names, {"turret.kv.v1.KV", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                                 "grpc.reflection.v1alpha.ServerReflection"})
        for i in (1, 2):
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in replies[i].file_descriptor_response.file_descriptor_proto]
            self.assertEqual(files[0].name, "turret/kv/v1/kv.proto")
            self.assertIn("KV", [s.name for s in files[0].service])
            self.assertEqual({f.name for f in files[1:]}, set(files[0].dependency))
        health = descriptor_pb2.FileDescriptorProto.FromString(
            replies[3].file_descriptor_response.file_descriptor_proto[0])
        self.assertEqual(health.name, "grpc/health/v1/health.proto")
        for i in (4, 5):
            self.assertEqual(replies[i].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertEqual(replies[6].all_extension_numbers_response.base_type_name, "google.protobuf.FieldOptions")
        self.assertEqual(replies[7].error_response.error_code, grpc.StatusCode.UNIMPLEMENTED.value[0])

    # -- malformed --------------------------------------------------------------------------------------------------
    def test_malformed_protobuf(self):
        # Every RPC, unary and streaming: bytes that are no valid encoding of the request message (issue 8, finding
        # 10: grpc++'s own decoding answered UNIMPLEMENTED with no message).
        unary = ["Get", "Set", "Delete", "MGet", "MSet", "Incr", "Expire", "Ttl", "Persist", "Publish"]
        for method in unary + ["Scan", "Subscribe"]:
            # a bad tag, a bad varint, a field shorter than its length
            for payload in (b"\xff\xff\xff", b"\xff\xff\xff\xff\x0f", b"\x0a\x05ab"):
                with self.subTest(method=method, payload=payload):
                    path = f"/turret.kv.v1.KV/{method}"
                    try:
                        if method in unary:
                            self.channel.unary_unary(path)(payload, timeout=5)
                        else:
                            list(self.channel.unary_stream(path)(payload, timeout=5))
                    except grpc.RpcError as e:
                        self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT, e.details())
                        self.assertIn("not a valid", e.details())
                    else:
                        self.fail("the call succeeded")
        # An empty message is a valid (all-default) request.
        raw = self.channel.unary_unary("/turret.kv.v1.KV/Get")
        self.assertEqual(code_of(raw, b"", timeout=5), grpc.StatusCode.NOT_FOUND)
        self.assertAlive()

    def test_unknown_method(self):
        raw = self.channel.unary_unary("/turret.kv.v1.KV/Nope")
        self.assertEqual(code_of(raw, b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)
        raw = self.channel.unary_unary("/no.such.Service/Get")
        self.assertEqual(code_of(raw, b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED)
        self.assertAlive()

    def test_many_concurrent_calls(self):
        m = self.m
        futs = [self.kv.Incr.future(m.IncrRequest(key=b"cnt", delta=1), timeout=10) for _ in range(500)]
        for f in futs:
            f.result()
        self.assertEqual(self.kv.Incr(m.IncrRequest(key=b"cnt", delta=0), timeout=5).value, 500)

    # -- CLI ----------------------------------------------------------------------------------------------------------
    def test_turret_cli_grpc(self):
        cli = harness.TURRET_CLI
        if not cli or not os.path.exists(cli):
            self.skipTest("turret-cli not built")
        base = [cli, "--port", str(self.t.grpc_port), "--protocol", "grpc"]
        run = lambda *a: subprocess.run(base + list(a), capture_output=True, timeout=20)
        p = run("set", "clik", "hello")
        self.assertEqual((p.returncode, p.stdout), (0, b"OK\n"), p.stderr)
        p = run("get", "clik")
        self.assertEqual((p.returncode, p.stdout), (0, b"hello\n"), p.stderr)
        p = run("incrby", "clin", "41")
        self.assertEqual(p.stdout, b"41\n", p.stderr)
        p = run("ttl", "nokey")
        self.assertEqual(p.stdout, b"-2\n", p.stderr)
        # EXPIRE with a TTL that is not positive deletes the key, as Redis (the API refuses such a TTL: the CLI
        # deletes instead)
        p = run("expire", "clik", "0")
        self.assertEqual((p.returncode, p.stdout), (0, b"1\n"), p.stderr)
        p = run("get", "clik")
        self.assertEqual(p.stdout, b"\n", p.stderr)
        p = run("pexpire", "clik", "-5")
        self.assertEqual((p.returncode, p.stdout), (0, b"0\n"), p.stderr)


@unittest.skipUnless(HAVE_GRPC, "python3-grpcio not installed")
class GrpcLimitsTest(unittest.TestCase):
    def test_message_size_limit_resource_exhausted(self):
        pb = stubs()
        t = start_grpc_turret(self, grpc={"max_receive_message_size": "4kb"})
        with grpc.insecure_channel(t.target) as ch:
            kv = pb["kv_grpc"].KVStub(ch)
            m = pb["kv"]
            kv.Set(m.SetRequest(key=b"small", value=b"x" * 1000), timeout=5)
            self.assertEqual(code_of(kv.Set, m.SetRequest(key=b"big", value=b"x" * 10000), timeout=5),
                             grpc.StatusCode.RESOURCE_EXHAUSTED)
            kv.Set(m.SetRequest(key=b"small", value=b"y"), timeout=5)

    def test_reflection_and_health_can_be_turned_off(self):
        pb = stubs()
        t = start_grpc_turret(self, grpc={"reflection": False, "health": False})
        with grpc.insecure_channel(t.target) as ch:
            for v in ("refl", "refl_v1"):
                r = pb[v + "_grpc"].ServerReflectionStub(ch)
                req = pb[v].ServerReflectionRequest(list_services="")
                self.assertEqual(code_of(lambda: list(r.ServerReflectionInfo(iter([req]), timeout=5))),
                                 grpc.StatusCode.UNIMPLEMENTED, v)
            h = pb["health_grpc"].HealthStub(ch)
            self.assertEqual(code_of(h.Check, pb["health"].HealthCheckRequest(service=""), timeout=5),
                             grpc.StatusCode.UNIMPLEMENTED)
            kv = pb["kv_grpc"].KVStub(ch)
            kv.Set(pb["kv"].SetRequest(key=b"k", value=b"v"), timeout=5)

    def test_slow_subscriber_resource_exhausted(self):
        pb = stubs()
        t = start_grpc_turret(self, grpc={"subscribe_buffer": 4})
        with grpc.insecure_channel(t.target, options=[("grpc.http2.lookahead_bytes", 1024)]) as ch:
            kv = pb["kv_grpc"].KVStub(ch)
            m = pb["kv"]
            call = kv.Subscribe(m.SubscribeRequest(channels=[b"flood"]), timeout=30)
            next(call)
            payload = b"z" * 65536
            # The client does not read: HTTP/2 flow control stops the writer, the queue fills, the stream ends.
            for _ in range(400):
                kv.Publish(m.PublishRequest(channel=b"flood", message=payload), timeout=5)
            codes = None
            try:
                for _ in call:
                    pass
            except grpc.RpcError as e:
                codes = e.code()
            self.assertEqual(codes, grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertEqual(kv.Publish(m.PublishRequest(channel=b"flood", message=b"x"), timeout=5).receivers, 0)

    def test_pipeline_timeout_layer_and_drain(self):
        pb = stubs()
        t = start_grpc_turret(self, pipeline="pipeline:\n  - layer: timeout\n    duration: 2s\n"
                                             "  - layer: concurrency_limit\n    max: 100\n", shutdown_grace="2s")
        with grpc.insecure_channel(t.target) as ch:
            kv = pb["kv_grpc"].KVStub(ch)
            m = pb["kv"]
            kv.Set(m.SetRequest(key=b"k", value=b"v"), timeout=5)
            self.assertEqual(kv.Get(m.GetRequest(key=b"k"), timeout=5).value, b"v")
            # Draining: an open Subscribe stream ends with UNAVAILABLE; turretd exits 0.
            call = kv.Subscribe(m.SubscribeRequest(channels=[b"c"]), timeout=30)
            next(call)
            h = pb["health_grpc"].HealthStub(ch)
            self.assertEqual(h.Check(pb["health"].HealthCheckRequest(service=""), timeout=5).status,
                             pb["health"].HealthCheckResponse.SERVING)
            t.server.signal(15)
            with self.assertRaises(grpc.RpcError) as cm:
                for _ in call:
                    pass
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(t.server.wait(10), 0, t.server.log_text())


if __name__ == "__main__":
    unittest.main()
