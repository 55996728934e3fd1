"""redis-cli against turretd: one-shot commands, an interactive-style session on stdin, --pipe mass insertion,
SUBSCRIBE with a publisher, RESP3 (-3), and redis-benchmark's standard tests with no errors.
Where the output is a redis-cli rendering, it is compared with the same command against redis-server."""
import os
import subprocess
import time
import unittest

import harness
from harness import REDIS_BENCHMARK, REDIS_CLI


def cli(port, *args, input=None, timeout=20):
    p = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args], input=input, capture_output=True,
                       timeout=timeout)
    return p


class RedisCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.target = harness.start_target(cls)
        cls.redis = harness.start_redis(cls)

    def setUp(self):
        for port in (self.target.port, self.redis.port):
            with harness.RespConn(port) as c:
                self.assertEqual(c.call("FLUSHALL"), b"+OK\r\n")

    def both(self, *args, input=None):
        """Run the same redis-cli invocation against turretd and redis-server; outputs must be equal."""
        a = cli(self.target.port, *args, input=input)
        b = cli(self.redis.port, *args, input=input)
        self.assertEqual((a.stdout, a.returncode), (b.stdout, b.returncode),
                         f"redis-cli {args} differs\nturretd stderr: {a.stderr!r}\nredis stderr: {b.stderr!r}")
        return a.stdout

    def test_one_shot_commands(self):
        port = self.target.port
        self.assertEqual(cli(port, "PING").stdout, b"PONG\n")
        self.assertEqual(cli(port, "SET", "greeting", "hello world").stdout, b"OK\n")
        self.assertEqual(cli(port, "GET", "greeting").stdout, b"hello world\n")
        self.assertEqual(cli(port, "INCR", "n").stdout, b"1\n")
        self.assertEqual(cli(port, "INCRBY", "n", "41").stdout, b"42\n")
        self.assertEqual(cli(port, "GET", "missing").stdout, b"\n")
        r = cli(port, "INCR", "greeting")
        self.assertIn(b"ERR value is not an integer or out of range", r.stdout + r.stderr)
        self.assertEqual(cli(port, "DEL", "greeting", "n", "missing").stdout, b"2\n")

    def test_outputs_match_redis(self):
        for args in [("SET", "k", "v"), ("GET", "k"), ("MSET", "a", "1", "b", "2"), ("MGET", "a", "b", "zz"),
                     ("EXPIRE", "a", "100"), ("TTL", "a"), ("APPEND", "k", "\x01bin"), ("GET", "k"),
                     ("GETRANGE", "k", "0", "1"), ("SETBIT", "bits", "7", "1"), ("BITCOUNT", "bits"),
                     ("BITFIELD", "bits", "GET", "u8", "0"), ("LCS", "a", "b", "IDX"), ("NOSUCH",), ("GET",),
                     ("EXISTS", "a", "b", "c"), ("TYPE", "k"), ("DBSIZE",), ("PUBSUB", "NUMSUB", "x"),
                     ("CONFIG", "GET", "maxclients"), ("--no-raw", "GET", "k"), ("--no-raw", "MGET", "a", "zz")]:
            with self.subTest(args=args):
                self.both(*args)

    def test_interactive_session_on_stdin(self):
        script = b"SET user:1 alice\nGET user:1\nMULTI\nINCR visits\nINCR visits\nEXEC\nKEYS user:*\nSELECT 2\n" \
                 b"GET user:1\nSELECT 0\nDEL user:1\nGET user:1\n"
        out = self.both(input=script)
        self.assertIn(b"alice", out)
        self.assertIn(b"1\n2\n", out)

    def test_resp3_mode(self):
        out = cli(self.target.port, "-3", "HELLO", "3").stdout
        self.assertIn(b"proto 3\n", out)
        self.both("-3", "GET", "nosuch")
        self.both("-3", "CONFIG", "GET", "timeout")

    def test_pipe_mass_insertion(self):
        n = 20000
        payload = b"".join(harness.encode_command("SET", f"key:{i}", f"value:{i}") for i in range(n))
        payload += harness.encode_command("INCR", "key:0")  # an error reply is counted, not fatal
        r = cli(self.target.port, "--pipe", input=payload, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # redis-cli exits 1 when a reply was an error
        self.assertIn(b"errors: 1, replies: %d" % (n + 1), r.stdout)
        with harness.RespConn(self.target.port) as c:
            self.assertEqual(c.call("DBSIZE"), b":%d\r\n" % n)
            self.assertEqual(c.call("GET", "key:12345"), b"$11\r\nvalue:12345\r\n")

    def test_subscribe_with_publisher(self):
        port = self.target.port
        sub = subprocess.Popen([REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), "SUBSCRIBE", "news", "alerts"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (sub.kill(), sub.communicate()))
        # wait until both subscriptions are registered
        self.assertTrue(harness.wait_for(lambda: cli(port, "PUBSUB", "NUMSUB", "news", "alerts").stdout
                                         == b"news\n1\nalerts\n1\n"), "redis-cli did not subscribe")
        self.assertEqual(cli(port, "PUBLISH", "news", "hello subscribers").stdout, b"1\n")
        self.assertEqual(cli(port, "PUBLISH", "alerts", "second").stdout, b"1\n")
        self.assertEqual(cli(port, "PUBLISH", "nobody", "x").stdout, b"0\n")
        expected = (b"subscribe\nnews\n1\nsubscribe\nalerts\n2\nmessage\nnews\nhello subscribers\n"
                    b"message\nalerts\nsecond\n")
        got = b""
        deadline = time.monotonic() + 5
        os.set_blocking(sub.stdout.fileno(), False)
        while len(got) < len(expected) and time.monotonic() < deadline:
            chunk = sub.stdout.read()
            if chunk:
                got += chunk
            else:
                time.sleep(0.02)
        self.assertEqual(got, expected)


class RedisBenchmark(unittest.TestCase):
    """`redis-benchmark -t set,get,incr,mset` must run with no errors (small -n: correctness, not speed)."""

    def test_standard_tests_no_errors(self):
        target = harness.start_target(self)
        p = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(target.port), "-t", "set,get,incr,mset",
                            "-n", "20000", "-c", "20", "-q", "--csv"], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertNotIn("rror", out + p.stderr.decode())
        for test in ("SET", "GET", "INCR", "MSET"):
            self.assertIn(f'"{test}', out)
        with harness.RespConn(target.port) as c:
            self.assertEqual(c.call("GET", "key:__rand_int__")[:1], b"$")
            self.assertNotEqual(c.call("GET", "counter:__rand_int__"), b"$-1\r\n")
            self.assertTrue(target.alive())

    def test_pipelined_and_keyspace(self):
        target = harness.start_target(self)
        p = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(target.port), "-t", "set,get",
                            "-n", "50000", "-c", "10", "-P", "16", "-r", "1000", "-d", "64", "-q", "--csv"],
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("rror", (p.stdout + p.stderr).decode())
        with harness.RespConn(target.port) as c:
            n = int(c.call("DBSIZE")[1:-2])
            self.assertGreater(n, 500)
            self.assertLessEqual(n, 1000)


if __name__ == "__main__":
    unittest.main()
