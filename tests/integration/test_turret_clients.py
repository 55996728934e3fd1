"""The framework's own client against turretd: turret-cli (get/set/del/publish/subscribe/ping, --host/--port, exit
codes) and examples/hello (connect, SET hello world, GET, print). Both are clients, so in substitute mode they run
against redis-server too."""
import os
import subprocess
import time
import unittest

import harness
from harness import RespConn


def need(binary, name):
    if not binary or not os.path.exists(binary):
        if os.environ.get(name):
            raise AssertionError(f"{name}={binary} does not exist")
        raise unittest.SkipTest(f"{name} not built")
    return binary


class TurretCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.binary = need(harness.TURRET_CLI, "TURRET_CLI")
        cls.server = harness.start_target(cls)

    def cli(self, *args, timeout=10):
        return subprocess.run([self.binary, "--host", "127.0.0.1", "--port", str(self.server.port), *args],
                              capture_output=True, timeout=timeout)

    def setUp(self):
        with RespConn(self.server.port) as c:
            c.call("FLUSHALL")

    def test_set_get_del(self):
        p = self.cli("set", "foo", "bar")
        self.assertEqual((p.returncode, p.stdout), (0, b"OK\n"), p.stderr)
        p = self.cli("get", "foo")
        self.assertEqual((p.returncode, p.stdout), (0, b'"bar"\n'), p.stderr)
        p = self.cli("get", "missing")
        self.assertEqual((p.returncode, p.stdout), (0, b"(nil)\n"), p.stderr)
        self.cli("set", "foo2", "x")
        p = self.cli("del", "foo", "foo2", "missing")
        self.assertEqual((p.returncode, p.stdout), (0, b"(integer) 2\n"), p.stderr)
        with RespConn(self.server.port) as c:
            self.assertEqual(c.call("EXISTS", "foo", "foo2"), b":0\r\n")

    def test_set_with_expiry(self):
        # 2 s: the CLI's start-up must not eat the whole TTL (sanitizer builds start slowly); the wait below is only
        # what is left of it
        p = self.cli("set", "tmp", "v", "--expires", "2000")
        self.assertEqual(p.returncode, 0, p.stderr)
        with RespConn(self.server.port) as c:
            ttl = int(c.call("PTTL", "tmp")[1:-2])
            self.assertTrue(0 < ttl <= 2000, ttl)
            time.sleep(ttl / 1000 + 0.1)
            self.assertEqual(c.call("GET", "tmp"), b"$-1\r\n")

    def test_binary_and_quoting(self):
        p = self.cli("set", "q", 'a "quoted"\nline')
        self.assertEqual(p.returncode, 0, p.stderr)
        with RespConn(self.server.port) as c:
            self.assertEqual(c.call("GET", "q"), b'$15\r\na "quoted"\nline\r\n')
        p = self.cli("get", "q")
        self.assertEqual(p.stdout, b'"a \\"quoted\\"\\nline"\n')

    def test_ping_and_other_commands(self):
        self.assertEqual(self.cli("ping").stdout, b"PONG\n")
        self.assertEqual(self.cli("incr", "n").stdout, b"(integer) 1\n")
        p = self.cli("incrby", "n", "notanumber")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"(error) ERR value is not an integer or out of range\n")

    def test_publish_and_subscribe(self):
        sub = subprocess.Popen([self.binary, "--host", "127.0.0.1", "--port", str(self.server.port), "subscribe",
                                "news"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (sub.poll() is None and sub.kill(), sub.communicate(timeout=5)))
        with RespConn(self.server.port) as c:
            self.assertTrue(harness.wait_for(
                lambda: c.call("PUBSUB", "NUMSUB", "news") == b"*2\r\n$4\r\nnews\r\n:1\r\n"), "no subscription")
        p = self.cli("publish", "news", "hello")
        self.assertEqual((p.returncode, p.stdout), (0, b"(integer) 1\n"), p.stderr)
        p = self.cli("publish", "news", "bye")
        self.assertEqual(p.stdout, b"(integer) 1\n")
        time.sleep(0.3)
        sub.terminate()
        out, err = sub.communicate(timeout=5)
        self.assertEqual(sub.returncode, 0, err)
        self.assertIn(b'1) "message"\n2) "news"\n3) "hello"\n', out)
        self.assertIn(b'1) "message"\n2) "news"\n3) "bye"\n', out)
        self.assertLess(out.index(b'"hello"'), out.index(b'"bye"'))

    def test_connection_refused_and_usage(self):
        port = harness.free_port()
        p = subprocess.run([self.binary, "--port", str(port), "get", "x"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr)
        p = subprocess.run([self.binary, "get"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 2)


class Hello(unittest.TestCase):
    def test_hello_example(self):
        binary = need(harness.TURRET_HELLO, "TURRET_HELLO")
        server = harness.start_target(self)
        p = subprocess.run([binary, "127.0.0.1", str(server.port)], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"got value from the server; result=world\n")
        with RespConn(server.port) as c:
            self.assertEqual(c.call("GET", "hello"), b"$5\r\nworld\r\n")

    def test_hello_reports_connection_failure(self):
        binary = need(harness.TURRET_HELLO, "TURRET_HELLO")
        p = subprocess.run([binary, "127.0.0.1", str(harness.free_port())], capture_output=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
