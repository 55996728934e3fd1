"""turretd's process contract: --version, --check-config (exit code and FILE:LINE: key message), graceful shutdown
on SIGTERM/SIGINT (in-flight work finishes, exit 0, the port is released), SHUTDOWN, the embedded default config."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import harness
from harness import RespConn, turretd_yaml


def run_turretd(*args, timeout=20):
    return subprocess.run([harness.require_turretd(None), *args], capture_output=True, timeout=timeout)


class CommandLine(unittest.TestCase):
    def setUp(self):
        harness.require_turretd(self)
        self.dir = tempfile.mkdtemp(prefix="turret-cfg-")
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, ignore_errors=True))

    def write(self, name, text):
        p = os.path.join(self.dir, name)
        Path(p).write_text(text)
        return p

    def test_version(self):
        p = run_turretd("--version")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertRegex(out, r"turretd\D*\d+\.\d+\.\d+")

    def test_check_config_ok(self):
        path = self.write("ok.yaml", turretd_yaml(threads=0))
        p = run_turretd("--check-config", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"OK", p.stdout + p.stderr)

    def test_check_config_deploy_example(self):
        examples = sorted((harness.SOURCE_DIR / "deploy").glob("*.yaml"))
        self.assertIn("turret.yaml", [e.name for e in examples])
        for example in examples:
            with self.subTest(example=example.name):
                p = run_turretd("--check-config", str(example))
                self.assertEqual(p.returncode, 0, p.stderr)

    def test_check_config_errors_name_file_line_and_key(self):
        base = turretd_yaml(threads=0).splitlines()

        def variant(replace_from, replace_to):
            lines = [l.replace(replace_from, replace_to) if replace_from in l else l for l in base]
            return "\n".join(lines) + "\n"

        cases = [
            # (file text, line number of the bad key (1-based), text the message must name)
            ("bad_duration.yaml", variant("shutdown_grace: 5s", "shutdown_grace: soon"), 3, "shutdown_grace"),
            ("bad_level.yaml", variant("level: info", "level: chatty"), 5, "level"),
            ("bad_threads.yaml", variant("threads: 0", "threads: many"), 2, "threads"),
            ("bad_protocol.yaml", variant("protocol: resp", "protocol: carrier-pigeon"), 9, "protocol"),
            ("bad_address.yaml", variant("address: 127.0.0.1:0", "address: not-an-address:99999"), 10, "address"),
            ("bad_databases.yaml", variant("databases: 16", "databases: -1"), 13, "databases"),
            ("unknown_key.yaml", turretd_yaml(threads=0).replace("  threads: 0\n", "  threads: 0\n  thread: 4\n"), 3,
             "thread"),
            ("bad_resp.yaml", turretd_yaml(resp={"maxclients": "lots"}, threads=0), 12, "maxclients"),
        ]
        for name, text, line, key in cases:
            with self.subTest(case=name):
                path = self.write(name, text)
                p = run_turretd("--check-config", path)
                err = (p.stderr + p.stdout).decode("utf-8", "replace")
                self.assertNotEqual(p.returncode, 0, f"{name} accepted:\n{text}")
                self.assertIn(f"{path}:{line}:", err, f"message must name file:line\n{err}\n{text}")
                self.assertIn(key, err)

    def test_check_config_unparsable_yaml_and_missing_file(self):
        path = self.write("broken.yaml", "server:\n  threads: [1, 2\nlogging: {\n")
        p = run_turretd("--check-config", path)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(path, (p.stderr + p.stdout).decode())
        p = run_turretd("--check-config", os.path.join(self.dir, "nope.yaml"))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("nope.yaml", (p.stderr + p.stdout).decode())

    def test_config_error_at_startup(self):
        path = self.write("bad.yaml", turretd_yaml(threads=0).replace("level: info", "level: chatty"))
        p = run_turretd("--config", path)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(f"{path}:5:", (p.stderr + p.stdout).decode())


class Shutdown(unittest.TestCase):
    def start(self, **kw):
        return harness.start_target(self, turretd_yaml(**kw))

    def assert_port_released(self, port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # would fail with EADDRINUSE if still listening

    def test_sigterm_graceful_exit_zero(self):
        server = self.start()
        c = RespConn(server.port)
        self.addCleanup(c.close)
        self.assertEqual(c.call("SET", "k", "v"), b"+OK\r\n")
        server.signal(signal.SIGTERM)
        self.assertEqual(server.wait(15), 0, server.log_text())
        self.assertTrue(c.read_eof(2))
        self.assert_port_released(server.port)

    def test_sigint_graceful_exit_zero(self):
        server = self.start()
        server.signal(signal.SIGINT)
        self.assertEqual(server.wait(15), 0, server.log_text())

    def test_inflight_pipeline_finishes_in_order(self):
        """A large pipelined batch is in flight when SIGTERM arrives: every reply the client gets is complete and in
        order (no truncated frame, no reordering), the connection then closes, and the exit code is 0."""
        server = self.start(shutdown_grace="5s")
        c = RespConn(server.port, timeout=10)
        self.addCleanup(c.close)
        n = 50000
        c.send(harness.encode_command("INCR", "n") * n)
        time.sleep(0.01)
        server.signal(signal.SIGTERM)
        got = 0
        try:
            while got < n:
                r = c.read_reply()
                self.assertEqual(r, b":%d\r\n" % (got + 1))
                got += 1
        except (harness.ConnectionClosed, harness.ReplyTimeout):
            pass
        self.assertEqual(c.buf, bytearray(), "a partial reply frame was left at close")
        self.assertGreater(got, 0)
        self.assertEqual(server.wait(15), 0, server.log_text())

    def test_new_connections_refused_after_shutdown(self):
        server = self.start()
        port = server.port
        server.signal(signal.SIGTERM)
        server.wait(15)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

    def test_shutdown_command(self):
        server = self.start()
        c = RespConn(server.port)
        self.addCleanup(c.close)
        server.signalled = True  # it is expected to exit by itself
        c.command("SHUTDOWN", "NOSAVE")
        self.assertTrue(c.read_eof(10))
        self.assertEqual(server.wait(15), 0, server.log_text())


class AutoThreads(unittest.TestCase):
    """threads: 0 = one worker per core the process may run on (its CPU affinity), less one, at least one."""

    def ready_threads(self, server) -> int:
        m = re.search(r"turretd ready: (\d+) worker thread", server.log_text())
        self.assertIsNotNone(m, server.log_text())
        return int(m.group(1))

    def test_follows_the_cpu_affinity(self):
        cpus = sorted(os.sched_getaffinity(0))
        server = harness.start_target(self, turretd_yaml(threads=0))
        self.assertEqual(self.ready_threads(server), max(1, len(cpus) - 1))
        # Started on one core only (as under a cpuset or taskset): one worker, not hardware_concurrency's count.
        os.sched_setaffinity(0, {cpus[0]})
        try:
            pinned = harness.start_target(self, turretd_yaml(threads=0))
        finally:
            os.sched_setaffinity(0, cpus)
        self.assertEqual(self.ready_threads(pinned), 1)
        with RespConn(pinned.port) as c:
            self.assertEqual(c.call("PING"), b"+PONG\r\n")

    def test_explicit_count_is_kept(self):
        server = harness.start_target(self, turretd_yaml(threads=3))
        self.assertEqual(self.ready_threads(server), 3)


class DefaultConfig(unittest.TestCase):
    def test_runs_without_config_on_6379_when_free(self):
        """Without --config turretd runs its embedded default (127.0.0.1:6379). Only when 6379 is free here."""
        binary = harness.require_turretd(self)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 6379))
            except OSError:
                self.skipTest("port 6379 in use on this machine")
        proc = subprocess.Popen([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.communicate(timeout=10)))
        try:
            try:
                harness.wait_accepting(6379, proc)
            except RuntimeError:
                out = proc.communicate(timeout=10)[0].decode("utf-8", "replace")
                if "in use" in out.lower():  # another listener of the embedded default is taken on this machine
                    self.skipTest(f"a default port is in use: {out[-300:]}")
                raise AssertionError(f"turretd without --config did not start:\n{out[-3000:]}")
            with RespConn(6379) as c:
                self.assertEqual(c.call("SET", "hello", "world"), b"+OK\r\n")
                self.assertEqual(c.call("GET", "hello"), b"$5\r\nworld\r\n")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(15), 0)


if __name__ == "__main__":
    unittest.main()
