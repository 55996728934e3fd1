"""The auth, access_log and metrics layers over real sockets, on RESP, HTTP and gRPC.

One turretd, every listener on the pipeline `guarded`:
    [metrics edge, access_log (file, every request), auth, metrics core]
- RESP: NOAUTH / WRONGPASS / NOPERM with redis-server 7.0's exact texts; AUTH user pass, AUTH token, HELLO 3 AUTH;
  PING and SELECT before AUTH get NOAUTH as from redis-server with requirepass; redis-py (username/password) and redis-cli (--user/--pass).
- HTTP: 401 with WWW-Authenticate without or with wrong credentials, 403 for a class the identity lacks, 200 with
  Bearer and Basic; POST /admin/reload only for an identity allowed the admin class.
- gRPC: `authorization` metadata: UNAUTHENTICATED, PERMISSION_DENIED, OK.
- The access log file gets one JSON object per request, with the x-request-id the client sent.
- turret_layer_requests_total / turret_layer_duration_seconds on GET /metrics, and `INFO pipelines` over RESP; plain
  INFO is unchanged (no extra section).
"""
from __future__ import annotations

import base64
import hashlib
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
from test_pipelines import config, listener_ports

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class AuthObserve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_turretd(cls)
        cls.dir = tempfile.mkdtemp(prefix="turret-observe-")
        cls.log = os.path.join(cls.dir, "access.log")
        listeners = [("resp", "resp", "guarded"), ("http", "http", "guarded")]
        cls.grpc = False
        try:
            import grpc_support
            grpc_support.stubs()
            listeners.append(("grpc", "grpc", "guarded"))
            cls.grpc = True
        except Exception:  # pragma: no cover - no grpc tools: the gRPC test is skipped
            pass
        text = config(listeners, f"""
pipelines:
  guarded:
    - {{layer: metrics, name: edge}}
    - layer: access_log
      path: {cls.log}
      sample: 1
      errors: always
    - layer: auth
      identities:
        - {{name: alice, password_sha256: {sha('alice-pw')}, allow: [read, write]}}
        - {{name: ops, password_sha256: {sha('ops-pw')}, allow: [read, write, admin]}}
      tokens:
        - {{token_sha256: {sha('tok-a')}, identity: svc-a, allow: [read]}}
      anonymous: deny
    - {{layer: metrics, name: core}}
""")
        cls.srv = harness.start_target(cls, text)
        cls.ports = listener_ports(cls.srv, [n for n, _, _ in listeners])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------------------------------

    def http(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=harness.IO_TIMEOUT)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def metrics_text(self) -> str:
        return self.http("GET", "/metrics")[2].decode()

    def series(self, name: str) -> float:
        for line in self.metrics_text().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def access_lines(self, want: str, timeout: float = 5.0) -> list[dict]:
        """The access log's JSON objects once one has request_id `want` (the writer thread is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            text = Path(self.log).read_text() if os.path.exists(self.log) else ""
            objs = [json.loads(l) for l in text.splitlines() if l]
            if any(o["request_id"] == want for o in objs) or time.monotonic() > deadline:
                return objs
            time.sleep(0.05)

    # --- RESP ------------------------------------------------------------------------------------------------------

    def test_resp_texts(self):
        with harness.RespConn(self.ports["resp"]) as c:
            self.assertEqual(c.call("PING"), NOAUTH)  # as redis-server with requirepass: only no_auth commands
            self.assertEqual(c.call("SELECT", "0"), NOAUTH)
            self.assertEqual(c.call("GET", "k"), NOAUTH)
            self.assertEqual(c.call("SET", "k", "v"), NOAUTH)
            self.assertEqual(c.call("AUTH", "alice", "nope"), WRONGPASS)
            self.assertEqual(c.call("AUTH", "nobody", "x"), WRONGPASS)
            self.assertEqual(c.call("AUTH", "alice", "alice-pw"), b"+OK\r\n")
            self.assertEqual(c.call("SET", "resp:k", "v"), b"+OK\r\n")
            self.assertEqual(c.call("GET", "resp:k"), b"$1\r\nv\r\n")
            self.assertEqual(c.call("CONFIG", "GET", "maxmemory"),
                             b"-NOPERM this user has no permissions to run the 'config|get' command\r\n")
            self.assertEqual(c.call("CLIENT", "LIST"),
                             b"-NOPERM this user has no permissions to run the 'client|list' command\r\n")
            # a failed AUTH keeps the identity (as Redis keeps the user)
            self.assertEqual(c.call("AUTH", "ops", "bad"), WRONGPASS)
            self.assertEqual(c.call("GET", "resp:k"), b"$1\r\nv\r\n")
        with harness.RespConn(self.ports["resp"]) as c:  # a token as AUTH's single argument: read only
            self.assertEqual(c.call("AUTH", "tok-a"), b"+OK\r\n")
            self.assertEqual(c.call("GET", "resp:k"), b"$1\r\nv\r\n")
            self.assertEqual(c.call("SET", "resp:k", "w"),
                             b"-NOPERM this user has no permissions to run the 'set' command\r\n")

    def test_hello_auth(self):
        with harness.RespConn(self.ports["resp"]) as c:
            self.assertEqual(c.call("HELLO", "3", "AUTH", "ops", "wrong"), WRONGPASS)
            reply = c.call("HELLO", "3", "AUTH", "ops", "ops-pw", "SETNAME", "obs")
            self.assertTrue(reply.startswith(b"%7\r\n"), reply)  # the store's HELLO reply, in RESP3
            self.assertIn(b"proto\r\n:3\r\n", reply)
            self.assertEqual(c.call("CONFIG", "GET", "maxmemory")[:1], b"%")  # ops has admin (a RESP3 map)
            self.assertEqual(c.call("CLIENT", "GETNAME"), b"$3\r\nobs\r\n")

    @unittest.skipIf(redis is None, "python3-redis not installed")
    def test_redis_py(self):
        good = redis.Redis(host="127.0.0.1", port=self.ports["resp"], username="alice", password="alice-pw",
                           socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(good.close)
        self.assertTrue(good.set("py:k", "1"))
        self.assertEqual(good.incr("py:k"), 2)
        with self.assertRaises(redis.exceptions.NoPermissionError) as cm:
            good.config_get("maxmemory")
        self.assertEqual(str(cm.exception), "this user has no permissions to run the 'config|get' command")
        anon = redis.Redis(host="127.0.0.1", port=self.ports["resp"], socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(anon.close)
        with self.assertRaises(redis.exceptions.AuthenticationError):
            anon.get("py:k")
        wrong = redis.Redis(host="127.0.0.1", port=self.ports["resp"], username="alice", password="no",
                            socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(wrong.close)
        # redis-py 4.3 raises the WRONGPASS of its connect-time AUTH as a plain ResponseError, as with redis-server
        with self.assertRaises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)) as cm:
            wrong.get("py:k")
        self.assertEqual(str(cm.exception), "WRONGPASS invalid username-password pair or user is disabled.")

    def test_redis_cli(self):
        cli = harness.REDIS_CLI
        if not os.path.exists(cli):
            self.skipTest("redis-cli not installed")
        base = [cli, "-p", str(self.ports["resp"])]
        ok = subprocess.run(base + ["--no-auth-warning", "--user", "alice", "--pass", "alice-pw", "SET", "cli:k", "1"],
                            capture_output=True, timeout=10)
        self.assertEqual(ok.stdout.strip(), b"OK", ok.stderr)
        anon = subprocess.run(base + ["GET", "cli:k"], capture_output=True, timeout=10)
        self.assertEqual(anon.stdout.strip(), b"NOAUTH Authentication required.")
        bad = subprocess.run(base + ["--no-auth-warning", "--user", "alice", "--pass", "x", "GET", "cli:k"],
                             capture_output=True, timeout=10)
        self.assertIn(b"WRONGPASS invalid username-password pair or user is disabled.", bad.stdout + bad.stderr)

    # --- HTTP ------------------------------------------------------------------------------------------------------

    def test_http_statuses(self):
        status, headers, body = self.http("GET", "/v1/kv/h:k")
        self.assertEqual(status, 401, body)
        self.assertEqual(headers.get("WWW-Authenticate"), 'Bearer realm="turret", Basic realm="turret"')
        self.assertEqual(json.loads(body)["error"]["code"], "unauthorized")
        status, headers, _ = self.http("GET", "/v1/kv/h:k", headers={"Authorization": "Bearer wrong"})
        self.assertEqual(status, 401)
        self.assertIn("WWW-Authenticate", headers)
        status, _, _ = self.http("GET", "/v1/kv/h:k", headers={"Authorization": basic("alice", "wrong")})
        self.assertEqual(status, 401)
        # alice writes (Basic), svc-a reads (Bearer) but may not write
        status, _, body = self.http("PUT", "/v1/kv/h:k", b"v1", {"Authorization": basic("alice", "alice-pw")})
        self.assertIn(status, (200, 201, 204), body)
        status, _, body = self.http("GET", "/v1/kv/h:k", headers={"Authorization": "Bearer tok-a"})
        self.assertEqual(status, 200, body)
        self.assertIn(b"v1", body)
        status, headers, body = self.http("PUT", "/v1/kv/h:k", b"v2", {"Authorization": "Bearer tok-a"})
        self.assertEqual(status, 403, body)
        self.assertNotIn("WWW-Authenticate", headers)
        self.assertEqual(json.loads(body)["error"]["code"], "forbidden")

    def test_admin_reload_needs_the_admin_class(self):
        # POST /admin/reload travels the listener's pipeline as an admin-class request: the auth layer decides.
        status, _, body = self.http("POST", "/admin/reload")
        self.assertEqual(status, 401, body)
        status, _, body = self.http("POST", "/admin/reload", headers={"Authorization": basic("alice", "alice-pw")})
        self.assertEqual(status, 403, body)
        status, _, body = self.http("POST", "/admin/reload", headers={"Authorization": "Bearer tok-a"})
        self.assertEqual(status, 403, body)
        status, _, body = self.http("POST", "/admin/reload", headers={"Authorization": basic("ops", "ops-pw")})
        self.assertEqual(status, 200, body)
        self.assertTrue(json.loads(body)["reloaded"])

    def test_http_credentials_do_not_carry_over_on_keep_alive(self):
        c = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=harness.IO_TIMEOUT)
        self.addCleanup(c.close)
        c.request("GET", "/v1/kv/h:none", headers={"Authorization": "Bearer tok-a"})
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 404)
        c.request("GET", "/v1/kv/h:none")  # same connection, no credentials
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 401)

    # --- gRPC ------------------------------------------------------------------------------------------------------

    def test_grpc_metadata(self):
        if not self.grpc:
            self.skipTest("no gRPC")
        import grpc
        import grpc_support
        pb = grpc_support.stubs()
        channel = grpc.insecure_channel(f"127.0.0.1:{self.ports['grpc']}")
        self.addCleanup(channel.close)
        kv = pb["kv_grpc"].KVStub(channel)
        with self.assertRaises(grpc.RpcError) as cm:
            kv.Get(pb["kv"].GetRequest(key=b"g:k"), timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        with self.assertRaises(grpc.RpcError) as cm:
            kv.Get(pb["kv"].GetRequest(key=b"g:k"), timeout=5, metadata=[("authorization", "Bearer nope")])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        with self.assertRaises(grpc.RpcError) as cm:
            kv.Set(pb["kv"].SetRequest(key=b"g:k", value=b"v"), timeout=5, metadata=[("authorization", "Bearer tok-a")])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        kv.Set(pb["kv"].SetRequest(key=b"g:k", value=b"v"), timeout=5,
               metadata=[("authorization", basic("alice", "alice-pw"))])
        r = kv.Get(pb["kv"].GetRequest(key=b"g:k"), timeout=5, metadata=[("authorization", "Bearer tok-a")])
        self.assertEqual(r.value, b"v")

    # --- access log ------------------------------------------------------------------------------------------------

    def test_access_log_lines(self):
        status, headers, _ = self.http("GET", "/v1/kv/log:k", headers={"Authorization": "Bearer tok-a",
                                                                       "x-request-id": "obs-req-1"})
        self.assertEqual(status, 404)
        self.http("GET", "/v1/kv/log:k", headers={"x-request-id": "obs-req-2"})  # 401: logged (errors: always)
        objs = self.access_lines("obs-req-2")
        by_id = {o["request_id"]: o for o in objs}
        self.assertIn("obs-req-1", by_id, objs)
        one = by_id["obs-req-1"]
        self.assertEqual(list(one), ["time", "request_id", "protocol", "peer", "identity", "command", "outcome",
                                     "duration_us"])
        self.assertEqual((one["protocol"], one["identity"], one["command"], one["outcome"]),
                         ("http", "svc-a", "get", "ok"))
        self.assertRegex(one["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertRegex(one["peer"], r"^127\.0\.0\.1:\d+$")
        self.assertIsInstance(one["duration_us"], int)
        two = by_id["obs-req-2"]
        self.assertEqual((two["outcome"], two["error"]), ("failed", "unauthenticated"))
        # RESP: a NOAUTH reply is an error reply of the command
        with harness.RespConn(self.ports["resp"]) as c:
            c.call("GET", "log:\xff")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            resp = [o for o in self.access_lines("") if o["protocol"] == "resp" and o.get("error") == "NOAUTH"]
            if resp:
                break
            time.sleep(0.05)
        self.assertTrue(resp)
        self.assertEqual((resp[-1]["command"], resp[-1]["outcome"]), ("get", "error"))

    # --- metrics ---------------------------------------------------------------------------------------------------

    def test_metrics_series_and_info(self):
        edge_ok = 'turret_layer_requests_total{pipeline="guarded",layer="edge",outcome="ok"}'
        core_ok = 'turret_layer_requests_total{pipeline="guarded",layer="core",outcome="ok"}'
        failed = 'turret_layer_requests_total{pipeline="guarded",layer="edge",outcome="unauthenticated"}'
        before = (self.series(edge_ok), self.series(core_ok), self.series(failed))
        for _ in range(3):
            self.http("GET", "/v1/kv/m:k", headers={"Authorization": "Bearer tok-a"})  # 404: ok replies
        self.http("GET", "/v1/kv/m:k")  # rejected by auth: the edge layer sees the failure, the core one nothing
        after = (self.series(edge_ok), self.series(core_ok), self.series(failed))
        self.assertEqual(after[0] - before[0], 3)
        self.assertEqual(after[1] - before[1], 3)
        self.assertEqual(after[2] - before[2], 1)
        text = self.metrics_text()
        self.assertIn('turret_layer_duration_seconds_count{pipeline="guarded",layer="edge"}', text)
        self.assertIn('turret_auth_rejected_total{pipeline="guarded",reason="unauthenticated"}', text)
        with harness.RespConn(self.ports["resp"]) as c:
            self.assertEqual(c.call("AUTH", "alice", "alice-pw"), b"+OK\r\n")
            info = c.call("INFO", "pipelines").decode()
            self.assertIn("# Pipelines\r\n", info)
            self.assertRegex(info, r"layer_guarded_edge:requests=\d+,ok=\d+,error=\d+,failed=\d+,usec=\d+\r\n")
            self.assertRegex(info, r"layer_guarded_core:requests=\d+")
            self.assertNotIn("# Pipelines", c.call("INFO").decode())  # the default sections are Redis's
            self.assertNotIn("# Pipelines", c.call("INFO", "all").decode())
            self.assertIn("# Pipelines", c.call("INFO", "everything").decode())


if __name__ == "__main__":
    unittest.main()
