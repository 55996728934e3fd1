"""Cross-thread work under load, on a turretd with 4 worker threads: pub/sub delivery, CLIENT KILL, CONFIG SET and
graceful shutdown while other clients keep sending commands. Each test asserts what a client sees; their main value
is under the sanitizers (tests/sanitizers/tsan.sh runs them with TSan, scripts/test.sh with ASan+UBSan), where any
race or memory error in the server fails the test through the harness's log check."""
import signal
import threading
import time
import unittest

import harness
from harness import ConnectionClosed, RespConn, ReplyTimeout, turretd_yaml

THREADS = 4
DURATION = 1.5  # seconds of load per test


def load(port: int, stop: threading.Event, errors: list, n: int) -> threading.Thread:
    """A client that SETs, GETs, INCRs and PUBLISHes in a loop until `stop` (or until its connection is killed)."""
    def run():
        try:
            with RespConn(port) as c:
                i = 0
                while not stop.is_set():
                    c.send(harness.encode_command("SET", f"k{n}:{i % 50}", "v" * (i % 100)) +
                           harness.encode_command("GET", f"k{n}:{i % 50}") +
                           harness.encode_command("INCR", f"counter{n}") +
                           harness.encode_command("PUBLISH", f"ch{i % 3}", f"m{n}:{i}"))
                    replies = c.read_replies(4)
                    if replies[0] != b"+OK\r\n" or not replies[2].startswith(b":") or not replies[3].startswith(b":"):
                        errors.append(f"load {n}: unexpected replies {replies!r}")
                        return
                    i += 1
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            pass  # killed or shut down: expected in the tests that do that
        except Exception as e:  # noqa: BLE001 (reported by the test)
            errors.append(f"load {n}: {e!r}")
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Concurrency(unittest.TestCase):
    def start(self, **kw):
        harness.require_turretd(self)
        return harness.start_target(self, turretd_yaml(threads=THREADS, **kw))

    def test_pubsub_delivery_across_threads_keeps_order(self):
        server = self.start()
        subs = []
        for proto in (2, 3, 2, 3):
            c = RespConn(server.port)
            self.addCleanup(c.close)
            if proto == 3:
                c.call("HELLO", "3")
            c.command("SUBSCRIBE", "ordered")
            c.read_reply()
            c.command("PSUBSCRIBE", "ch*")
            c.read_reply()
            subs.append(c)
        stop, errors = threading.Event(), []
        loaders = [load(server.port, stop, errors, n) for n in range(3)]
        count = 300
        with RespConn(server.port) as pub:
            for i in range(count):
                self.assertEqual(pub.call("PUBLISH", "ordered", str(i)), b":%d\r\n" % len(subs))
        stop.set()
        for t in loaders:
            t.join(10 * harness.TIMEOUT_SCALE)
        self.assertEqual(errors, [])
        for c in subs:  # every subscriber got every "ordered" message, in order, among the pattern messages
            got = []
            deadline = time.monotonic() + 10 * harness.TIMEOUT_SCALE
            while len(got) < count and time.monotonic() < deadline:
                v = harness.parse_reply(c.read_reply())
                if v[0] == b"message" and v[1] == b"ordered":
                    got.append(int(v[2]))
            self.assertEqual(got, list(range(count)))

    def test_client_kill_while_clients_are_busy(self):
        server = self.start()
        stop, errors = threading.Event(), []
        loaders = [load(server.port, stop, errors, n) for n in range(4)]
        with RespConn(server.port) as admin:
            deadline = time.monotonic() + DURATION
            killed = 0
            while time.monotonic() < deadline:
                # kill whatever load connection exists (not ourselves), then start a new one in its place
                r = admin.call("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")
                self.assertTrue(r.startswith(b":"), r)
                killed += int(r[1:-2])
                loaders.append(load(server.port, stop, errors, len(loaders)))
                time.sleep(0.05)
            stop.set()
            for t in loaders:
                t.join(10 * harness.TIMEOUT_SCALE)
            self.assertEqual(errors, [])
            self.assertGreater(killed, 0)
            self.assertEqual(admin.call("PING"), b"+PONG\r\n")
            # only the admin connection is left
            self.assertTrue(harness.wait_for(
                lambda: admin.call("CLIENT", "LIST").count(b"id=") == 1, 5 * harness.TIMEOUT_SCALE))

    def test_config_set_under_load(self):
        server = self.start()
        stop, errors = threading.Event(), []
        loaders = [load(server.port, stop, errors, n) for n in range(3)]
        settings = [("maxclients", "5000", "10000"), ("timeout", "100", "0"),
                    ("proto-max-bulk-len", "1048576", "536870912"), ("notify-keyspace-events", "KEA", ""),
                    ("client-output-buffer-limit", "pubsub 67108864 16777216 30", "pubsub 33554432 8388608 60"),
                    ("hz", "100", "10")]
        with RespConn(server.port) as admin, RespConn(server.port) as watcher:
            watcher.command("PSUBSCRIBE", "__key*__:*")
            watcher.read_reply()
            deadline = time.monotonic() + DURATION
            i = 0
            while time.monotonic() < deadline:
                name, a, b = settings[i % len(settings)]
                self.assertEqual(admin.call("CONFIG", "SET", name, a if (i // len(settings)) % 2 == 0 else b),
                                 b"+OK\r\n")
                i += 1
            for name, _, default in settings:
                self.assertEqual(admin.call("CONFIG", "SET", name, default), b"+OK\r\n")
            stop.set()
            for t in loaders:
                t.join(10 * harness.TIMEOUT_SCALE)
            self.assertEqual(errors, [])
            self.assertEqual(admin.call("CONFIG", "GET", "maxclients"), b"*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n")
            # the watcher got keyspace notifications while they were on, each a complete pmessage, and is still served
            notes = watcher.read_available(0.5 * harness.TIMEOUT_SCALE)
            self.assertIn(b"pmessage", notes)
            pos = 0
            while pos < len(notes):
                end = harness.reply_end(notes, pos)
                self.assertIsNotNone(end, notes[pos:pos + 200])
                self.assertEqual(harness.parse_reply(notes[pos:end])[0], b"pmessage")
                pos = end
            self.assertEqual(watcher.call("PING"), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")

    def test_sigterm_under_load_exits_zero(self):
        server = self.start()
        stop, errors = threading.Event(), []
        loaders = [load(server.port, stop, errors, n) for n in range(4)]
        subs = []
        for _ in range(2):
            c = RespConn(server.port)
            self.addCleanup(c.close)
            c.command("PSUBSCRIBE", "*")
            c.read_reply()
            subs.append(c)
        time.sleep(DURATION / 2)
        server.signal(signal.SIGTERM)
        self.assertEqual(server.wait(30 * harness.TIMEOUT_SCALE), 0, server.log_text())
        stop.set()
        for t in loaders:
            t.join(10 * harness.TIMEOUT_SCALE)
        self.assertEqual(errors, [])
        for c in subs:
            try:
                self.assertTrue(c.read_eof(5 * harness.TIMEOUT_SCALE))
            except ReplyTimeout:
                self.fail("a subscriber was not closed by the shutdown")


if __name__ == "__main__":
    unittest.main()
