"""Pub/sub through turretd in front of real redis-servers (store kind upstream, modes shard, replicas and cluster).

turretd keeps its own registry of which sessions subscribe to what and holds ONE subscriber connection per upstream
node, subscribed to the union of its sessions' channels and patterns; messages from those connections are fanned out
to the local sessions. A SUBSCRIBE / PSUBSCRIBE is confirmed only once the upstream subscriptions are active on every
node that is up; the last local subscriber of a channel leaving (UNSUBSCRIBE or disconnect) unsubscribes upstream; a
lost subscriber connection reconnects and subscribes everything again.

Shard mode (three redis-servers, redis_topology.Shards, one turretd with RESP, HTTP and gRPC listeners):
- two subscribers (redis-py) get every message exactly once: PUBLISH through turretd (answers 2, goes to one shard)
  and a PUBLISH made directly on each redis-server; each server sees ONE subscriber (turretd's connection);
- PSUBSCRIBE gets pmessage frames; keyspace notifications (notify-keyspace-events set on each redis-server directly)
  for keys written through turretd reach PSUBSCRIBE `__keyspace@0__:*`, SUBSCRIBE `__keyevent@0__:set` and SUBSCRIBE
  `__keyspace@0__:<key>` once per write, whichever shard holds the key;
- no gap: a message published directly on any shard right after the client got its confirmation is delivered (and
  the shard already counts turretd's connection as a receiver), 50 SUBSCRIBEs and 10 PSUBSCRIBEs in a row;
- the last subscriber leaving (UNSUBSCRIBE, PUNSUBSCRIBE, a closed socket) unsubscribes on every redis-server within
  2 s, not before (another session still subscribed keeps receiving);
- the replies of the subscribe family, PING and the subscribed-context error are redis-server 7.0's bytes (the same
  raw transcript through turretd and against a plain redis-server); SSUBSCRIBE / SUNSUBSCRIBE are refused;
- HTTP Server-Sent Events (curl) and gRPC Subscribe receive messages published directly on each shard;
- kill -9 of one redis-server while subscribed: the other shards' messages keep arriving, a SUBSCRIBE during the
  outage is confirmed, and once the server is restarted on its port its messages arrive again within 5 s.
Replicas mode (a primary and a replica): subscriptions on the primary only; PUBLISH through turretd goes there.
Cluster mode (three primaries, three replicas): subscriptions on every primary; a message published on any of the six
nodes arrives exactly once; keyspace notifications of every primary arrive exactly once.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import subprocess
import threading
import time
import unittest

import harness
import redis_topology as rt
from test_http import CURL
from test_pipelines import kv_stub, listener_ports
from test_upstream_cluster import cluster_config
from test_upstream_replicas import commandstat, replicas_config
from test_upstream_shard import require_clients, upstream_config
from test_upstream_shard import shard_config as plain_shard_config

try:
    import redis
except ImportError:  # pragma: no cover
    redis = None

SCALE = harness.TIMEOUT_SCALE
IO = harness.IO_TIMEOUT        # one reply or one message
QUIET = 0.3 * SCALE            # no duplicate may arrive within this window
UNSUB_BOUND = 2.0 * SCALE      # the last subscriber gone -> unsubscribed upstream
RESUB_BOUND = 5.0 * SCALE      # a restarted server -> subscribed again


# -- RESP2 frames ------------------------------------------------------------------------------------------------


def _b(x) -> bytes:
    return x.encode() if isinstance(x, str) else bytes(x)


def frame(*items) -> bytes:
    """A RESP2 array of bulk strings (str / bytes), integers (int) and null bulks (None)."""
    out = [b"*%d\r\n" % len(items)]
    for x in items:
        if x is None:
            out.append(b"$-1\r\n")
        elif isinstance(x, int):
            out.append(b":%d\r\n" % x)
        else:
            x = _b(x)
            out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)


def message(channel, data) -> bytes:
    return frame("message", channel, data)


def pmessage(pattern, channel, data) -> bytes:
    return frame("pmessage", pattern, channel, data)


def confirmation(kind: str, name, count: int) -> bytes:
    return frame(kind.lower(), name, count)


# -- subscribers ---------------------------------------------------------------------------------------------------


class Subscriber:
    """A raw RESP connection (turretd or a redis-server) used as a subscriber: frames compared as exact bytes; every
    wait has a deadline and fails the test with what arrived (and turretd's log tail)."""

    def __init__(self, test: "Fixture", port: int) -> None:
        self.test = test
        self.conn = harness.RespConn(port, timeout=IO)
        test.addCleanup(self.conn.close)

    def call(self, *args, replies: int = 1) -> list[bytes]:
        self.conn.command(*args)
        try:
            return self.conn.read_replies(replies, timeout=IO)
        except (harness.ReplyTimeout, harness.ConnectionClosed) as e:
            self.test.fail_with_log(f"{args}: {e}")

    def subscribe(self, kind: str, *names, first: int = 1) -> None:
        """SUBSCRIBE / PSUBSCRIBE names; the confirmations must be Redis's, counts from `first` on."""
        got = self.call(kind, *names, replies=len(names))
        want = [confirmation(kind, n, first + i) for i, n in enumerate(names)]
        self.test.assertEqual(got, want, f"{kind} {names}")

    def expect(self, frames: list[bytes], what: str, timeout: float = IO) -> None:
        """Every frame of `frames` arrives (any order), and nothing else meanwhile (no duplicate, no stranger)."""
        want = collections.Counter(frames)
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while collections.Counter(got) != want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = list((want - collections.Counter(got)).elements())
                self.test.fail_with_log(f"{what}: missing after {timeout:.1f}s: {missing}; arrived: {got}")
            try:
                f = self.conn.read_reply(timeout=remaining)
            except harness.ReplyTimeout:
                continue
            except harness.ConnectionClosed:
                self.test.fail_with_log(f"{what}: connection closed; arrived: {got}")
            got.append(f)
            if collections.Counter(got)[f] > want[f]:
                self.test.fail_with_log(f"{what}: unexpected or duplicate frame {f!r}; arrived: {got}; "
                                        f"expected: {frames}")

    def within(self, seconds: float = QUIET) -> list[bytes]:
        """The frames arriving within `seconds` (a fixed window, whatever arrives)."""
        out = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                out.append(self.conn.read_reply(timeout=remaining))
            except harness.ReplyTimeout:
                break
            except harness.ConnectionClosed:
                out.append(b"<connection closed>")
                break
        return out

    def assert_quiet(self, what: str, seconds: float = QUIET) -> None:
        extra = self.within(seconds)
        self.test.assertEqual(extra, [], f"{what}: more arrived within {seconds:.1f}s (duplicates?)")

    def close(self) -> None:
        self.conn.close()


def py_next(ps, deadline: float):
    """The next redis-py pub/sub message (subscribe confirmations included) before deadline, else None."""
    while (remaining := deadline - time.monotonic()) > 0:
        m = ps.get_message(timeout=min(0.1, remaining))
        if m is not None:
            return m
    return None


def py_messages(ps, seconds: float, count: int | None = None) -> list[tuple]:
    """(type, channel, data) of what a redis-py subscriber receives within `seconds` (stops early once it has
    `count` of them)."""
    out = []
    deadline = time.monotonic() + seconds
    while (count is None or len(out) < count) and (m := py_next(ps, deadline)) is not None:
        out.append((m["type"], m["channel"], m["data"]))
    return out


class SseClient:
    """`curl -N` on an SSE route; its output is read by a thread. Events: (event name, data) in arrival order."""

    def __init__(self, test: unittest.TestCase, port: int, path: str) -> None:
        self.proc = subprocess.Popen([CURL, "-sS", "-N", "--max-time", str(int(30 * SCALE)),
                                      "-H", "Accept: text/event-stream", f"http://127.0.0.1:{port}{path}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.buf = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        test.addCleanup(self.stop)

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            with self.lock:
                self.buf += chunk

    def events(self) -> list[tuple[str, str]]:
        with self.lock:
            text = self.buf.decode("utf-8", "replace").replace("\r\n", "\n")
        out = []
        for block in text.split("\n\n")[:-1]:  # complete events only
            name, data = "message", []
            for line in block.split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
            if data or name != "message":
                out.append((name, "\n".join(data)))
        return out

    def messages(self) -> list[dict]:
        return [json.loads(d) for name, d in self.events() if name == "message"]

    def wait(self, what: str, predicate, timeout: float = IO) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                with self.lock:
                    buf = self.buf
                raise AssertionError(f"SSE: {what} not within {timeout:.1f}s (curl exit {self.proc.poll()}); "
                                     f"stream so far: {buf!r}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


# -- fixtures ------------------------------------------------------------------------------------------------------


def numsub(server: rt.RedisServer, channel: str) -> int:
    """PUBSUB NUMSUB channel, asked of that redis-server directly."""
    return int(server.call("PUBSUB", "NUMSUB", channel)[1])


class Fixture(unittest.TestCase):
    srv: harness.ServerProcess

    def fail_with_log(self, msg: str):
        self.fail(f"{msg}\nturretd log tail:\n{self.srv.log_text(4000)}")

    def eventually(self, what: str, probe, timeout: float) -> None:
        """probe() returns (done, state); polled every 20 ms until done or the deadline (then the test fails)."""
        try:
            rt.wait_until(what, probe, timeout)
        except rt.TopologyTimeout as e:
            self.fail_with_log(str(e))

    def tearDown(self):
        self.assertTrue(self.srv.alive(), f"turretd died\n{self.srv.describe()}")

    @classmethod
    def connect(cls, names: list[str]) -> None:
        cls.ports = listener_ports(cls.srv, names)
        cls.proxy = redis.Redis(port=cls.ports["resp"], socket_timeout=IO)
        cls.addClassCleanup(cls.proxy.close)

    def subscriber(self) -> Subscriber:
        return Subscriber(self, self.ports["resp"])

    def assert_refused_sharded(self, mode: str) -> None:
        with harness.RespConn(self.ports["resp"]) as c:
            self.assertEqual(c.call("SSUBSCRIBE", "s:ch"),
                             f"-ERR SSUBSCRIBE is not supported in {mode} mode\r\n".encode())
            self.assertEqual(c.call("SUNSUBSCRIBE", "s:ch"),
                             f"-ERR SUNSUBSCRIBE is not supported in {mode} mode\r\n".encode())
            self.assertEqual(c.call("PING"), b"+PONG\r\n")


def shard_config(ports: list[int], grpc: bool) -> str:
    """test_upstream_shard's configuration with two worker threads (fan-out crosses threads)."""
    return plain_shard_config(ports, grpc, threads=2)


# Step kinds of the differential transcript.
EXACT, ANY_ORDER, READ = "exact", "any order", "read"

# (connection, command or None for READ, replies, kind). Names are prefixed "d:" so that no other test's traffic
# matches them on the shards.
TRANSCRIPT = [
    ("sub", ("SUBSCRIBE", "d:a", "d:b"), 2, EXACT),
    ("sub", ("SUBSCRIBE", "d:a"), 1, EXACT),                     # again: count unchanged
    ("sub", ("PSUBSCRIBE", "d:h*", "d:n.?"), 2, EXACT),
    ("sub", ("PING",), 1, EXACT),                                # *2 pong ""
    ("sub", ("PING", "hi"), 1, EXACT),
    ("sub", ("GET", "d:nokey"), 1, EXACT),                       # the subscribed-context error
    ("sub", ("SET", "d:nokey", "v"), 1, EXACT),
    ("sub", ("SUBSCRIBE",), 1, EXACT),                           # arity
    ("pub", ("PUBLISH", "d:a", "hello"), 1, EXACT),
    ("sub", None, 1, READ),                                      # message
    ("pub", ("PUBLISH", "d:hat", "x"), 1, EXACT),
    ("sub", None, 1, READ),                                      # pmessage d:h*
    ("pub", ("PUBLISH", "d:n.1", "bin\x00ary\r\n"), 1, EXACT),
    ("sub", None, 1, READ),                                      # pmessage d:n.?
    ("sub", ("SUBSCRIBE", "d:hat"), 1, EXACT),
    ("pub", ("PUBLISH", "d:hat", "two"), 1, EXACT),              # a channel and a pattern: 2
    ("sub", None, 2, READ),                                      # message, then pmessage
    ("sub", ("UNSUBSCRIBE", "d:nosuch"), 1, EXACT),
    ("sub", ("PUNSUBSCRIBE", "d:nosuch*"), 1, EXACT),
    ("sub", ("UNSUBSCRIBE", "d:hat"), 1, EXACT),
    ("sub", ("UNSUBSCRIBE",), 2, ANY_ORDER),                     # d:a and d:b, counts 3 then 2
    ("sub", ("PING",), 1, EXACT),                                # patterns left: still subscribed
    ("sub", ("GET", "d:nokey"), 1, EXACT),
    ("pub", ("PUBLISH", "d:a", "gone"), 1, EXACT),               # 0
    ("sub", ("PUNSUBSCRIBE",), 2, ANY_ORDER),                    # counts 1 then 0
    ("sub", ("PING",), 1, EXACT),                                # +PONG
    ("sub", ("GET", "d:nokey"), 1, EXACT),                       # $-1
    ("sub", ("UNSUBSCRIBE",), 1, EXACT),                         # nothing subscribed: null channel
    ("sub", ("PUNSUBSCRIBE",), 1, EXACT),
    ("pub", ("PUBLISH", "d:hat", "after"), 1, EXACT),            # 0
]


def any_order(replies: list[bytes]):
    """Replies to an UNSUBSCRIBE / PUNSUBSCRIBE without arguments: Redis sends them in its dict's hash order (it
    changes from process to process), so compare the channels as a set; the kinds, the counts in sequence and each
    frame's exact encoding still count."""
    shapes, names = [], []
    for r in replies:
        try:
            kind, name, count = harness.parse_reply(r)
            shapes.append((kind, count, frame(kind, name, count) == r))
            names.append(name)
        except (ValueError, TypeError) as e:
            shapes.append((r, repr(e)))
    return shapes, sorted(names, key=repr)


def run_transcript(port: int, timeout: float) -> list:
    """TRANSCRIPT on connections to port: each step's reply bytes (ANY_ORDER ones normalised). After a missing reply
    the rest of the steps are not run (so a broken side fails in one timeout)."""
    conns: dict[str, harness.RespConn] = {}
    out = []
    try:
        for name, cmd, n, kind in TRANSCRIPT:
            if name not in conns:
                conns[name] = harness.RespConn(port, timeout=timeout)
            c = conns[name]
            if cmd is not None:
                c.command(*cmd)
            try:
                replies = c.read_replies(n, timeout=timeout)
            except (harness.ReplyTimeout, harness.ConnectionClosed) as e:
                out.append(f"<{type(e).__name__}: {e}>")
                out += ["<not run>"] * (len(TRANSCRIPT) - len(out))
                break
            out.append(any_order(replies) if kind == ANY_ORDER else replies)
        out.append(("left unread", {name: c.read_available(QUIET) for name, c in sorted(conns.items())}))
    finally:
        for c in conns.values():
            c.close()
    return out


# -- shard mode ----------------------------------------------------------------------------------------------------


class UpstreamPubSubShard(Fixture):
    """One turretd over three redis-servers for the class; test_zz_ kills (and restarts) one of them."""

    @classmethod
    def setUpClass(cls):
        cls.grpc = require_clients(cls)
        cls.shards = rt.start(cls, rt.Shards, 3)
        cls.reference = rt.start(cls, rt.RedisServer, name="reference")  # the differential's plain redis-server
        cls.srv = harness.start_target(cls, shard_config(cls.shards.ports, cls.grpc))
        cls.connect(["resp", "http"] + (["grpc"] if cls.grpc else []))

    def pubsub(self):
        client = redis.Redis(port=self.ports["resp"], socket_timeout=IO)
        self.addCleanup(client.close)
        ps = client.pubsub()
        self.addCleanup(ps.close)
        return ps

    def test_fanout_to_two_subscribers_exactly_once(self):
        subs = [self.pubsub(), self.pubsub()]
        for ps in subs:
            ps.subscribe("fan")
            m = py_next(ps, time.monotonic() + IO)
            self.assertEqual(m and (m["type"], m["channel"], m["data"]), ("subscribe", b"fan", 1))
        # One subscriber connection per shard, whatever the number of local sessions.
        self.assertEqual([numsub(s, "fan") for s in self.shards.servers], [1, 1, 1])
        before = sum(commandstat(s, "publish") for s in self.shards.servers)
        self.assertEqual(self.proxy.publish("fan", b"via-turretd"), 2)
        self.assertEqual(sum(commandstat(s, "publish") for s in self.shards.servers) - before, 1,
                         "PUBLISH through turretd must go to exactly one shard")
        for i, s in enumerate(self.shards.servers):
            self.assertEqual(s.call("PUBLISH", "fan", f"direct-{i}"), 1, f"shard {i}: turretd's one connection")
        want = sorted([("message", b"fan", b"via-turretd")] + [("message", b"fan", f"direct-{i}".encode())
                                                              for i in range(3)])
        for n, ps in enumerate(subs):
            got = py_messages(ps, IO, count=len(want))
            self.assertEqual(sorted(got), want, f"subscriber {n}: each message exactly once")
            self.assertEqual(py_messages(ps, QUIET), [], f"subscriber {n}: late duplicates")
        self.assertEqual(self.proxy.publish("fan:nobody", b"x"), 0)

    def test_patterns_and_keyspace_notifications_from_every_shard(self):
        news = self.subscriber()
        news.subscribe("PSUBSCRIBE", "news.*")
        self.assertEqual(self.proxy.publish("news.tech", b"t1"), 1)
        for i, s in enumerate(self.shards.servers):
            self.assertEqual(s.call("PUBLISH", f"news.s{i}", f"p{i}"), 1)
        news.expect([pmessage("news.*", "news.tech", "t1")] +
                    [pmessage("news.*", f"news.s{i}", f"p{i}") for i in range(3)], "pmessages")
        news.assert_quiet("pmessages")

        for s in self.shards.servers:  # turretd refuses CONFIG: set it on each redis-server
            self.assertEqual(s.call("CONFIG", "SET", "notify-keyspace-events", "KEA"), "OK")
            self.addCleanup(s.call, "CONFIG", "SET", "notify-keyspace-events", "")
        keyspace, keyevent = self.subscriber(), self.subscriber()
        keyspace.subscribe("PSUBSCRIBE", "__keyspace@0__:*")
        keyevent.subscribe("SUBSCRIBE", "__keyevent@0__:set")
        on: dict[int, list[str]] = {0: [], 1: [], 2: []}
        keys = []
        for i in range(60):
            k = f"ks:{i}"
            self.assertTrue(self.proxy.set(k, "v"))
            where = [j for j, s in enumerate(self.shards.servers) if s.call("EXISTS", k)]
            self.assertEqual(len(where), 1, f"{k} is on shards {where}")
            on[where[0]].append(k)
            keys.append(k)
            if all(len(v) >= 2 for v in on.values()):
                break
        self.assertTrue(all(len(v) >= 2 for v in on.values()), f"keys do not land on every shard: {on}")
        keyspace.expect([pmessage("__keyspace@0__:*", f"__keyspace@0__:{k}", "set") for k in keys],
                        "keyspace events of every shard")
        keyevent.expect([message("__keyevent@0__:set", k) for k in keys], "keyevent events of every shard")
        # SUBSCRIBE to one key's keyspace channel, a key of each shard.
        one = self.subscriber()
        picked = [on[j][0] for j in range(3)]
        one.subscribe("SUBSCRIBE", *[f"__keyspace@0__:{k}" for k in picked])
        for k in picked:
            self.assertTrue(self.proxy.set(k, "again"))
        one.expect([message(f"__keyspace@0__:{k}", "set") for k in picked], "a key's own keyspace channel")
        keyspace.expect([pmessage("__keyspace@0__:*", f"__keyspace@0__:{k}", "set") for k in picked], "rewrites")
        keyevent.expect([message("__keyevent@0__:set", k) for k in picked], "rewrites")
        for sub in (one, keyspace, keyevent):
            sub.assert_quiet("keyspace notifications")

    def test_confirmed_subscription_is_active_on_every_shard(self):
        sub = self.subscriber()
        for i in range(50):
            ch = f"gap:{i}"
            sub.subscribe("SUBSCRIBE", ch, first=i + 1)
            for j, s in enumerate(self.shards.servers):
                self.assertEqual(s.call("PUBLISH", ch, f"{i}/{j}"), 1,
                                 f"{ch}: shard {j} has no subscriber after turretd confirmed")
            sub.expect([message(ch, f"{i}/{j}") for j in range(3)], f"{ch} right after its confirmation")
        for i in range(10):
            pattern = f"gapp:{i}:*"
            sub.subscribe("PSUBSCRIBE", pattern, first=51 + i)
            for j, s in enumerate(self.shards.servers):
                self.assertEqual(s.call("PUBLISH", f"gapp:{i}:x", f"{i}/{j}"), 1,
                                 f"{pattern}: shard {j} has no subscriber after turretd confirmed")
            sub.expect([pmessage(pattern, f"gapp:{i}:x", f"{i}/{j}") for j in range(3)], pattern)
        sub.assert_quiet("after the no-gap rounds")

    def test_last_subscriber_leaving_unsubscribes_upstream(self):
        shards = self.shards.servers
        a, b = self.subscriber(), self.subscriber()
        a.subscribe("SUBSCRIBE", "leave")
        b.subscribe("SUBSCRIBE", "leave")
        b.subscribe("PSUBSCRIBE", "leave.*", first=2)
        self.assertEqual([numsub(s, "leave") for s in shards], [1, 1, 1])
        self.assertEqual(a.call("UNSUBSCRIBE", "leave"), [confirmation("unsubscribe", "leave", 0)])
        # b still subscribes: still subscribed upstream, b still receives, a does not.
        for i, s in enumerate(shards):
            self.assertEqual(s.call("PUBLISH", "leave", f"still-{i}"), 1, f"shard {i}")
        b.expect([message("leave", f"still-{i}") for i in range(3)], "the remaining subscriber")
        a.assert_quiet("an unsubscribed session")
        self.assertEqual(b.call("UNSUBSCRIBE", "leave"), [confirmation("unsubscribe", "leave", 1)])
        self.eventually("NUMSUB leave 0 on every shard after the last UNSUBSCRIBE",
                        lambda: ((n := [numsub(s, "leave") for s in shards]) == [0, 0, 0], n), UNSUB_BOUND)
        self.assertEqual(b.call("PUNSUBSCRIBE", "leave.*"), [confirmation("punsubscribe", "leave.*", 0)])
        self.eventually("no receiver of leave.x on any shard after PUNSUBSCRIBE",
                        lambda: ((n := [s.call("PUBLISH", "leave.x", "-") for s in shards]) == [0, 0, 0], n),
                        UNSUB_BOUND)
        b.assert_quiet("after PUNSUBSCRIBE")
        # A subscriber that just goes away (no UNSUBSCRIBE): its channel and pattern go too.
        c = self.subscriber()
        c.subscribe("SUBSCRIBE", "gone")
        c.subscribe("PSUBSCRIBE", "gone.*", first=2)
        self.assertEqual([numsub(s, "gone") for s in shards], [1, 1, 1])
        self.assertEqual([s.call("PUBLISH", "gone.x", "-") for s in shards], [1, 1, 1])
        c.close()
        self.eventually("NUMSUB gone 0 on every shard after the subscriber disconnected",
                        lambda: ((n := [numsub(s, "gone") for s in shards]) == [0, 0, 0], n), UNSUB_BOUND)
        self.eventually("no receiver of gone.x on any shard after the subscriber disconnected",
                        lambda: ((n := [s.call("PUBLISH", "gone.x", "-") for s in shards]) == [0, 0, 0], n),
                        UNSUB_BOUND)

    def test_replies_are_redis_servers_bytes(self):
        want = run_transcript(self.reference.port, IO)
        got = run_transcript(self.ports["resp"], min(IO, 2.0 * SCALE))
        # The transcript itself exercises what it should (checked on the reference).
        self.assertEqual(want[3], [b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"])
        self.assertEqual(want[5], [b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT "
                                   b"/ RESET are allowed in this context\r\n"])
        mismatches = []
        for i, step in enumerate(TRANSCRIPT + [("*", "<left unread>", 0, EXACT)]):
            w, g = want[i], got[i]
            if w != g:
                mismatches.append(f"step {i} [{step[0]}] {step[1]}:\n    redis-server: {w!r}\n    turretd:      {g!r}")
        if mismatches:
            self.fail_with_log(f"{len(mismatches)} difference(s) from redis-server:\n" + "\n".join(mismatches))
        self.assert_refused_sharded("shard")

    def test_http_sse_receives_messages_published_on_the_shards(self):
        sse = SseClient(self, self.ports["http"], "/v1/subscribe/sse:ch")
        sse.wait("event: subscribed", lambda: any(name == "subscribed" for name, _ in sse.events()))
        for i, s in enumerate(self.shards.servers):
            self.assertEqual(s.call("PUBLISH", "sse:ch", f"from-shard-{i}"), 1, f"shard {i}")
        want = [{"channel": "sse:ch", "message": f"from-shard-{i}"} for i in range(3)]
        sse.wait(f"three messages {want}", lambda: len(sse.messages()) >= 3)
        time.sleep(QUIET)  # a fixed window for duplicates
        got = sse.messages()
        self.assertEqual(sorted(got, key=repr), sorted(want, key=repr), "each message exactly once")

    def test_grpc_subscribe_receives_messages_published_on_the_shards(self):
        if not self.grpc:
            self.skipTest("python3-grpcio or the generated stubs are missing")
        import grpc
        pb, kv = kv_stub(self, self.ports["grpc"])
        call = kv.Subscribe(pb["kv"].SubscribeRequest(channels=[b"grpc:ch"], patterns=[b"grpc:p.*"]),
                            timeout=30 * SCALE)
        responses: queue.Queue = queue.Queue()

        def read():
            try:
                for r in call:
                    responses.put(r)
            except grpc.RpcError as e:
                responses.put(e)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        self.addCleanup(reader.join, 10)
        self.addCleanup(call.cancel)

        def next_response(what: str):
            try:
                r = responses.get(timeout=IO)
            except queue.Empty:
                self.fail_with_log(f"gRPC Subscribe: no {what} within {IO:.1f}s")
            if isinstance(r, Exception):
                self.fail_with_log(f"gRPC Subscribe ended waiting for {what}: {r!r}")
            return r
        first = next_response("confirmation")
        self.assertTrue(first.HasField("subscribed"), first)
        self.assertEqual(first.subscribed.count, 2)
        for i, s in enumerate(self.shards.servers):
            self.assertEqual(s.call("PUBLISH", "grpc:ch", f"c{i}"), 1, f"shard {i}")
            self.assertEqual(s.call("PUBLISH", "grpc:p.x", f"p{i}"), 1, f"shard {i}")
        got = []
        for _ in range(6):
            r = next_response("message")
            self.assertTrue(r.HasField("message"), r)
            got.append((r.message.channel, r.message.pattern, r.message.payload))
        want = [(b"grpc:ch", b"", f"c{i}".encode()) for i in range(3)] + \
               [(b"grpc:p.x", b"grpc:p.*", f"p{i}".encode()) for i in range(3)]
        self.assertEqual(sorted(got), sorted(want))
        try:
            extra = responses.get(timeout=QUIET)
        except queue.Empty:
            extra = None
        self.assertIsNone(extra, "more than the six messages (a duplicate?)")

    def test_stalled_shards_delay_a_confirmation_by_at_most_connect_timeout(self):
        # Two SIGSTOPped shards: SUBSCRIBE is confirmed within one connect_timeout (500 ms here) for all the shards
        # together (not one per stalled shard), the live shard delivers meanwhile, and once the shards resume their
        # messages arrive too (the subscription was sent, only its confirmation not waited for).
        shards = self.shards.servers
        victims, live = shards[:2], shards[2]
        sub = self.subscriber()
        for v in victims:
            v.sigstop()
        try:
            t0 = time.monotonic()
            sub.subscribe("SUBSCRIBE", "stall:a", "stall:b")
            took = time.monotonic() - t0
            self.assertLess(took, 0.5 * 1.6 * SCALE, "one connect_timeout for every shard together")
            self.assertGreater(took, 0.4, "the confirmation waited for the stalled shards' PING")
            self.assertEqual(live.call("PUBLISH", "stall:a", "live"), 1)
            sub.expect([message("stall:a", "live")], "the live shard delivers")
        finally:
            for v in victims:
                v.sigcont()
        for k, v in enumerate(victims):
            # The SUBSCRIBE queued on a stopped shard runs when it resumes (before or after a PUBLISH arriving on
            # another connection at the same moment): publish until one reaches turretd's connection.
            n = 0
            while v.call("PUBLISH", "stall:b", f"resumed-{k}-{n}") != 1:
                n += 1
                self.assertLess(n, 100, "a resumed shard never had the subscription")
                time.sleep(0.01)
            sub.expect([message("stall:b", f"resumed-{k}-{n}")], "a resumed shard delivers")
        print(f"[pubsub] SUBSCRIBE with two SIGSTOPped shards confirmed after {took:.3f} s (connect_timeout 500 ms)",
              flush=True)

    def test_zz_killed_shard_is_resubscribed(self):
        shards = self.shards.servers
        victim, others = shards[1], [shards[0], shards[2]]
        sub = self.subscriber()
        sub.subscribe("SUBSCRIBE", "resub")
        sub.subscribe("PSUBSCRIBE", "resub.*", first=2)
        victim.kill9()
        # The other shards' messages keep arriving: right away, and while turretd retries the dead one.
        for rnd in range(2):
            for i, s in enumerate(others):
                self.assertEqual(s.call("PUBLISH", "resub", f"outage-{rnd}-{i}"), 1)
            sub.expect([message("resub", f"outage-{rnd}-{i}") for i in range(2)], f"outage round {rnd}")
            if rnd == 0:
                time.sleep(0.5 * SCALE)
        # A SUBSCRIBE during the outage is confirmed (every node that is up), and the live shards deliver it.
        late = self.subscriber()
        late.subscribe("SUBSCRIBE", "resub:late")
        for i, s in enumerate(others):
            self.assertEqual(s.call("PUBLISH", "resub:late", f"late-{i}"), 1)
        late.expect([message("resub:late", f"late-{i}") for i in range(2)], "subscribed during the outage")
        victim.restart()
        t0 = time.monotonic()
        probes: list[bytes] = []
        n = 0
        while not probes:
            if time.monotonic() - t0 > RESUB_BOUND:
                self.fail_with_log(f"messages published on the restarted shard do not arrive {RESUB_BOUND:.1f}s "
                                   f"after its restart ({n} probes published)")
            try:
                victim.call("PUBLISH", "resub", f"probe-{n}")
            except redis.exceptions.RedisError:
                pass
            n += 1
            f = sub.within(0.1)
            probes += f
        took = time.monotonic() - t0
        probes += sub.within(QUIET)  # probes published before the first one arrived may still come
        valid = {message("resub", f"probe-{k}") for k in range(n)}
        self.assertTrue(set(probes) <= valid, f"not probe messages: {set(probes) - valid}")
        self.assertEqual(len(probes), len(set(probes)), f"a probe arrived twice: {probes}")
        print(f"[pubsub] restarted shard's messages delivered again {took:.3f} s after its restart", flush=True)
        self.assertEqual(numsub(victim, "resub"), 1, "one subscriber connection after re-subscription")
        self.assertEqual(victim.call("PUBLISH", "resub", "back"), 1)
        self.assertEqual(victim.call("PUBLISH", "resub.x", "pattern-back"), 1)
        sub.expect([message("resub", "back"), pmessage("resub.*", "resub.x", "pattern-back")], "after the restart")
        self.assertEqual(victim.call("PUBLISH", "resub:late", "late-back"), 1)
        late.expect([message("resub:late", "late-back")], "the channel subscribed during the outage")
        for i, s in enumerate(others):
            self.assertEqual(s.call("PUBLISH", "resub", f"others-{i}"), 1)
        sub.expect([message("resub", f"others-{i}") for i in range(2)], "the other shards after the restart")
        sub.assert_quiet("after the restart")
        late.assert_quiet("after the restart")


# -- replicas mode ---------------------------------------------------------------------------------------------------


class UpstreamPubSubReplicas(Fixture):
    @classmethod
    def setUpClass(cls):
        require_clients(cls)
        cls.topo = rt.start(cls, rt.Replicated, 1)
        # Replica first: the roles are discovered (INFO replication), not given by the order.
        eps = [cls.topo.replicas[0].address, cls.topo.primary.address]
        cls.srv = harness.start_target(cls, replicas_config(eps, False))
        cls.connect(["resp", "http"])

    def test_subscriptions_and_publish_on_the_primary(self):
        primary, replica = self.topo.primary, self.topo.replicas[0]
        self.assertTrue(self.proxy.set("rp:ready", "1"))  # turretd knows the primary
        self.assertEqual(primary.call("GET", "rp:ready"), "1")
        sub = self.subscriber()
        sub.subscribe("SUBSCRIBE", "rch")
        self.assertEqual((numsub(primary, "rch"), numsub(replica, "rch")), (1, 0), "subscribed on the primary only")
        before = commandstat(primary, "publish")
        self.assertEqual(self.proxy.publish("rch", b"via-turretd"), 1)
        self.assertEqual(commandstat(primary, "publish") - before, 1, "PUBLISH through turretd goes to the primary")
        sub.expect([message("rch", "via-turretd")], "PUBLISH through turretd")
        self.assertEqual(primary.call("PUBLISH", "rch", "direct"), 1)
        sub.expect([message("rch", "direct")], "PUBLISH on the primary")
        sub.assert_quiet("replicas mode")  # the replica gets the PUBLISH too (replication): not delivered twice
        self.assert_refused_sharded("replicas")


# -- cluster mode ----------------------------------------------------------------------------------------------------


class UpstreamPubSubCluster(Fixture):
    """One cluster (three primaries, three replicas) and one turretd for the class."""

    @classmethod
    def setUpClass(cls):
        require_clients(cls)
        cls.cluster = rt.start(cls, rt.Cluster)
        seed = cls.cluster.replicas_of(cls.cluster.primaries()[0])[0]  # the primaries are discovered
        cls.srv = harness.start_target(cls, cluster_config([seed.address], False))
        cls.connect(["resp", "http"])
        for port, keys in cls.keys_per_primary("ready", 1).items():  # turretd has its slot map: it knows them all
            if cls.proxy.set(keys[0], "1") is not True or cls.cluster.node(port).call("GET", keys[0]) != "1":
                raise AssertionError(f"SET {keys[0]} through turretd did not reach :{port}\n{cls.srv.log_text()}")

    @classmethod
    def keys_per_primary(cls, prefix: str, n: int) -> dict[int, list[str]]:
        """n keys for each primary's slots: {primary port: keys}."""
        out: dict[int, list[str]] = {p.port: [] for p in cls.cluster.primaries()}
        i = 0
        while any(len(v) < n for v in out.values()):
            k = f"{prefix}:{i}"
            owner = cls.cluster.node_for_key(k).port
            if len(out[owner]) < n:
                out[owner].append(k)
            i += 1
        return out

    def test_a_message_published_on_any_node_arrives_once(self):
        c = self.cluster
        sub = self.subscriber()
        sub.subscribe("SUBSCRIBE", "cch")
        sub.subscribe("PSUBSCRIBE", "cpat.*", first=2)
        primaries = c.primaries()
        replicas = [s for s in c.servers if s not in primaries]
        self.assertEqual([numsub(p, "cch") for p in primaries], [1, 1, 1], "subscribed on every primary")
        self.assertEqual([numsub(r, "cch") for r in replicas], [0, 0, 0], "not on replicas")
        for s in c.servers:
            s.call("PUBLISH", "cch", f"from-{s.port}")
            s.call("PUBLISH", "cpat.x", f"p-from-{s.port}")
        sub.expect([message("cch", f"from-{s.port}") for s in c.servers] +
                   [pmessage("cpat.*", "cpat.x", f"p-from-{s.port}") for s in c.servers],
                   "one message per node it was published on")
        sub.assert_quiet("cluster broadcast")
        self.proxy.publish("cch", b"via-turretd")
        sub.expect([message("cch", "via-turretd")], "PUBLISH through turretd")
        sub.assert_quiet("PUBLISH through turretd")
        self.assert_refused_sharded("cluster")

    def test_keyspace_events_of_every_primary_arrive_once(self):
        c = self.cluster
        for s in c.servers:
            self.assertEqual(s.call("CONFIG", "SET", "notify-keyspace-events", "KEA"), "OK")
            self.addCleanup(s.call, "CONFIG", "SET", "notify-keyspace-events", "")
        keyspace, keyevent = self.subscriber(), self.subscriber()
        keyspace.subscribe("PSUBSCRIBE", "__keyspace@0__:*")
        keyevent.subscribe("SUBSCRIBE", "__keyevent@0__:set")
        by_primary = self.keys_per_primary("cks", 2)
        keys = [k for ks in by_primary.values() for k in ks]
        for port, ks in by_primary.items():
            for k in ks:
                self.assertTrue(self.proxy.set(k, "v"))
                self.assertEqual(c.node(port).call("EXISTS", k), 1, f"{k} is not on its slot's primary :{port}")
        keyspace.expect([pmessage("__keyspace@0__:*", f"__keyspace@0__:{k}", "set") for k in keys],
                        "keyspace events of every primary")
        keyevent.expect([message("__keyevent@0__:set", k) for k in keys], "keyevent events of every primary")
        keyspace.assert_quiet("keyspace events")
        keyevent.assert_quiet("keyevent events")


if __name__ == "__main__":
    unittest.main()
