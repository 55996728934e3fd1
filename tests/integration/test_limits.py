"""Connection limits, each on a turretd started with its own config (or redis-server with the equivalent flags in
substitute mode): maxclients, idle timeout, the pub/sub output-buffer limit, and many cheap connections."""
import os
import resource
import socket
import time
import unittest

import harness
from harness import RespConn, turretd_yaml


class MaxClients(unittest.TestCase):
    def test_maxclients_exact_error(self):
        server = harness.start_target(self, turretd_yaml(resp={"maxclients": 3}), ["--maxclients", "3"])
        conns = []
        for _ in range(3):
            # the start-up probe connection may take a moment to be released: retry a refused slot briefly
            deadline = time.monotonic() + 3
            while True:
                c = RespConn(server.port)
                self.addCleanup(c.close)
                r = c.call("PING")
                if r == b"+PONG\r\n" or time.monotonic() > deadline:
                    break
                c.close()
                time.sleep(0.1)
            self.assertEqual(r, b"+PONG\r\n")
            conns.append(c)
        extra = RespConn(server.port)
        self.addCleanup(extra.close)
        self.assertEqual(extra.read_available(0.5), b"-ERR max number of clients reached\r\n")
        self.assertTrue(extra.eof or extra.read_eof(2), "the refused connection must be closed")
        # existing clients are unaffected, and a slot frees up when one leaves
        self.assertEqual(conns[0].call("SET", "a", "1"), b"+OK\r\n")
        conns[2].close()

        def can_connect():
            with RespConn(server.port) as c:
                try:
                    return c.call("PING") == b"+PONG\r\n"
                except Exception:
                    return False
        self.assertTrue(harness.wait_for(can_connect, 5), "a freed slot must be reusable")
        self.assertEqual(conns[0].call("CONFIG", "GET", "maxclients"), b"*2\r\n$10\r\nmaxclients\r\n$1\r\n3\r\n")

    def test_default_maxclients(self):
        server = harness.start_target(self)
        with RespConn(server.port) as c:
            self.assertEqual(c.call("CONFIG", "GET", "maxclients"), b"*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n")


class IdleTimeout(unittest.TestCase):
    def test_idle_clients_are_closed_active_and_subscribers_are_not(self):
        server = harness.start_target(self, turretd_yaml(resp={"timeout": 1}), ["--timeout", "1"])
        idle = RespConn(server.port)
        active = RespConn(server.port)
        sub = RespConn(server.port)
        for c in (idle, active, sub):
            self.addCleanup(c.close)
            self.assertEqual(c.call("PING"), b"+PONG\r\n")
        self.assertEqual(sub.call("SUBSCRIBE", "ch"), b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            self.assertEqual(active.call("PING"), b"+PONG\r\n")
            time.sleep(0.25)
        self.assertTrue(idle.read_eof(0.5), "an idle client must be closed after `timeout`")
        self.assertEqual(active.call("PING"), b"+PONG\r\n")
        with RespConn(server.port) as p:
            self.assertEqual(p.call("PUBLISH", "ch", "still-here"), b":1\r\n")
        self.assertEqual(sub.read_reply(), b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$10\r\nstill-here\r\n")

    def test_timeout_zero_never_closes(self):
        server = harness.start_target(self, turretd_yaml(resp={"timeout": 0}), ["--timeout", "0"])
        c = RespConn(server.port)
        self.addCleanup(c.close)
        c.call("PING")
        time.sleep(2.2)
        self.assertEqual(c.call("PING"), b"+PONG\r\n")


class OutputBufferLimit(unittest.TestCase):
    def test_slow_subscriber_is_disconnected_and_memory_stays_bounded(self):
        server = harness.start_target(
            self, turretd_yaml(resp={"client_output_buffer_limit_pubsub": {"hard": "1mb", "soft": 0,
                                                                           "soft_seconds": 0}}),
            ["--client-output-buffer-limit", "pubsub 1mb 0 0"])
        # a subscriber with a tiny receive buffer that never reads
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.port))
        self.addCleanup(s.close)
        s.sendall(harness.encode_command("SUBSCRIBE", "flood"))
        good = RespConn(server.port)  # a well-behaved subscriber on another channel keeps working
        self.addCleanup(good.close)
        good.call("SUBSCRIBE", "calm")
        pub = RespConn(server.port)
        self.addCleanup(pub.close)
        self.assertTrue(harness.wait_for(lambda: pub.call("PUBSUB", "NUMSUB", "flood").endswith(b":1\r\n")))
        rss0 = server.rss_kb()
        payload = b"x" * 100_000
        receivers = []
        for i in range(300):  # 30 MB published at a subscriber allowed to buffer 1 MB
            r = pub.call("PUBLISH", "flood", payload)
            receivers.append(int(r[1:-2]))
        self.assertEqual(receivers[0], 1)
        self.assertEqual(receivers[-1], 0, "the subscriber over the hard limit must have been disconnected")
        self.assertEqual(pub.call("PUBSUB", "NUMSUB", "flood"), b"*2\r\n$5\r\nflood\r\n:0\r\n")
        grown_mb = (server.rss_kb() - rss0) / 1024
        self.assertLess(grown_mb, 16, f"server RSS grew by {grown_mb:.1f} MB")
        self.assertEqual(pub.call("PUBLISH", "calm", "ok"), b":1\r\n")
        self.assertEqual(good.read_reply(), b"*3\r\n$7\r\nmessage\r\n$4\r\ncalm\r\n$2\r\nok\r\n")
        self.assertTrue(server.alive())


class ManyConnections(unittest.TestCase):
    def test_2000_idle_connections_are_cheap(self):
        if os.environ.get("TURRET_SANITIZER") == "thread":
            self.skipTest("ThreadSanitizer keeps shadow state per thread and allocation: RSS says nothing about turretd")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2000 + 100
        if soft < want:
            if hard < want:
                self.skipTest(f"RLIMIT_NOFILE hard limit {hard} < {want}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # children (the server) inherit it
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        server = harness.start_target(self)
        rss0 = server.rss_kb()
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        ping = harness.encode_command("PING")
        for _ in range(2000):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            s.sendall(ping)
            socks.append(s)
        for s in socks:
            self.assertEqual(s.recv(16), b"+PONG\r\n")
        per_conn_kb = (server.rss_kb() - rss0) / 2000
        self.assertLess(per_conn_kb, 64, f"{per_conn_kb:.1f} KB RSS per idle connection")
        with RespConn(server.port) as c:
            info = c.call("INFO", "clients")
            self.assertIn(b"connected_clients:2001\r\n", info)


if __name__ == "__main__":
    unittest.main()
