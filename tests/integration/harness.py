"""Shared helpers for turret's integration tests: real server processes on free ports, raw RESP sockets.

Servers
-------
``TurretServer`` starts turretd (``$TURRETD``) with a generated YAML config whose listener is ``127.0.0.1:0``; the
port actually bound is parsed from turretd's log line ``listening resp 127.0.0.1:PORT`` (``resp`` is the listener
name). ``RedisServer`` starts ``redis-server`` without persistence on a free port in a temp dir. Both are context
managers and are always stopped (SIGTERM, then SIGKILL after a timeout); their logs are kept for failure messages
(``server.log_text()``).

``start_turretd(test, ...)`` / ``start_redis(test, ...)`` start a server and register its stop with
``test.addCleanup``; in ``setUpClass`` use ``cls.addClassCleanup`` through ``start_*(cls, ...)`` as well.

Substitute mode: with ``TURRET_TEST_TARGET=redis`` every "turretd" is a redis-server, so the harness and the
Redis-compatibility assertions of every test can be validated against the reference itself (turretd-only tests
skip themselves via ``require_turretd``).

Raw RESP
--------
``RespConn`` is a blocking socket with a read buffer: ``send(bytes)``, ``command(*args)`` (multibulk encoding),
``read_reply()`` returns the exact bytes of one complete RESP2/RESP3 reply (attributes included), ``read_eof()``
tells whether the server closed the connection, ``read_available()`` drains whatever arrives within a quiet period.
``parse_reply(bytes)`` turns reply bytes into Python values for structural checks.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("TURRET_SOURCE_DIR", HERE.parent.parent)).resolve()
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
SUBSTITUTE_REDIS = os.environ.get("TURRET_TEST_TARGET", "") == "redis"

# Sanitized builds run 2-15x slower: scripts/sanitize.sh sets TURRET_TEST_TIMEOUT_SCALE, which stretches every
# timeout that waits for the server (never a time the server itself must keep, such as an idle timeout).
TIMEOUT_SCALE = float(os.environ.get("TURRET_TEST_TIMEOUT_SCALE", "1"))
START_TIMEOUT = 10.0 * TIMEOUT_SCALE
STOP_TIMEOUT = 10.0 * TIMEOUT_SCALE
IO_TIMEOUT = 5.0 * TIMEOUT_SCALE


def _find_binary(env: str, *candidates: str) -> str | None:
    """$env if set, else the first existing build-dir candidate (for running a test file by hand)."""
    value = os.environ.get(env)
    if value:
        return value
    for build in sorted(SOURCE_DIR.glob("build*")):
        for c in candidates:
            p = build / c
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


TURRETD = _find_binary("TURRETD", "services/turretd")
TURRET_CLI = _find_binary("TURRET_CLI", "services/turret-cli")
TURRET_HELLO = _find_binary("TURRET_HELLO", "examples/hello")


def require_turretd(test: unittest.TestCase | type) -> str:
    """The turretd binary, or skip (substitute mode, or no binary when run by hand without $TURRETD)."""
    if SUBSTITUTE_REDIS:
        raise unittest.SkipTest("turretd-only test (TURRET_TEST_TARGET=redis)")
    if not TURRETD or not os.path.exists(TURRETD):
        if os.environ.get("TURRETD"):
            raise AssertionError(f"TURRETD={TURRETD} does not exist")
        raise unittest.SkipTest("turretd not built and $TURRETD not set")
    return TURRETD


SANITIZER_RE = re.compile(r"^(?:==\d+==\s*)?(?:ERROR: (?:Address|Leak|Memory|UndefinedBehavior)Sanitizer|"
                          r"WARNING: ThreadSanitizer|ThreadSanitizer:|SUMMARY: \w+Sanitizer)|"
                          r"^\S+:\d+:\d+: runtime error: ", re.M)


def sanitizer_report(text: str, limit: int = 12000) -> str | None:
    """The part of a process log from its first sanitizer report on (None when there is none)."""
    m = SANITIZER_RE.search(text)
    if not m:
        return None
    return text[m.start():m.start() + limit]


def free_port() -> int:
    """A TCP port that was free a moment ago (bind 0, read, close). Only for servers that cannot bind 0 themselves."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port: int, proc: subprocess.Popen | None, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before accepting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                s.settimeout(2.0)
                if s.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} not accepting after {timeout}s")


