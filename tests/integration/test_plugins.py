"""turretd plugins (<turret/plugin.hpp>, config `plugins:`), over real sockets.

- examples/plugins' libturret_hello.so, listed in `plugins:` (by a path relative to the config file), registers the
  layer `hello`; a listener whose pipeline is `[hello]` answers redis-cli, redis-py and raw RESP as usual, and GET
  /metrics on the HTTP listener shows turret_hello_requests_total{pipeline="greeted"} with exactly the number of
  commands sent through that listener (none of the other listener's): the plugin's counter is in the one registry
  turretd exposes, so the plugin bound to turretd's metrics, not to a copy of its own.
- A second plugin (tests/plugins/line_protocol.cpp) registers the protocol `line`; a listener of that protocol on the
  same pipeline answers commands sent as text lines, on the same keyspace, counted by the first plugin's layer; its
  options are validated (an unknown key names the protocol's keys); SIGTERM drains it and turretd exits 0.
- The symbols behind that: turretd exports the framework's functions; the plugin defines none (no turret function or
  object of its own, strong or weak data), and leaves the ones it calls undefined, to be bound to turretd's.
- --check-config names the path and the file:line:col of the `plugins:` entry, exit 1: a missing file, a shared object
  without the entry point, one built for another plugin ABI, one needing a symbol turretd does not define, one
  registering a layer name that exists; `turretd --config` refuses to start on the same errors. Without the plugin,
  `layer: hello` is an unknown layer.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest
from pathlib import Path

import harness

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

HELLO_PLUGIN = os.environ.get("TURRET_HELLO_PLUGIN")
TEST_PLUGIN_DIR = os.environ.get("TURRET_TEST_PLUGIN_DIR")
LISTEN_RE = re.compile(rb"listening (\w+) \S*?:(\d+) name=(\S+)")
CHECK_TIMEOUT = 20 * harness.TIMEOUT_SCALE  # one turretd --check-config


def require_plugins(test) -> None:
    harness.require_turretd(test)
    if not HELLO_PLUGIN or not TEST_PLUGIN_DIR:
        raise unittest.SkipTest("$TURRET_HELLO_PLUGIN / $TURRET_TEST_PLUGIN_DIR not set (run through ctest)")


def check_config(path: str, **env: str) -> subprocess.CompletedProcess:
    """turretd --check-config PATH (text output), with extra environment variables."""
    return subprocess.run([harness.TURRETD, "--check-config", path], capture_output=True, text=True,
                          timeout=3 * CHECK_TIMEOUT if env else CHECK_TIMEOUT, env={**os.environ, **env})


def bad_plugin(case: str) -> str:
    return os.path.join(TEST_PLUGIN_DIR, f"libturret_bad_{case}.so")


def line_plugin() -> str:
    return os.path.join(TEST_PLUGIN_DIR, "libturret_line.so")


def config(plugins: list[str], pipelines: str, threads: int = 2, extra_listeners: list[str] | None = None) -> str:
    """Listeners `plain` (default pipeline), `greeted` (pipeline greeted) and `http`, all on 127.0.0.1:0."""
    lines = ["server:", f"  threads: {threads}", "  shutdown_grace: 5s", "logging:", "  level: info"]
    lines += ["plugins:"] + [f"  - {p}" for p in plugins]
    lines += ["listeners:",
              "  - {name: plain, protocol: resp, address: 127.0.0.1:0}",
              "  - {name: greeted, protocol: resp, address: 127.0.0.1:0, pipeline: greeted}",
              "  - {name: http, protocol: http, address: 127.0.0.1:0}"]
    lines += [f"  - {e}" for e in extra_listeners or []]
    lines += ["store:", "  kind: memory", "  databases: 16"]
    return "\n".join(lines) + "\n" + pipelines.strip("\n") + "\n"


GREETED = """
pipelines:
  greeted:
    - {layer: timeout, duration: 2s}
    - layer: hello
"""

NO_HELLO = """
pipelines:
  greeted: []
