"""HTTP/1.1 REST front end of turretd: every route and status, binary keys and values, cross-protocol with RESP,
Server-Sent Events, malformed HTTP (the server stays up), and docs/openapi.json against the routes really served.

Real clients only: urllib, curl, raw sockets and python3-redis, against a real turretd on free ports."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import harness

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

HTTP_RE = re.compile(rb"listening\s+http\s+\S*?:(\d+)")
CURL = shutil.which("curl") or "/usr/bin/curl"


def http_config(http: dict | None = None, level: str = "info") -> str:
    """turretd config: the harness's RESP listener plus an HTTP listener on 127.0.0.1:0."""
    text = harness.turretd_yaml(level=level, threads=2)
    lines = ["  - name: http", "    protocol: http", "    address: 127.0.0.1:0"]
    if http:
        lines.append("    http:")
        lines += harness._yaml_lines(http, 6)
    return text.replace("store:\n", "\n".join(lines) + "\nstore:\n", 1)


def start_server(owner, http: dict | None = None):
    harness.require_turretd(owner)
    srv = harness.start_target(owner, http_config(http))
    deadline = time.monotonic() + harness.START_TIMEOUT
    while True:
        m = HTTP_RE.search(Path(srv.log_path).read_bytes())
        if m:
            srv.http_port = int(m.group(1))
            return srv
        if time.monotonic() > deadline:
            raise AssertionError("no 'listening http' line:\n" + srv.log_text())
        time.sleep(0.02)


class Response:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Response:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def raw(port: int, data: bytes, timeout: float = 5.0, until_close: bool = True) -> bytes:
    """Sends raw bytes and returns everything read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not until_close and b"\r\n\r\n" in out:
                break
        return out


def q(key: bytes | str) -> str:
    return urllib.parse.quote(key, safe="")


class SseStream:
    """A raw-socket Server-Sent Events reader (chunked transfer decoding kept minimal: we search event text)."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.buf = b""

    def read_until(self, needle: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {needle!r}; got {self.buf!r}")
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"stream closed waiting for {needle!r}; got {self.buf!r}")
            self.buf += chunk
        return self.buf

    def events(self) -> list[dict]:
        return [json.loads(m) for m in re.findall(rb"data: (\{.*?\})\n", self.buf)]

    def close(self) -> None:
        self.sock.close()


class HttpRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = start_server(cls, {"max_header_bytes": "8kb", "max_body_bytes": "64kb", "max_uri_bytes": "2kb",
                                     "header_timeout": "1s", "idle_timeout": "30s"})
        cls.port = cls.srv.http_port

    def setUp(self):
        with self.srv.conn() as c:
            c.call("FLUSHALL")

    def test_health_ready_metrics(self):
        r = request(self.port, "GET", "/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        r = request(self.port, "GET", "/readyz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ready"}))
        request(self.port, "GET", "/v1/kv/nope")
        r = request(self.port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        text = r.body.decode()
        self.assertIn("# TYPE turret_requests_total counter", text)
        self.assertRegex(text, r'turret_requests_total\{frontend="http",command="kv.get",status="404"\} \d+')
        self.assertIn('turret_request_duration_seconds_bucket{frontend="http",command="kv.get",le="+Inf"}', text)
        self.assertRegex(text, r'turret_connections\{frontend="http"\} \d+')
        self.assertRegex(text, r"turret_keys \d+")
        self.assertRegex(text, r"process_resident_memory_bytes \d+")

    def test_put_get_head_delete(self):
        r = request(self.port, "PUT", "/v1/kv/greeting", b"hello")
        self.assertEqual(r.status, 201)
        r = request(self.port, "PUT", "/v1/kv/greeting", b"hello2")
        self.assertEqual(r.status, 200)
        r = request(self.port, "GET", "/v1/kv/greeting")
        self.assertEqual((r.status, r.body, r.headers["Content-Type"]), (200, b"hello2", "application/octet-stream"))
        r = request(self.port, "HEAD", "/v1/kv/greeting")
        self.assertEqual((r.status, r.body, r.headers["Content-Length"]), (200, b"", "6"))
        r = request(self.port, "PUT", "/v1/kv/greeting?get=true", b"v3")
        self.assertEqual((r.status, r.body), (200, b"hello2"))
        self.assertEqual(request(self.port, "DELETE", "/v1/kv/greeting").status, 204)
        r = request(self.port, "DELETE", "/v1/kv/greeting")
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "not_found"))
        r = request(self.port, "GET", "/v1/kv/greeting")
        self.assertEqual(r.status, 404)
        self.assertEqual(set(r.json()["error"]), {"code", "message"})
        self.assertEqual(request(self.port, "HEAD", "/v1/kv/greeting").status, 404)

    def test_conditions_and_ttl(self):
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k?xx=true", b"v").status, 412)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k?nx=true", b"v").status, 201)
        r = request(self.port, "PUT", "/v1/kv/k?nx=true", b"w")
        self.assertEqual((r.status, r.json()["error"]["code"]), (412, "precondition_failed"))
        self.assertEqual(request(self.port, "GET", "/v1/kv/k").body, b"v")
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k?xx=true", b"x").status, 200)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k?nx=true&xx=true", b"x").status, 400)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k?ttl=bogus", b"x").status, 400)
        self.assertEqual(request(self.port, "GET", "/v1/kv/k/ttl").json(), {"ttl_ms": None})
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k?ttl=30s", b"x").status, 200)
        ttl = request(self.port, "GET", "/v1/kv/k/ttl").json()["ttl_ms"]
        self.assertTrue(29000 < ttl <= 30000, ttl)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k/ttl?ttl_ms=100000").status, 204)
        self.assertGreater(request(self.port, "GET", "/v1/kv/k/ttl").json()["ttl_ms"], 90000)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k/ttl").status, 400)
        self.assertEqual(request(self.port, "DELETE", "/v1/kv/k/ttl").status, 204)
        self.assertEqual(request(self.port, "GET", "/v1/kv/k/ttl").json(), {"ttl_ms": None})
        self.assertEqual(request(self.port, "DELETE", "/v1/kv/k/ttl").status, 204)  # exists, no ttl
        self.assertEqual(request(self.port, "GET", "/v1/kv/missing/ttl").status, 404)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/missing/ttl?ttl=5s").status, 404)
        self.assertEqual(request(self.port, "DELETE", "/v1/kv/missing/ttl").status, 404)
        self.assertEqual(request(self.port, "PUT", "/v1/kv/short?ttl_ms=50", b"x").status, 201)
        time.sleep(0.2)
        self.assertEqual(request(self.port, "GET", "/v1/kv/short").status, 404)

    def test_incr(self):
        r = request(self.port, "POST", "/v1/kv/n/incr")
        self.assertEqual((r.status, r.json()), (200, 1))
        r = request(self.port, "POST", "/v1/kv/n/incr?by=41")
        self.assertEqual((r.status, r.body), (200, b"42"))
        self.assertEqual(request(self.port, "POST", "/v1/kv/n/incr?by=-50").json(), -8)
        self.assertEqual(request(self.port, "POST", "/v1/kv/n/incr?by=x").status, 400)
        request(self.port, "PUT", "/v1/kv/s", b"abc")
        r = request(self.port, "POST", "/v1/kv/s/incr")
        self.assertEqual((r.status, r.json()["error"]["code"]), (409, "not_integer"))

    def test_mget_mset(self):
        r = request(self.port, "POST", "/v1/kv:mset", json.dumps({"values": {"a": "1", "b": "2"}}).encode(),
                    {"Content-Type": "application/json"})
        self.assertEqual(r.status, 204)
        r = request(self.port, "POST", "/v1/kv:mget", json.dumps({"keys": ["a", "b", "zz"]}).encode())
        self.assertEqual((r.status, r.json()), (200, {"values": ["1", "2", None], "encoding": "utf8"}))
        r = request(self.port, "POST", "/v1/kv:mset", json.dumps({"values": {"a": "9", "c": "3"}, "nx": True}).encode())
        self.assertEqual(r.status, 412)
        self.assertEqual(request(self.port, "GET", "/v1/kv/c").status, 404)
        # binary through base64
        k, v = b"\x00bin\xffkey", b"\xff\xfe\x00value"
        body = {"encoding": "base64", "values": {base64.b64encode(k).decode(): base64.b64encode(v).decode()}}
        self.assertEqual(request(self.port, "POST", "/v1/kv:mset", json.dumps(body).encode()).status, 204)
        self.assertEqual(request(self.port, "GET", "/v1/kv/" + q(k)).body, v)
        r = request(self.port, "POST", "/v1/kv:mget",
                    json.dumps({"keys": [base64.b64encode(k).decode()], "encoding": "base64"}).encode())
        self.assertEqual(base64.b64decode(r.json()["values"][0]), v)
        # a non-UTF-8 value read as utf8 comes back base64 (stated in "encoding")
        r = request(self.port, "POST", "/v1/kv:mget", json.dumps({"keys": ["a"]}).encode())
        self.assertEqual(r.json()["encoding"], "utf8")
        self.assertEqual(request(self.port, "POST", "/v1/kv:mget", b"{not json").status, 400)
        self.assertEqual(request(self.port, "POST", "/v1/kv:mget", b'{"keys": 5}').status, 400)

    def test_one_ttl_rule(self):
        """ttl_ms=0 / ttl=0 (and negative, and sub-millisecond) is 400 "ttl must be positive" on every TTL route."""
        self.assertEqual(request(self.port, "PUT", "/v1/kv/k", b"v").status, 201)
        for route, body in (("/v1/kv/k", b"v2"), ("/v1/kv/k/ttl", None)):
            for query in ("ttl_ms=0", "ttl=0", "ttl=0s", "ttl=0.0001s", "ttl_ms=-5"):
                r = request(self.port, "PUT", f"{route}?{query}", body)
                self.assertEqual((r.status, r.json()["error"]["message"]), (400, "ttl must be positive"),
                                 f"{route}?{query}")
            r = request(self.port, "PUT", f"{route}?ttl_ms=abc", body)
            self.assertEqual((r.status, r.json()["error"]["code"]), (400, "bad_request"))
        r = request(self.port, "GET", "/v1/kv/k")  # nothing was deleted or overwritten
        self.assertEqual((r.status, r.body), (200, b"v"))
        self.assertEqual(request(self.port, "GET", "/v1/kv/k/ttl").json(), {"ttl_ms": None})
        out = subprocess.run([CURL, "-s", "-X", "PUT", f"http://127.0.0.1:{self.port}/v1/kv/k/ttl?ttl_ms=0"],
                             capture_output=True, timeout=10)
        self.assertEqual(json.loads(out.stdout)["error"]["message"], "ttl must be positive")

    def test_unknown_json_fields(self):
        r = request(self.port, "POST", "/v1/kv:mset", b'{"values":{"a":"1"}}')
        self.assertEqual(r.status, 204)
        r = request(self.port, "POST", "/v1/kv:mset", b'{"values":{"a":"2"},"if_none_exist":true}')
        self.assertEqual((r.status, r.json()["error"]["code"]), (400, "bad_request"))
        self.assertIn('"if_none_exist"', r.json()["error"]["message"])
        self.assertEqual(request(self.port, "GET", "/v1/kv/a").body, b"1")  # not overwritten
        r = request(self.port, "POST", "/v1/kv:mget", b'{"keys":["a"],"limit":5}')
        self.assertEqual(r.status, 400)
        self.assertIn('"limit"', r.json()["error"]["message"])
        r = request(self.port, "POST", "/v1/kv:mget", b'{"keys":["a"],"encoding":"utf8"}')
        self.assertEqual((r.status, r.json()["values"]), (200, ["1"]))

    def test_one_key_rule(self):
        """An empty key is refused on every route, whether it comes from the path or a JSON body."""
        bodies = [("POST", "/v1/kv:mset", {"values": {"": "v"}}),
                  ("POST", "/v1/kv:mset", {"values": {"": "", "b": "x"}, "encoding": "base64"}),
                  ("POST", "/v1/kv:mget", {"keys": [""]}),
                  ("POST", "/v1/kv:mget", {"keys": ["YQ==", ""], "encoding": "base64"})]
        for method, path, body in bodies:
            r = request(self.port, method, path, json.dumps(body).encode())
            self.assertEqual((r.status, r.json()["error"]["message"]), (400, "empty key"), body)
        for method, path in (("GET", "/v1/kv/"), ("PUT", "/v1/kv/"), ("DELETE", "/v1/kv/"), ("GET", "/v1/kv//ttl"),
                             ("PUT", "/v1/kv//ttl?ttl=5s"), ("POST", "/v1/kv//incr")):
            r = request(self.port, method, path, b"x" if method == "PUT" else None)
            self.assertEqual((r.status, r.json()["error"]["message"]), (400, "empty key"), f"{method} {path}")
        with self.srv.conn() as c:
            self.assertEqual(c.call("DBSIZE"), b":0\r\n")

    def test_strict_base64(self):
        def mset(values: dict) -> Response:
            return request(self.port, "POST", "/v1/kv:mset",
                           json.dumps({"values": values, "encoding": "base64"}).encode())

        for bad in ("YR==", "YQ", "=", "YQ=", "Y===", "YWJ=", "-_-_", "YQ== ", "YQ\n=="):
            self.assertEqual(mset({bad: "eA=="}).status, 400, f"key {bad!r}")
            self.assertEqual(mset({"YQ==": bad}).status, 400, f"value {bad!r}")
            r = request(self.port, "POST", "/v1/kv:mget", json.dumps({"keys": [bad], "encoding": "base64"}).encode())
            self.assertEqual(r.status, 400, f"mget {bad!r}")
        with self.srv.conn() as c:
            self.assertEqual(c.call("DBSIZE"), b":0\r\n")
        self.assertEqual(mset({"YQ==": "eA==", "YWI=": "", "+/+/": "YWJj"}).status, 204)
        self.assertEqual(request(self.port, "GET", "/v1/kv/a").body, b"x")
        self.assertEqual(request(self.port, "GET", "/v1/kv/ab").body, b"")
        self.assertEqual(request(self.port, "GET", "/v1/kv/" + q(b"\xfb\xff\xbf")).body, b"abc")

    def test_scan_paging(self):
        for i in range(250):
            request(self.port, "PUT", f"/v1/kv/user:{i}", b"x")
        request(self.port, "PUT", "/v1/kv/other", b"x")
        request(self.port, "PUT", "/v1/kv/" + q("us*r"), b"x")
        seen, cursor, pages = set(), None, 0
        while True:
            path = "/v1/kv?prefix=user%3A&limit=50" + (f"&cursor={cursor}" if cursor else "")
            r = request(self.port, "GET", path)
            self.assertEqual(r.status, 200, r.body)
            page = r.json()
            seen.update(page["keys"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
            self.assertLess(pages, 100)
        self.assertEqual(seen, {f"user:{i}" for i in range(250)})
        self.assertGreater(pages, 1)
        r = request(self.port, "GET", "/v1/kv?prefix=us*")
        self.assertEqual(r.json()["keys"], ["us*r"])  # the prefix is literal, not a glob
        self.assertEqual(request(self.port, "GET", "/v1/kv?limit=0").status, 400)
        self.assertEqual(request(self.port, "GET", "/v1/kv?cursor=abc").status, 400)

    def test_binary_keys_and_values(self):
        key = bytes(range(256))
        value = bytes(reversed(range(256))) * 3
        self.assertEqual(request(self.port, "PUT", "/v1/kv/" + q(key), value).status, 201)
        self.assertEqual(request(self.port, "GET", "/v1/kv/" + q(key)).body, value)
        r = redis.Redis(port=self.srv.port) if redis else None
        if r:
            self.assertEqual(r.get(key), value)
            r.close()

    def test_request_id(self):
        r = request(self.port, "GET", "/healthz", headers={"x-request-id": "abc-123"})
        self.assertEqual(r.headers["x-request-id"], "abc-123")
        r1 = request(self.port, "GET", "/v1/kv/none")
        r2 = request(self.port, "GET", "/v1/kv/none")
        self.assertTrue(r1.headers["x-request-id"])
        self.assertNotEqual(r1.headers["x-request-id"], r2.headers["x-request-id"])

    def test_error_statuses(self):
        r = request(self.port, "GET", "/v1/nope")
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, "not_found"))
        r = request(self.port, "POST", "/v1/kv/x")
        self.assertEqual((r.status, r.headers["Allow"]), (405, "GET, HEAD, PUT, DELETE"))
        self.assertEqual(request(self.port, "GET", "/v1/kv/%zz").status, 400)
        # 411: PUT without Content-Length or chunked
        out = raw(self.port, b"PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 411 "), out)
        # 413: body over max_body_bytes (64kb)
        r = request(self.port, "PUT", "/v1/kv/big", b"x" * (65 * 1024))
        self.assertEqual((r.status, r.json()["error"]["code"]), (413, "payload_too_large"))
        # 414: target over max_uri_bytes (2kb)
        r = request(self.port, "GET", "/v1/kv/" + "k" * 3000)
        self.assertEqual(r.status, 414)
        # 431: headers over max_header_bytes (8kb)
        r = request(self.port, "GET", "/healthz", headers={"X-Big": "a" * 9000})
        self.assertEqual(r.status, 431)
        # 409: WRONGTYPE (a list created over RESP, when the core has lists)
        with self.srv.conn() as c:
            reply = c.call("LPUSH", "list", "a")
        if reply.startswith(b":"):
            self.assertEqual(request(self.port, "GET", "/v1/kv/list").status, 409)
        self.assertEqual(request(self.port, "GET", "/healthz").status, 200)

    def test_curl_keepalive_and_chunked(self):
        out = subprocess.run([CURL, "-s", "-i", "-X", "PUT", "-H", "Transfer-Encoding: chunked", "--data-binary", "chunky",
                              f"http://127.0.0.1:{self.port}/v1/kv/ck", "--next", "-s",
                              f"http://127.0.0.1:{self.port}/v1/kv/ck"], capture_output=True, timeout=10)
        self.assertIn(b"HTTP/1.1 201 Created", out.stdout)
        self.assertTrue(out.stdout.endswith(b"chunky"), out.stdout)
        # Expect: 100-continue (curl sends it for bodies > 1 MiB or when asked)
        out = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H",
                              "Expect: 100-continue", "--data-binary", "x" * 2000,
                              f"http://127.0.0.1:{self.port}/v1/kv/exp"], capture_output=True, timeout=10)
        self.assertEqual(out.stdout, b"201")

    def test_pipelined_in_order(self):
        reqs = b"".join(f"PUT /v1/kv/p{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{i % 10}".encode()
                        for i in range(20))
        reqs += b"".join(f"GET /v1/kv/p{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(20))
        reqs += b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
        out = raw(self.port, reqs)
        self.assertEqual(out.count(b"HTTP/1.1 201 Created"), 20)
        bodies = re.findall(rb"application/octet-stream\r\nContent-Length: 1\r\nx-request-id: \w+\r\n\r\n(\d)", out)
        self.assertEqual(bodies, [str(i % 10).encode() for i in range(20)])

    def test_publish_subscribe_sse(self):
        sse = SseStream(self.port, "/v1/subscribe/news")
        self.addCleanup(sse.close)
        head = sse.read_until(b"event: subscribed")
        self.assertIn(b"Content-Type: text/event-stream", head)
        r = request(self.port, "POST", "/v1/publish/news", b"line1\nline2")
        self.assertEqual((r.status, r.json()), (200, {"receivers": 1}))
        sse.read_until(b"event: message")
        self.assertIn({"channel": "news", "message": "line1\nline2"}, sse.events())
        # pattern subscription, and a message published over RESP
        psse = SseStream(self.port, "/v1/subscribe/" + q("sport.*") + "?pattern=true")
        self.addCleanup(psse.close)
        psse.read_until(b"event: subscribed")
        with self.srv.conn() as c:
            self.assertEqual(c.call("PUBLISH", "sport.golf", "fore"), b":1\r\n")
        psse.read_until(b"event: pmessage")
        self.assertIn({"pattern": "sport.*", "channel": "sport.golf", "message": "fore"}, psse.events())

    def test_openapi_matches_routes(self):
        r = request(self.port, "GET", "/v1/openapi.json")
        self.assertEqual(r.status, 200)
        doc_bytes = (harness.SOURCE_DIR / "docs" / "openapi.json").read_bytes()
        self.assertEqual(r.body, doc_bytes, "served document differs from docs/openapi.json")
        doc = json.loads(doc_bytes)
        self.assertTrue(doc["openapi"].startswith("3."))
        methods = ["get", "head", "put", "post", "delete"]
        for path, item in doc["paths"].items():
            concrete = path.replace("{key}", "openapi-probe").replace("{channel}", "openapi-probe")
            for m in methods:
                if m == "get" and "subscribe" in path:
                    out = raw(self.port, f"GET {concrete} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), timeout=1,
                              until_close=False)
                    self.assertTrue(out.startswith(b"HTTP/1.1 200"), out)
                    continue
                headers = {"Content-Type": "application/json"}
                body = b"{}" if m in ("put", "post") else None
                resp = request(self.port, m.upper(), concrete, body, headers)
                if m in item:
                    self.assertNotEqual(resp.status, 405, f"{m} {path} documented but not allowed")
                    if resp.status == 404 and resp.body:
                        self.assertNotEqual(resp.json()["error"]["message"], "no such route", f"{m} {path}")
                else:
                    self.assertEqual(resp.status, 405, f"{m} {path} served but not documented")


class HttpCrossProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if redis is None:
            raise unittest.SkipTest("python3-redis not available")
        cls.srv = start_server(cls)
        cls.port = cls.srv.http_port

    def test_set_resp_get_http_and_back(self):
        r = redis.Redis(port=self.srv.port)
        self.addCleanup(r.close)
        r.set(b"x\x00y", b"\x01\x02")
        self.assertEqual(request(self.port, "GET", "/v1/kv/" + q(b"x\x00y")).body, b"\x01\x02")
        request(self.port, "PUT", "/v1/kv/fromhttp?ttl=100s", b"hv")
        self.assertEqual(r.get("fromhttp"), b"hv")
        self.assertTrue(95 <= r.ttl("fromhttp") <= 100)
        r.set("cnt", 5)
        self.assertEqual(request(self.port, "POST", "/v1/kv/cnt/incr?by=2").json(), 7)
        self.assertEqual(r.get("cnt"), b"7")
        clients = r.client_list()
        self.assertTrue(any(c.get("cmd") for c in clients))

    def test_http_publish_reaches_resp_and_sse(self):
        r = redis.Redis(port=self.srv.port)
        self.addCleanup(r.close)
        ps = r.pubsub()
        self.addCleanup(ps.close)
        ps.subscribe("chan")
        deadline = time.monotonic() + 5
        while ps.get_message(timeout=0.1) is None and time.monotonic() < deadline:
            pass
        sse = SseStream(self.port, "/v1/subscribe/chan")
        self.addCleanup(sse.close)
        sse.read_until(b"event: subscribed")
        resp = request(self.port, "POST", "/v1/publish/chan", b"hello all")
        self.assertEqual(resp.json(), {"receivers": 2})
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = ps.get_message(timeout=0.2)
        self.assertEqual(msg["data"], b"hello all")
        sse.read_until(b"hello all")


class HttpMalformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = start_server(cls, {"max_header_bytes": "4kb", "header_timeout": "500ms", "idle_timeout": "2s"})
        cls.port = cls.srv.http_port

    def assertAlive(self):
        self.assertEqual(request(self.port, "GET", "/healthz").status, 200)
        self.assertTrue(self.srv.alive())

    def test_bad_request_line(self):
        for bad in [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /healthz HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                    b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"]:
            out = raw(self.port, bad)
            self.assertRegex(out, rb"^HTTP/1\.1 (400|505) ", bad)
        self.assertAlive()

    def test_oversized_headers(self):
        out = raw(self.port, b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 5000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out)
        self.assertIn(b'"header_too_large"', out)
        self.assertAlive()

    def test_invalid_chunking(self):
        out = raw(self.port, b"PUT /v1/kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\nabc\r\n0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
        self.assertAlive()

    def test_slow_headers_timeout(self):
        socks = []
        start = time.monotonic()
        for _ in range(20):  # slowloris: many connections that never finish their headers
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        self.assertAlive()  # others are still served meanwhile
        for s in socks:
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data)
            s.close()
        self.assertLess(time.monotonic() - start, 4)
        self.assertAlive()

    def test_idle_keepalive_closed(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            self.assertIn(b"200 OK", s.recv(4096))
            start = time.monotonic()
            self.assertEqual(s.recv(4096), b"")  # idle_timeout 2s
            self.assertLess(time.monotonic() - start, 4)


SMUGGLED = b"PUT /v1/kv/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nPWNED!"


def statuses(out: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)]


class HttpFraming(unittest.TestCase):
    """Finding 6 of issue 8: RFC 9112 message framing. A request with ambiguous framing is answered and its connection
    closed; the request hidden after it in the same bytes is never run."""

    @classmethod
    def setUpClass(cls):
        cls.srv = start_server(cls, {"header_timeout": "1s", "idle_timeout": "5s"})
        cls.port = cls.srv.http_port

    def smuggle(self, fields: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
        out = raw(self.port, b"GET /healthz HTTP/" + version + b"\r\nHost: x\r\n" + fields + b"\r\n" + body + SMUGGLED)
        with self.srv.conn() as c:
            self.assertEqual(c.call("EXISTS", "smuggled"), b":0\r\n", f"{fields!r} {body!r}: the smuggled PUT ran")
        return out

    def assertRefused(self, out: bytes, status: int, case) -> None:
        self.assertEqual(statuses(out), [status], f"{case!r}: {out!r}")  # one answer, then the close (raw read to EOF)
        self.assertIn(b"Connection: close\r\n", out)
        body = json.loads(out.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["error"]["code"], "bad_request" if status == 400 else "not_implemented")

    def test_final_coding_not_chunked_is_400(self):
        for te in (b"xchunked", b"chunked, gzip", b"chunked , identity", b"chunked, chunked", b"", b",", b"gzip",
                   b"chunked;x=1"):
            self.assertRefused(self.smuggle(b"Transfer-Encoding: " + te + b"\r\n"), 400, te)
            self.assertRefused(self.smuggle(b"Transfer-Encoding: " + te + b"\r\n", b"0\r\n\r\n"), 400, te)
        self.assertRefused(self.smuggle(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), 400, "2 lines")

    def test_unimplemented_coding_is_501(self):
        for te in (b"gzip, chunked", b"GZIP ,\tchunked", b"identity, chunked", b"deflate;q=1, chunked"):
            self.assertRefused(self.smuggle(b"Transfer-Encoding: " + te + b"\r\n", b"0\r\n\r\n"), 501, te)
        self.assertRefused(self.smuggle(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
                           501, "2 lines")

    def test_transfer_encoding_and_content_length_is_400(self):
        for fields in (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                       b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                       b"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n",
                       b"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n"):
            self.assertRefused(self.smuggle(fields, b"0\r\n\r\n"), 400, fields)

    def test_http10_transfer_encoding_is_400(self):
        self.assertRefused(self.smuggle(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", b"1.0"), 400, "1.0")

    def test_bad_content_length_is_400(self):
        for fields in (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"Content-Length: 5, 6\r\n",
                       b"Content-Length: +5\r\n", b"Content-Length: -1\r\n", b"Content-Length: 0x5\r\n",
                       b"Content-Length: \r\n", b"Content-Length: 99999999999999999999999\r\n"):
            self.assertRefused(self.smuggle(fields, b"abcde"), 400, fields)

    def test_valid_framing_keeps_the_connection(self):
        """The same bytes after a correctly framed body are just the next pipelined request."""
        for fields, body in ((b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
                             (b"Transfer-Encoding: ,CHUNKED ,\r\n", b"3\r\nabc\r\n0\r\n\r\n"),
                             (b"Content-Length: 5\r\n", b"abcde"), (b"Content-Length: 5, 5\r\n", b"abcde")):
            out = raw(self.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + body + SMUGGLED +
                      b"GET /v1/kv/smuggled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertEqual(statuses(out), [200, 201, 200], out)
            self.assertTrue(out.endswith(b"PWNED!"), out)
            self.assertEqual(request(self.port, "DELETE", "/v1/kv/smuggled").status, 204)

    def test_curl_chunked_upload(self):
        out = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H",
                              "Transfer-Encoding: chunked", "--data-binary", "x" * 100000,
                              f"http://127.0.0.1:{self.port}/v1/kv/big"], capture_output=True, timeout=10)
        self.assertEqual(out.stdout, b"201")
        self.assertEqual(len(request(self.port, "GET", "/v1/kv/big").body), 100000)


class HttpConnectionLifetime(unittest.TestCase):
    """Every way an HTTP connection ends takes its session out of the store: CLIENT LIST and INFO keep answering and list
    no HTTP client once they are all gone."""

    @classmethod
    def setUpClass(cls):
        cls.srv = start_server(cls, {"header_timeout": "300ms", "body_timeout": "300ms", "idle_timeout": "20s"})
        cls.port = cls.srv.http_port

    def http_clients(self, c) -> int:
        """CLIENT LIST lines of connections to the HTTP listener (laddr is the listener's address)."""
        return sum(1 for line in c.call("CLIENT", "LIST").split(b"\n") if b" laddr=127.0.0.1:%d " % self.port in line)

    def wait_http_clients(self, c, want: int) -> int:
        deadline = time.monotonic() + 5
        n = self.http_clients(c)
        while n != want and time.monotonic() < deadline:
            time.sleep(0.05)
            n = self.http_clients(c)
        return n

    def test_sessions_detached_however_connections_end(self):
        with self.srv.conn() as c:
            idle = socket.create_connection(("127.0.0.1", self.port))
            self.addCleanup(idle.close)
            self.assertEqual(self.wait_http_clients(c, 1), 1)  # an open HTTP connection is listed
            for data in (b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",  # closed after a response
                         b"GARBAGE\r\n\r\n",  # a codec error
                         b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n" + SMUGGLED,  # bad framing
                         b"GET /healthz HTTP/1.1\r\nHost: x\r\n",  # 408 in the header
                         b"PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"):  # 408 in the body
                raw(self.port, data)
            with socket.create_connection(("127.0.0.1", self.port)) as s:  # reset by the client mid-body
                s.sendall(b"PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sse = SseStream(self.port, "/v1/subscribe/lifetime")  # an event stream the client leaves
            sse.read_until(b"event: subscribed")
            sse.close()
            for _ in range(3):  # curl, keep-alive reuse within one run
                subprocess.run([CURL, "-s", "-o", "/dev/null", f"http://127.0.0.1:{self.port}/v1/kv/a",
                                "--next", "-s", "-o", "/dev/null", f"http://127.0.0.1:{self.port}/healthz"],
                               timeout=10, check=True)
            self.assertEqual(self.wait_http_clients(c, 1), 1, c.call("CLIENT", "LIST"))  # only `idle` is left
            idle.close()
            self.assertEqual(self.wait_http_clients(c, 0), 0, c.call("CLIENT", "LIST"))
            self.assertTrue(c.call("INFO", "clients").startswith(b"$"))
            self.assertEqual(c.call("PUBSUB", "NUMSUB", "lifetime"), b"*2\r\n$8\r\nlifetime\r\n:0\r\n")
        self.assertTrue(self.srv.alive())


if __name__ == "__main__":
    unittest.main()
