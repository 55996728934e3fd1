"""Malformed input: random bytes, truncated frames, huge declared lengths, a multibulk header of a million elements.
The server must answer with Redis's errors (exact "Protocol error" cases are in tests/differential/
protocol_errors.txt), stay up, keep memory bounded, and other clients must be unaffected throughout."""
import random
import re
import socket
import time
import unittest

import harness
from harness import RespConn, encode_command, reply_end

PROTOCOL_ERROR_EXPECTED = re.compile(rb"-ERR Protocol error: expected '\$', got '.'\r\n", re.S)
PROTOCOL_ERRORS = {
    b"-ERR Protocol error: invalid multibulk length\r\n",
    b"-ERR Protocol error: invalid bulk length\r\n",
    b"-ERR Protocol error: too big mbulk count string\r\n",
    b"-ERR Protocol error: too big bulk count string\r\n",
    b"-ERR Protocol error: too big inline request\r\n",
    b"-ERR Protocol error: unbalanced quotes in request\r\n",
}


def exchange(port: int, data: bytes, quiet: float = 0.3, half_close: bool = False) -> tuple[bytes, bool]:
    """Send data on a fresh connection; return (everything received within the quiet period, closed by server)."""
    with RespConn(port) as c:
        try:
            c.send(data)
            if half_close:
                c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = c.read_available(quiet)
        return out, c.eof


def split_replies(data: bytes) -> list[bytes]:
    """Complete RESP replies in data (raises if data is not a sequence of well-formed replies)."""
    out, pos = [], 0
    while pos < len(data):
        end = reply_end(data, pos)
        if end is None:
            raise AssertionError(f"incomplete or malformed reply bytes: {data[pos:pos + 200]!r}")
        out.append(data[pos:end])
        pos = end
    return out


class Malformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.start_target(cls)

    def setUp(self):
        # a well-behaved client connected for the whole test: it must never notice anything
        self.bystander = RespConn(self.server.port)
        self.addCleanup(self.bystander.close)
        self.assertEqual(self.bystander.call("SET", "bystander", "ok"), b"+OK\r\n")

    def assert_healthy(self):
        self.assertTrue(self.server.alive(), self.server.describe())
        self.assertEqual(self.bystander.call("GET", "bystander"), b"$2\r\nok\r\n")
        with RespConn(self.server.port) as c:
            self.assertEqual(c.call("PING"), b"+PONG\r\n")

    def test_random_bytes(self):
        """60 seeded random inputs, each on a new connection followed by a half-close. Replies must be well-formed
        and protocol errors Redis's; for protocol-looking noise and corrupted frames (no NUL-in-inline quirks) the
        reply bytes must equal redis-server's for the same input."""
        reference = harness.start_redis(self)
        rng = random.Random(20240611)
        for i in range(60):
            n = rng.choice([1, 2, 5, 17, 100, 1000, 5000])
            kind = i % 3
            if kind == 0:
                blob = bytes(rng.randrange(256) for _ in range(n))
            elif kind == 1:  # protocol-looking noise
                alphabet = b"*$+-:\r\n0123456789-PINGSET abc\"'\\"
                blob = bytes(rng.choice(alphabet) for _ in range(n))
            else:  # a valid frame with random corruption
                blob = bytearray(encode_command("SET", "k" * rng.randrange(1, 20), "v" * rng.randrange(0, 200)))
                for _ in range(rng.randrange(1, 4)):
                    blob[rng.randrange(len(blob))] = rng.randrange(256)
                blob = bytes(blob)
            with self.subTest(i=i, blob=blob[:60]):
                out, _closed = exchange(self.server.port, blob, quiet=0.05, half_close=True)
                for r in split_replies(out):  # whatever came back is well-formed RESP
                    if r.startswith(b"-") and b"Protocol error" in r:
                        self.assertTrue(r in PROTOCOL_ERRORS or PROTOCOL_ERROR_EXPECTED.fullmatch(r), r)
                if kind != 0:
                    ref, _ = exchange(reference.port, blob, quiet=0.05, half_close=True)
                    self.assertEqual(out, ref, "turretd (first) and redis-server (second) differ")
        self.assert_healthy()

    def test_truncated_frames_wait_then_complete(self):
        frames = [encode_command("SET", "trunc", "value\r\nwith\x00binary"), encode_command("ECHO", "x" * 300),
                  b"PING\r\n", encode_command("MSET", "a", "1", "b", "2")]
        conns = []
        for f in frames:
            for cut in sorted(set([1, 2, 3, 4, len(f) // 2, len(f) - 2, len(f) - 1])):
                c = RespConn(self.server.port)
                self.addCleanup(c.close)
                c.send(f[:cut])
                conns.append((c, f, cut))
        time.sleep(0.3)
        for c, f, cut in conns:  # nothing is answered for an incomplete frame, and the connection stays open
            self.assertEqual(c.read_available(0.01), b"", f"reply to a truncated frame {f[:cut]!r}")
            self.assertFalse(c.eof, f"connection closed on a truncated frame {f[:cut]!r}")
        for c, f, cut in conns:
            c.send(f[cut:])
        for c, f, cut in conns:
            r = c.read_reply()
            self.assertFalse(r.startswith(b"-"), f"{f!r} cut at {cut}: {r!r}")
        self.assert_healthy()

    def test_huge_declared_lengths(self):
        cases = {
            b"*1\r\n$536870913\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*1\r\n$9223372036854775807\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*1\r\n$99999999999999999999\r\n": b"-ERR Protocol error: invalid bulk length\r\n",
            b"*2147483648\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
            b"*99999999999999999999\r\n": b"-ERR Protocol error: invalid multibulk length\r\n",
        }
        for data, expected in cases.items():
            with self.subTest(data=data):
                out, closed = exchange(self.server.port, data)
                self.assertEqual(out, expected)
                self.assertTrue(closed)
        # legal but huge: the server waits for the data without allocating it up front
        rss0 = self.server.rss_kb()
        held = []
        for _ in range(20):
            c = RespConn(self.server.port)
            self.addCleanup(c.close)
            c.send(b"*2147483647\r\n$536870912\r\n")
            held.append(c)
        for _ in range(20):
            c = RespConn(self.server.port)
            self.addCleanup(c.close)
            c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n" + b"x" * 1000)
            held.append(c)
        time.sleep(0.3)
        for c in held:
            self.assertEqual(c.read_available(0.01), b"")
            self.assertFalse(c.eof)
        grown_mb = (self.server.rss_kb() - rss0) / 1024
        self.assertLess(grown_mb, 200, f"RSS grew {grown_mb:.0f} MB for 40 huge declared lengths")
        for c in held:
            c.close()
        self.assert_healthy()

    def test_million_element_multibulk(self):
        rss0 = self.server.rss_kb()
        c = RespConn(self.server.port)
        self.addCleanup(c.close)
        c.send(b"*1000000\r\n")
        self.assertEqual(c.read_available(0.2), b"")
        # stream 100k small elements: still waiting for the rest, other clients fine meanwhile
        chunk = b"$1\r\na\r\n" * 10000
        for _ in range(10):
            c.send(chunk)
            self.assertEqual(self.bystander.call("PING"), b"+PONG\r\n")
        self.assertEqual(c.read_available(0.2), b"")
        self.assertFalse(c.eof)
        c.close()
        grown_mb = (self.server.rss_kb() - rss0) / 1024
        self.assertLess(grown_mb, 300, f"RSS grew {grown_mb:.0f} MB")
        # the complete million-element command executes (an unknown command 'a' with args: Redis's error)
        c2 = RespConn(self.server.port, timeout=30)
        self.addCleanup(c2.close)
        c2.send(b"*1000000\r\n" + b"$1\r\na\r\n" * 1000000)
        r = c2.read_reply()
        self.assertTrue(r.startswith(b"-ERR unknown command 'a', with args beginning with: 'a' 'a' "), r[:100])
        self.assertEqual(c2.call("PING"), b"+PONG\r\n")
        # and a big legal MSET works
        args = ["MSET"]
        for i in range(100000):
            args += [f"mk{i}", "v"]
        c2.send(encode_command(*args))
        self.assertEqual(c2.read_reply(), b"+OK\r\n")
        self.assertEqual(c2.call("GET", "mk99999"), b"$1\r\nv\r\n")
        self.assert_healthy()

    def test_protocol_error_closes_only_that_connection(self):
        for data, expected in [(b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
                               (b"*1\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
                               (b"x" * 70000, b"-ERR Protocol error: too big inline request\r\n"),
                               (b'GET "abc\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n")]:
            with self.subTest(data=data[:20]):
                out, closed = exchange(self.server.port, data)
                self.assertEqual(out, expected)
                self.assertTrue(closed)
                self.assert_healthy()

    def test_http_requests_on_the_resp_port_close_like_redis(self):
        """POST or Host: as a command (an HTTP request sent to the RESP port): redis-server logs a possible cross
        protocol attack and closes at once, without the replies it had not sent; turretd does the same."""
        reference = harness.start_redis(self)
        for data in [b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"PING\r\nhost: localhost\r\nPING\r\n",
                     encode_command("SET", "a", "1") + encode_command("post"), b"GET /v1/kv/a HTTP/1.1\r\nHost: x\r\n"]:
            with self.subTest(data=data[:30]):
                out, closed = exchange(self.server.port, data)
                ref, ref_closed = exchange(reference.port, data)
                self.assertEqual((out, closed), (ref, ref_closed))
                self.assertTrue(closed)
                self.assert_healthy()

    def test_many_bad_clients_concurrently(self):
        socks = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", self.server.port))
            socks.append(s)
            s.sendall([b"*abc\r\n", b"*1\r\n$4\r\nPI", b"\xff\xfe\x00garbage\r\n", b"*-1\r\n"][i % 4])
        for s in socks[::2]:
            s.close()
        self.assert_healthy()
        for s in socks[1::2]:
            s.close()
        self.assert_healthy()


if __name__ == "__main__":
    unittest.main()