class ServerProcess:
    """A child process whose combined stdout/stderr goes to a log file; stop() always reaps it."""

    kind = "server"

    def __init__(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix=f"turret-{self.kind}-")
        self.log_path = os.path.join(self.tmpdir, "server.log")
        self.proc: subprocess.Popen | None = None
        self.port: int = 0
        self.returncode: int | None = None
        self.signalled = False  # set once we asked it to stop (a signal or stop())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, argv: list[str]) -> None:
        self._log_file = open(self.log_path, "wb")
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.tmpdir, start_new_session=True)

    def start_on_free_ports(self, argv, ready, what: str, attempts: int = 5) -> None:
        """Spawn argv() (which picks the free ports, e.g. self.port = free_port()) and call ready() (raises
        RuntimeError when the server does not come up). A free port can be taken between the probe and the server
        binding it: on failure, retry with new ports; after `attempts`, clean up and raise RuntimeError with the log."""
        last_err: Exception | None = None
        for _ in range(attempts):
            self.signalled = self._checked = False
            self._spawn(argv())
            try:
                ready()
                return
            except RuntimeError as e:
                last_err = e
                self.signalled = True
                self.stop()
        message = f"{what} failed to start: {last_err}\n{self.log_text()}"
        self.cleanup()
        raise RuntimeError(message)

    def log_text(self, limit: int = 20000) -> str:
        try:
            data = Path(self.log_path).read_bytes()
        except OSError:
            return "<no log>"
        return data[-limit:].decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.signalled = True
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait, SIGKILL on timeout. Idempotent. Returns the exit code.

        Raises AssertionError (once) when the server crashed (died on its own before being asked to stop, or was
        killed by a signal we did not send) or when its log holds a sanitizer report (ASan, UBSan, LSan, TSan), so
        such a test fails instead of passing on a server that misbehaved."""
        if self.proc is None:
            return None
        crashed = self.proc.poll() is not None and not self.signalled
        if crashed:
            # died on its own (crash, abort): make it visible in the test output
            sys.stderr.write(f"\n*** {self.kind} (pid {self.proc.pid}, port {self.port}) exited unexpectedly with "
                             f"code {self.proc.returncode}; log tail:\n{self.log_text(4000)}\n")
        self.signalled = True
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.returncode = self.proc.returncode
        with contextlib.suppress(Exception):
            self._log_file.close()
        if not getattr(self, "_checked", False):
            self._checked = True
            report = sanitizer_report(self.log_text(200000))
            if report:
                raise AssertionError(f"{self.kind} (pid {self.proc.pid}) sanitizer report:\n{report}")
            if crashed or (self.returncode is not None and self.returncode < 0
                           and -self.returncode not in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT)):
                raise AssertionError(f"{self.kind} (pid {self.proc.pid}) crashed with code {self.returncode}; "
                                     f"log tail:\n{self.log_text(4000)}")
        return self.returncode

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def describe(self) -> str:
        return f"{self.kind} pid={self.proc.pid if self.proc else '-'} port={self.port}\n--- log ---\n{self.log_text()}"

    # convenience
    def conn(self, timeout: float = IO_TIMEOUT) -> "RespConn":
        return RespConn(self.port, timeout=timeout)

    def rss_kb(self) -> int:
        return proc_rss_kb(self.pid)

    def cpu_ticks(self) -> int:
        return proc_cpu_ticks(self.pid)


class RedisServer(ServerProcess):
    kind = "redis"

    def __init__(self, extra: list[str] | None = None) -> None:
        super().__init__()

        def argv():
            self.port = free_port()
            return redis_server_argv(self.port, self.tmpdir, extra)
        self.start_on_free_ports(argv, lambda: wait_accepting(self.port, self.proc), "redis-server")


def redis_server_argv(port: int, directory: str, extra: list[str] | None = None) -> list[str]:
    """redis-server on 127.0.0.1:port in the foreground, logging to stdout, without persistence, in directory."""
    return [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory, "--daemonize", "no", "--logfile", ""] + list(extra or [])


LISTEN_RE = re.compile(rb"listening\s+(?:on\s+)?resp\S*\s+\S*?:(\d+)")


def _yaml_lines(d: dict, indent: int) -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(" " * indent + f"{k}:")
            out += _yaml_lines(v, indent + 2)
        else:
            out.append(" " * indent + f"{k}: {v}")
    return out


# server.threads of generated configs unless a test passes its own: $TURRET_TEST_THREADS (scripts/sanitize.sh sets 4 so
# that pub/sub delivery, CLIENT KILL etc. cross worker threads even on a one-core machine), else 2 (turretd's default,
# 0 = auto, is one worker on a 2-core machine, and the tests must cross threads there too).
DEFAULT_THREADS = int(os.environ.get("TURRET_TEST_THREADS", "2") or 2)


def turretd_yaml(resp: dict | None = None, store: dict | None = None, top_extra: str = "", threads: int | None = None,
                 level: str = "info", shutdown_grace: str = "5s") -> str:
    """A turretd config with one RESP listener on 127.0.0.1:0.

    threads: server.threads (None: DEFAULT_THREADS).
    resp: the listener's `resp:` section (maxclients, timeout, proto_max_bulk_len, client_output_buffer_limit_pubsub:
    {hard, soft, soft_seconds} ...); store: extra keys of `store:` (requirepass, notify_keyspace_events, hz)."""
    if threads is None:
        threads = DEFAULT_THREADS
    lines = [
        "server:",
        f"  threads: {threads}",
        f"  shutdown_grace: {shutdown_grace}",
        "logging:",
        f"  level: {level}",
        "  format: text",
        "listeners:",
        "  - name: resp",
        "    protocol: resp",
        "    address: 127.0.0.1:0",
    ]
    if resp:
        lines.append("    resp:")
        lines += _yaml_lines(resp, 6)
    lines += ["store:", "  kind: memory", "  databases: 16"]
    lines += _yaml_lines(store or {}, 2)
    text = "\n".join(lines) + "\n"
    if top_extra:
        text += top_extra.rstrip("\n") + "\n"
    return text


class TurretServer(ServerProcess):
    kind = "turretd"

    def __init__(self, config: str | None = None, binary: str | None = None, args: list[str] | None = None,
                 config_file: str | None = None) -> None:
        """config: the YAML text (written to the server's temp dir); config_file: an existing file instead (a test
        that needs the file elsewhere, e.g. next to plugins it names by relative paths)."""
        super().__init__()
        self.binary = binary or TURRETD
        if config_file:
            self.config_path = config_file
        else:
            self.config_path = os.path.join(self.tmpdir, "turret.yaml")
            Path(self.config_path).write_text(config if config is not None else turretd_yaml())
        self._spawn([self.binary, "--config", self.config_path] + list(args or []))
        try:
            self.port = self._wait_port()
            wait_accepting(self.port, self.proc)
        except Exception as e:
            self.signalled = True
            try:
                self.stop()
            except AssertionError as report:  # a sanitizer report or crash: part of the failure message
                e = f"{e}\n{report}"
            message = (f"turretd failed to start: {e}\nconfig:\n{Path(self.config_path).read_text()}\n"
                       f"log:\n{self.log_text()}")
            self.cleanup()
            raise RuntimeError(message) from None

    def _wait_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(Path(self.log_path).read_bytes())
            if m:
                return int(m.group(1))
            ports = listening_ports(self.proc.pid)
            if len(ports) == 1 and time.monotonic() > deadline - START_TIMEOUT + 0.5:
                return ports[0]  # no log line (logging.level above info): the only listening socket is ours
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("no 'listening resp 127.0.0.1:PORT' line in the log")


def make_target(config: str | None = None, redis_extra: list[str] | None = None) -> ServerProcess:
    """The server under test: turretd, or redis-server in substitute mode (config ignored; redis_extra used)."""
    if SUBSTITUTE_REDIS:
        return RedisServer(redis_extra)
    if not TURRETD or not os.path.exists(TURRETD):
        if os.environ.get("TURRETD"):
            raise AssertionError(f"TURRETD={TURRETD} does not exist")
        raise unittest.SkipTest("turretd not built and $TURRETD not set")
    return TurretServer(config)


def _register(owner, server: ServerProcess) -> ServerProcess:
    if isinstance(owner, type):
        owner.addClassCleanup(server.cleanup)
    else:
        owner.addCleanup(server.cleanup)
    return server


def start_target(owner, config: str | None = None, redis_extra: list[str] | None = None) -> ServerProcess:
    return _register(owner, make_target(config, redis_extra))


def start_redis(owner, extra: list[str] | None = None) -> RedisServer:
    return _register(owner, RedisServer(extra))


# ---------------------------------------------------------------------------------------------------------------
# /proc


def listening_ports(pid: int) -> list[int]:
    """TCP ports a process listens on (its socket inodes matched against /proc/net/tcp{,6} LISTEN entries)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return []
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime (clock ticks) of a process (all threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------------------------------------------------------
# RESP


def encode_command(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ConnectionClosed(Exception):
    pass


class ReplyTimeout(Exception):
    pass


class RespConn:
    """A raw RESP connection with exact reply framing."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = IO_TIMEOUT) -> None:
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, *args) -> None:
        self.send(encode_command(*args))

    def call(self, *args) -> bytes:
        """Send one command and return its reply bytes."""
        self.command(*args)
        return self.read_reply()

    def _fill(self, deadline: float) -> None:
        if self.eof:
            raise ConnectionClosed("connection closed by server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout("timed out waiting for a reply")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise ReplyTimeout("timed out waiting for a reply") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise ConnectionClosed("connection closed by server")
        self.buf += chunk

    def read_reply(self, timeout: float | None = None) -> bytes:
        """Bytes of exactly one complete reply (an attribute is returned together with the reply it decorates)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            end = reply_end(self.buf, 0)
            if end is not None:
                out = bytes(self.buf[:end])
                del self.buf[:end]
                return out
            self._fill(deadline)

    def read_replies(self, n: int, timeout: float | None = None) -> list[bytes]:
        return [self.read_reply(timeout) for _ in range(n)]

    def read_available(self, quiet: float = 0.2) -> bytes:
        """Whatever arrives until nothing more for `quiet` seconds (or EOF)."""
        while not self.eof:
            try:
                self._fill(time.monotonic() + quiet)
            except (ReplyTimeout, ConnectionClosed):
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_eof(self, timeout: float | None = None) -> bool:
        """True when the server closes the connection within timeout (pending bytes are discarded)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return True
            except ReplyTimeout:
                return False


def _line_end(buf, pos):
    i = buf.find(b"\r\n", pos)
    return None if i < 0 else i


def reply_end(buf, pos: int) -> int | None:
    """Index just past the complete RESP2/RESP3 value starting at pos, or None if incomplete."""
    if pos >= len(buf):
        return None
    t = buf[pos:pos + 1]
    le = _line_end(buf, pos)
    if le is None:
        return None
    head = bytes(buf[pos + 1:le])
    after = le + 2
    if t in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return after
    if t in (b"$", b"=", b"!"):
        n = int(head)
        if n < 0:
            return after
        end = after + n + 2
        return end if len(buf) >= end else None
    if t in (b"*", b"~", b">", b"%", b"|"):
        n = int(head)
        if n < 0:
            return after
        count = n * 2 if t in (b"%", b"|") else n
        p = after
        for _ in range(count):
            p = reply_end(buf, p)
            if p is None:
                return None
        if t == b"|":  # attribute: followed by the value it decorates
            return reply_end(buf, p)
        return p
    raise ValueError(f"not a RESP reply at {pos}: {bytes(buf[pos:pos + 40])!r}")


class Err(str):
    """An error reply (parse_reply)."""


class Push(list):
    """A RESP3 push (parse_reply)."""


class Verbatim(bytes):
    pass


def parse_reply(data: bytes):
    """Parse one reply into Python values: bytes, int, None, list, dict, set (frozenset items as tuples), float,
    bool, Err, Push. Simple strings become str."""
    value, end = _parse(data, 0)
    if end != len(data):
        raise ValueError(f"trailing bytes after reply: {data[end:]!r}")
    return value


def _hashable(v):
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((_hashable(k), _hashable(x)) for k, x in v.items()))
    return v


def _parse(buf, pos):
    t = buf[pos:pos + 1]
    le = buf.index(b"\r\n", pos)
    head = bytes(buf[pos + 1:le])
    after = le + 2
    if t == b"+":
        return head.decode("utf-8", "replace"), after
    if t == b"-":
        return Err(head.decode("utf-8", "replace")), after
    if t == b":":
        return int(head), after
    if t == b"_":
        return None, after
    if t == b",":
        return float(head.replace(b"inf", b"inf")), after
    if t == b"#":
        return head == b"t", after
    if t == b"(":
        return int(head), after
    if t in (b"$", b"=", b"!"):
        n = int(head)
        if n < 0:
            return None, after
        body = bytes(buf[after:after + n])
        if t == b"=":
            body = Verbatim(body[4:])
        elif t == b"!":
            body = Err(body.decode("utf-8", "replace"))
        return body, after + n + 2
    if t in (b"*", b"~", b">"):
        n = int(head)
        if n < 0:
            return None, after
        items = []
        p = after
        for _ in range(n):
            v, p = _parse(buf, p)
            items.append(v)
        if t == b"~":
            return set(_hashable(x) for x in items), p
        if t == b">":
            return Push(items), p
        return items, p
    if t in (b"%", b"|"):
        n = int(head)
        d = {}
        p = after
        for _ in range(n):
            k, p = _parse(buf, p)
            v, p = _parse(buf, p)
            d[_hashable(k)] = v
        if t == b"|":
            return _parse(buf, p)
        return d, p
    raise ValueError(f"bad RESP type {t!r}")


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