"""


def metrics_text(http_port: int) -> str:
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=harness.IO_TIMEOUT)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        assert r.status == 200, r.status
        return r.read().decode()
    finally:
        c.close()


def series_value(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


class HelloPlugin(unittest.TestCase):
    SERIES = 'turret_hello_requests_total{pipeline="greeted"}'

    @classmethod
    def setUpClass(cls):
        require_plugins(cls)
        cls.dir = tempfile.mkdtemp(prefix="turret-plugins-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        # A path relative to the config file: the config lives in another directory than turretd's working one.
        os.makedirs(os.path.join(cls.dir, "conf", "plugins"))
        shutil.copy(HELLO_PLUGIN, os.path.join(cls.dir, "conf", "plugins", "libturret_hello.so"))
        cls.config_path = os.path.join(cls.dir, "conf", "turret.yaml")
        Path(cls.config_path).write_text(config(
            ["plugins/libturret_hello.so", line_plugin()], GREETED,
            extra_listeners=["{name: text, protocol: line, address: 127.0.0.1:0, pipeline: greeted, "
                             "line: {max_line: 64}}"]))
        cls.srv = harness.TurretServer(config_file=cls.config_path)
        cls.addClassCleanup(cls.srv.cleanup)
        ports = cls.listener_ports(["plain", "greeted", "http", "text"])
        cls.plain, cls.greeted, cls.http, cls.text = ports["plain"], ports["greeted"], ports["http"], ports["text"]

    @classmethod
    def listener_ports(cls, names: list[str]) -> dict[str, int]:
        def found():
            log = Path(cls.srv.log_path).read_bytes()
            return {m.group(3).decode(): int(m.group(2)) for m in LISTEN_RE.finditer(log)}
        if not harness.wait_for(lambda: all(n in found() for n in names) or not cls.srv.alive(),
                                timeout=harness.START_TIMEOUT) or not cls.srv.alive():
            raise AssertionError(f"turretd did not start its listeners:\n{cls.srv.log_text()}")
        return found()

    def count(self) -> float:
        value = series_value(metrics_text(self.http), self.SERIES)
        self.assertIsNotNone(value, f"no {self.SERIES} in /metrics")
        return value

    def test_log_names_the_plugins(self):
        log = self.srv.log_text()
        self.assertRegex(log, r"plugin hello 1\.0 loaded from \S*/conf/plugins/libturret_hello\.so")
        self.assertIn(f"plugin line 1.0 loaded from {line_plugin()}", log)
        self.assertRegex(log, r"listening line 127\.0\.0\.1:\d+ name=text pipeline=greeted")

    def test_front_end_from_a_plugin(self):
        before = self.count()
        with socket.create_connection(("127.0.0.1", self.text), timeout=harness.IO_TIMEOUT) as s, \
                harness.RespConn(self.plain) as p:
            f = s.makefile("rwb")

            def line(text: str, expect: bytes, lines: int = 1) -> None:
                f.write(text.encode() + b"\n")
                f.flush()
                got = b"".join(f.readline() for _ in range(lines))
                self.assertEqual(got, expect, text)

            line("SET line:k hello", b"+OK\r\n")
            line("GET line:k", b"$5\r\nhello\r\n", 2)
            line("INCR line:k", b"-ERR value is not an integer or out of range\r\n")
            line("NOSUCH x", b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n")
            # the same keyspace as the RESP listeners
            self.assertEqual(p.call("GET", "line:k"), b"$5\r\nhello\r\n")
            self.assertEqual(p.call("SET", "line:k", "from-resp"), b"+OK\r\n")
            line("GET line:k", b"$9\r\nfrom-resp\r\n", 2)
            # a line longer than max_line (64) closes the connection (a reset: the rest of the line is unread)
            f.write(b"GET " + b"x" * 100 + b"\n")
            f.flush()
            try:
                self.assertEqual(f.readline(), b"")
            except ConnectionResetError:
                pass
        # the hello layer of the pipeline counted the line protocol's five commands (not the RESP listener's)
        self.assertEqual(self.count() - before, 5)

    def test_raw_resp_replies_and_exact_count(self):
        before = self.count()
        with harness.RespConn(self.greeted) as c, harness.RespConn(self.plain) as p:
            self.assertEqual(c.call("SET", "hello:k", "v"), b"+OK\r\n")
            self.assertEqual(c.call("GET", "hello:k"), b"$1\r\nv\r\n")
            self.assertEqual(c.call("INCR", "hello:n"), b":1\r\n")
            self.assertEqual(c.call("PING"), b"+PONG\r\n")
            # a pipelined batch: five more requests
            c.send(b"".join(harness.encode_command("INCR", "hello:n") for _ in range(5)))
            self.assertEqual(c.read_replies(5), [b":%d\r\n" % i for i in range(2, 7)])
            # the plain listener's pipeline has no hello layer: same keyspace, not counted
            self.assertEqual(p.call("GET", "hello:n"), b"$1\r\n6\r\n")
            self.assertEqual(p.call("PING"), b"+PONG\r\n")
        self.assertEqual(self.count() - before, 9)

    def test_redis_cli(self):
        if not os.path.exists(harness.REDIS_CLI):
            self.skipTest("redis-cli not installed")
        before = self.count()
        run = lambda *a: subprocess.run([harness.REDIS_CLI, "-p", str(self.greeted), *a], capture_output=True,
                                        timeout=10).stdout.strip()
        self.assertEqual(run("SET", "cli:k", "hello world"), b"OK")
        self.assertEqual(run("GET", "cli:k"), b"hello world")
        self.assertEqual(run("STRLEN", "cli:k"), b"11")
        self.assertEqual(self.count() - before, 3)

    @unittest.skipIf(redis is None, "python3-redis not installed")
    def test_redis_py(self):
        before = self.count()
        r = redis.Redis(host="127.0.0.1", port=self.greeted, socket_timeout=harness.IO_TIMEOUT)
        self.addCleanup(r.close)
        self.assertTrue(r.set("py:k", "1"))
        self.assertEqual(r.incrby("py:k", 41), 42)
        self.assertEqual(r.get("py:k"), b"42")
        self.assertEqual(r.delete("py:k"), 1)
        self.assertIsNone(r.get("py:k"))
        self.assertEqual(self.count() - before, 5)

    def test_metric_is_declared_once_in_the_served_registry(self):
        text = metrics_text(self.http)
        self.assertEqual(text.count("# TYPE turret_hello_requests_total counter"), 1, text)
        # only the pipeline that has the layer has a series
        self.assertIsNone(series_value(text, 'turret_hello_requests_total{pipeline="default"}'))

    def test_symbols_bind_to_turretd(self):
        """What makes the registry one: the plugin defines no turret function or object of its own, and the dynamic
        loader binds every object it could hold a copy of (template statics and statics of inline functions: Asio's
        per-thread call stack, Boost.System's categories...) and every turret function it calls to turretd's, as the
        loader itself reports (LD_DEBUG=bindings) while turretd loads it."""
        nm = shutil.which("nm")
        if not nm:
            self.skipTest("nm (binutils) not installed")

        def symbols(path: str, *flags: str) -> list[tuple[str, str]]:
            """(kind, name) of the dynamic symbols; -C demangles."""
            out = subprocess.run([nm, "-D", *flags, path], capture_output=True, text=True, check=True).stdout
            rows = []
            for line in out.splitlines():
                parts = line.split(maxsplit=1 if line.startswith(" ") else 2)
                if len(parts) >= 2:
                    rows.append((parts[-2], parts[-1]))
            return rows

        exported = {name for kind, name in symbols(harness.TURRETD, "-C", "--defined-only") if kind == "T"}
        for fn in ("turret::metrics::default_registry()", "turret::layer_context::metrics() const",
                   "turret::request_context::generate_request_id[abi:cxx11]()"):
            self.assertIn(fn, exported)
        demangled = symbols(HELLO_PLUGIN, "-C", "--defined-only")
        self.assertIn(("T", "turret_plugin_entry"), demangled)
        strong = [(k, n) for k, n in demangled if n.startswith("turret::") and k in ("T", "D", "B", "R", "u")]
        self.assertEqual(strong, [], "the plugin carries turret definitions of its own")

        mangled = symbols(HELLO_PLUGIN, "--defined-only")
        # (C++ names only: a sanitizer's own globals, e.g. ASan's __odr_asan.* indicators, are not singletons of ours)
        objects = [n for k, n in mangled if n.startswith("_Z") and (k in ("u", "D", "B", "R") or
                                                                    (k == "V" and not n.startswith("_ZT")))]
        self.assertTrue(any("call_stack" in n for n in objects), objects)  # the check is not vacuous
        calls = [n for k, n in symbols(HELLO_PLUGIN, "--undefined-only") if n.startswith("_ZN") and "turret" in n]
        self.assertIn("_ZNK6turret13layer_context7metricsEv", calls)

        d = tempfile.mkdtemp(prefix="turret-plugin-ld-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "turret.yaml")
        Path(path).write_text(config([HELLO_PLUGIN], GREETED))
        p = check_config(path, LD_DEBUG="bindings")
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        bound = {}  # symbol -> the file it was bound to, for references from the plugin
        pattern = re.compile(r"binding file (\S+) \[\d+\] to (\S+) \[\d+\]: normal symbol `([^']+)'")
        for m in pattern.finditer(p.stderr):
            if os.path.basename(m.group(1)) == os.path.basename(HELLO_PLUGIN):
                bound[m.group(3)] = m.group(2)
        turretd = os.path.realpath(harness.TURRETD)
        for sym in objects + calls:
            with self.subTest(symbol=sym):
                self.assertIn(sym, bound)
                self.assertEqual(os.path.realpath(bound[sym]), turretd)


class LineProtocolLifecycle(unittest.TestCase):
    def test_options_are_validated_by_the_plugin(self):
        require_plugins(self)
        d = tempfile.mkdtemp(prefix="turret-plugin-line-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "turret.yaml")
        entry = "{name: text, protocol: line, address: 127.0.0.1:0, line: {max_lines: 5}}"
        text = config([line_plugin()], NO_HELLO, extra_listeners=[entry])
        Path(path).write_text(text)
        p = check_config(path)
        self.assertEqual(p.returncode, 1, p.stdout)
        line = text.splitlines().index(f"  - {entry}") + 1
        self.assertRegex(p.stderr.strip(), re.escape(f"{path}:{line}:") + r"\d+: listeners\[3\]\.line\.max_lines: "
                         r"unknown key 'max_lines'")
        # without the plugin, the protocol is unknown
        Path(path).write_text(text.replace(f"  - {line_plugin()}\n", ""))
        p = check_config(path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown protocol 'line' (registered: grpc, http, resp)", p.stderr)

    def test_sigterm_drains_the_plugin_listener(self):
        require_plugins(self)
        srv = harness.start_target(self, config([line_plugin()], NO_HELLO, extra_listeners=[
            "{name: text, protocol: line, address: 127.0.0.1:0}"]))
        port = int(re.search(rb"listening line \S*?:(\d+) name=text", Path(srv.log_path).read_bytes()).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=harness.IO_TIMEOUT) as s:
            f = s.makefile("rwb")
            f.write(b"PING\n")
            f.flush()
            self.assertEqual(f.readline(), b"+PONG\r\n")
            srv.signal(signal.SIGTERM)
            self.assertEqual(srv.wait(harness.STOP_TIMEOUT), 0, srv.log_text())
            self.assertEqual(f.readline(), b"")  # closed by the drain
        self.assertIn("turretd stopped", srv.log_text())


class PluginErrors(unittest.TestCase):
    def setUp(self):
        require_plugins(self)
        self.dir = tempfile.mkdtemp(prefix="turret-plugin-errors-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, plugins: list[str], pipelines: str = GREETED) -> tuple[str, str]:
        path = os.path.join(self.dir, "turret.yaml")
        text = config(plugins, pipelines)
        Path(path).write_text(text)
        return path, text

    def assert_refused(self, plugins: list[str], index: int, message: str) -> None:
        """--check-config and --config both exit 1 with "FILE:LINE:COL: plugins[index]: <message>"; the line is that
        of the entry."""
        path, text = self.write(plugins)
        line = text.splitlines().index(f"  - {plugins[index]}") + 1
        expected = re.compile(re.escape(f"{path}:{line}:5: plugins[{index}]: ") + message)
        p = check_config(path)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertRegex(p.stderr.strip(), expected)
        self.assertNotIn("configuration OK", p.stdout)
        # the same error stops turretd at start-up, before it binds anything
        s = subprocess.run([harness.TURRETD, "--config", path], capture_output=True, text=True,
                           timeout=harness.START_TIMEOUT)
        self.assertEqual(s.returncode, 1, s.stdout + s.stderr)
        self.assertRegex(s.stderr, expected)
        self.assertNotIn("listening", s.stdout + s.stderr)

    def test_hello_check_config_ok(self):
        path, _ = self.write([HELLO_PLUGIN])
        p = check_config(path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("configuration OK", p.stdout)

    def test_without_the_plugin_hello_is_unknown(self):
        path, text = self.write([])
        text = text.replace("plugins:\n", "")
        Path(path).write_text(text)
        p = check_config(path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("pipelines.greeted[1].layer: unknown layer 'hello' (registered: access_log, auth, "
                      "circuit_breaker, concurrency_limit, fault, hedge, load_balance, load_shed, metrics, "
                      "rate_limit, retry, timeout)", p.stderr)

    def test_missing_file(self):
        missing = os.path.join(self.dir, "no", "libmissing.so")
        self.assert_refused([HELLO_PLUGIN, missing], 1, re.escape(f"cannot load plugin {missing}: {missing}: cannot "
                                                                  "open shared object file: No such file or directory"))

    def test_missing_relative_file_is_resolved_from_the_config_directory(self):
        self.assert_refused(["sub/libnope.so"], 0,
                            re.escape(f"cannot load plugin {self.dir}/sub/libnope.so: {self.dir}/sub/libnope.so: "
                                      "cannot open shared object file"))

    def test_not_a_turret_plugin(self):
        so = bad_plugin("no_entry")
        self.assert_refused([so], 0, re.escape(f"{so} is not a turret plugin: it exports no turret_plugin_entry"))

    def test_wrong_abi_version(self):
        so = bad_plugin("wrong_abi")
        self.assert_refused([so], 0, re.escape(f"{so} was built for plugin ABI 2, this program loads plugin ABI 1 "
                                               "(rebuild the plugin against this version of turret)"))

    def test_unresolved_symbol(self):
        so = bad_plugin("unresolved")
        self.assert_refused([so], 0, re.escape(f"cannot load plugin {so}: {so}: undefined symbol: ") +
                            r"_ZN6turret34function_this_turret_does_not_have")

    def test_duplicate_layer_name(self):
        so = bad_plugin("duplicate")
        self.assert_refused([so], 0, re.escape(f"plugin {so} (duplicate): layer_registry::add: layer 'timeout' "
                                               "registered twice"))

    def test_listed_twice(self):
        path, text = self.write([HELLO_PLUGIN, HELLO_PLUGIN])
        p = check_config(path)
        self.assertEqual(p.returncode, 1)
        lines = text.splitlines()
        second = len(lines) - lines[::-1].index(f"  - {HELLO_PLUGIN}")
        self.assertEqual(p.stderr.strip(), f"{path}:{second}:5: plugins[1]: plugin {HELLO_PLUGIN} is listed twice")


if __name__ == "__main__":
    unittest.main()
