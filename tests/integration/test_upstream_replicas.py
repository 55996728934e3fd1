"""turretd in front of a real Redis primary and two replicas (store kind upstream, mode replicas).

Every test has its own topology (redis_topology.Replicated: a primary and two replicas on free ports, stopped even on
failure) and its own turretd with RESP, HTTP and gRPC listeners; the endpoints are listed replica first, so the roles
come from INFO replication, refreshed every 200 ms. The store pipeline is [retry, hedge{delay: 20ms, max_hedges: 1},
load_balance{p2c}]:
- writes land on the primary and are readable through RESP (redis-py), HTTP (the REST API) and gRPC; reads are
  spread over both replicas (INFO commandstats) and never reach the primary while a replica is usable;
- a replica whose link to the primary is down takes no reads until it is in sync again;
- kill -9 of one replica under continuous read load: at least 99.9% of the reads succeed, each with its own value;
- SIGSTOP of one replica under read load: the reads keep succeeding and their p99 stays bounded;
- kill -9 of the primary: reads keep working, writes fail fast with "no primary"; after REPLICAOF NO ONE on a replica,
  writes go to it after the next role refresh (the time is measured).
Figures go to stderr (ctest -V shows them).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import harness
import redis_topology as rt
from test_http import request
from test_pipelines import kv_stub, listener_ports
from test_upstream_shard import require_clients, upstream_config

try:
    import redis
except ImportError:  # pragma: no cover
    redis = None

REFRESH = 0.2  # refresh_interval, seconds


def replicas_config(endpoints: list[str], grpc: bool) -> str:
    return upstream_config(grpc, ["kind: upstream", "mode: replicas",
                                  "endpoints: [" + ", ".join(endpoints) + "]",
                                  "connect_timeout: 500ms",
                                  f"refresh_interval: {int(REFRESH * 1000)}ms",
                                  "refresh_timeout: 150ms",
                                  "max_lag: 1mb",
                                  "pipeline:",
                                  "  - {layer: retry, max_attempts: 3}",
                                  "  - {layer: hedge, delay: 20ms, max_hedges: 1}",
                                  "  - {layer: load_balance, policy: p2c}"], threads=2)


def commandstat(server: rt.RedisServer, command: str) -> int:
    stats = server.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def log(msg: str) -> None:
    print(f"[replicas] {msg}", file=sys.stderr, flush=True)


class ReadLoad:
    """`threads` redis-py connections to turretd, each reading its keys (GET) in a loop and checking every value:
    a missing or extra reply would show as a wrong value or a timeout. Records (time, ok, latency) per read."""

    def __init__(self, port: int, keys: dict[bytes, bytes], threads: int = 4) -> None:
        self.port, self.keys = port, list(keys.items())
        self.stop_flag = threading.Event()
        self.samples: list[list[tuple[float, bool, float]]] = [[] for _ in range(threads)]
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        c = redis.Redis(port=self.port, socket_timeout=5)
        n = i
        try:
            while not self.stop_flag.is_set():
                k, v = self.keys[n % len(self.keys)]
                n += 7
                t0 = time.monotonic()
                try:
                    got = c.get(k)
                    ok = got == v
                    if not ok:
                        self.errors.append(f"GET {k!r}: {got!r}, expected {v!r}")
                except redis.exceptions.RedisError as e:
                    ok = False
                    self.errors.append(f"GET {k!r}: {type(e).__name__}: {e}")
                self.samples[i].append((t0, ok, time.monotonic() - t0))
        finally:
            c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(10)

    def between(self, t0: float, t1: float = float("inf")) -> list[tuple[float, bool, float]]:
        return [s for per in self.samples for s in per if t0 <= s[0] < t1]


def success(samples) -> float:
    return sum(1 for s in samples if s[1]) / max(1, len(samples))


def p99(samples) -> float:
    lat = sorted(s[2] for s in samples)
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0


class UpstreamReplicas(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.grpc = require_clients(cls)

    def setUp(self):
        self.topo = rt.start(self, rt.Replicated, 2)
        # Replica first: roles are discovered, not given by the order.
        eps = [self.topo.replicas[0].address, self.topo.primary.address, self.topo.replicas[1].address]
        self.srv = harness.start_target(self, replicas_config(eps, self.grpc))
        names = ["resp", "http"] + (["grpc"] if self.grpc else [])
        self.ports = listener_ports(self.srv, names)
        self.proxy = redis.Redis(port=self.ports["resp"], socket_timeout=5)
        self.addCleanup(self.proxy.close)

    def wait_roles(self, what: str, probe, timeout: float = 5.0):
        try:
            return rt.wait_until(what, probe, timeout)
        except rt.TopologyTimeout as e:
            raise AssertionError(f"{e}\nturretd log:\n{self.srv.log_text(4000)}") from None

    def preload(self, n: int) -> dict[bytes, bytes]:
        keys = {f"key:{i}".encode(): f"value-{i}".encode() for i in range(n)}
        self.assertTrue(self.proxy.mset(keys))
        self.topo.wait_replicated(f"key:{n - 1}")
        return keys

    def test_writes_on_primary_reads_everywhere_resp_http_grpc(self):
        primary, replicas = self.topo.primary, self.topo.replicas
        self.assertTrue(self.proxy.set(b"r1", b"from-resp"))
        self.assertEqual(primary.client().get("r1"), "from-resp")
        r = request(self.ports["http"], "PUT", "/v1/kv/h1", b"from-http")
        self.assertIn(r.status, (200, 201), r.body)
        self.assertEqual(primary.client().get("h1"), "from-http")
        if self.grpc:
            pb, kv = kv_stub(self, self.ports["grpc"])
            kv.Set(pb["kv"].SetRequest(key=b"g1", value=b"from-grpc"), timeout=5)
            self.assertEqual(primary.client().get("g1"), "from-grpc")
        self.topo.wait_replicated("g1" if self.grpc else "h1")
        # Each front end reads every key (from the replicas).
        for k, v in [("r1", b"from-resp"), ("h1", b"from-http")] + ([("g1", b"from-grpc")] if self.grpc else []):
            self.assertEqual(self.proxy.get(k), v)
            r = request(self.ports["http"], "GET", "/v1/kv/" + urllib.parse.quote(k))
            self.assertEqual((r.status, r.body), (200, v))
            if self.grpc:
                self.assertEqual(kv.Get(pb["kv"].GetRequest(key=k.encode()), timeout=5).value, v)
        self.assertEqual(request(self.ports["http"], "GET", "/v1/kv/nope").status, 404)
        # Multi-key commands go as they are (one dataset); replies are redis-server's bytes.
        self.assertEqual(self.proxy.mget(["r1", "nope", "h1"]), [b"from-resp", None, b"from-http"])
        self.assertEqual(self.proxy.delete("r1", "h1", "nope"), 2)
        self.assertEqual(primary.client().exists("r1", "h1"), 0)
        # Replies are redis-server's bytes: the same commands through turretd (keys t:*) and straight to the
        # primary (keys d:*); the reads once both sides replicated.
        writes = [("INCR", "{}n"), ("LPUSH", "{}l", "a", "b"), ("SET", "{}s", "v", "PX", "100000", "GET"),
                  ("HSET", "{}h", "f", "1.5"), ("HINCRBYFLOAT", "{}h", "f", "0.25"), ("INCR", "{}l"),
                  ("NOSUCHCOMMAND", "{}x")]
        reads = [("LRANGE", "{}l", "0", "-1"), ("HGETALL", "{}h"), ("GET", "{}l"), ("GET", "{}nope"),
                 ("MGET", "{}s", "{}n", "{}nope"), ("TTL", "{}nope"), ("GETRANGE", "{}s", "0", "0")]
        with harness.RespConn(self.ports["resp"]) as c:
            for group in (writes, reads):
                for cmd in group:
                    via = c.call(*[a.format("t:") for a in cmd])
                    direct = primary.raw(*[a.format("d:") for a in cmd])
                    self.assertEqual(via, direct.replace(b"d:", b"t:"), cmd)
                if group is writes:
                    self.topo.wait_replicated("t:h")
        # Connection state is refused, as in shard mode; PING, ECHO and SELECT 0 are answered.
        for cmd in (("SSUBSCRIBE", "ch"), ("CLIENT", "SETNAME", "x"), ("SELECT", "1"),
                    ("HELLO", "3", "AUTH", "u", "p")):
            with self.assertRaises(redis.exceptions.ResponseError) as e:
                self.proxy.execute_command(*cmd)
            self.assertIn("not supported in replicas mode", str(e.exception))
        self.assertTrue(self.proxy.execute_command("SELECT", "0"))
        self.assertTrue(self.proxy.ping())
        # Transactions run on the primary (multi-key too: one dataset).
        p = self.proxy.pipeline(transaction=True)
        p.mset({"t1": "a", "t2": "b"}).mget("t1", "t2").incr("t3")
        self.assertEqual(p.execute(), [True, [b"a", b"b"], 1])
        self.assertEqual(primary.client().mget("t1", "t2", "t3"), ["a", "b", "1"])
        for rep in replicas:
            self.assertEqual(rep.role(), "slave")  # a write sent to a replica would have failed with -READONLY
        # WATCH on the primary: a change there aborts EXEC; without one, EXEC runs.
        with harness.RespConn(self.ports["resp"]) as c:
            for change, want in ((True, b"*-1\r\n"), (False, b"*1\r\n:2\r\n")):
                primary.client().set("tw", "1")
                self.assertEqual(c.call("WATCH", "tw"), b"+OK\r\n")
                if change:
                    primary.client().set("tw", "1")  # the same value still counts as a change
                self.assertEqual(c.call("MULTI"), b"+OK\r\n")
                self.assertEqual(c.call("INCR", "tw"), b"+QUEUED\r\n")
                self.assertEqual(c.call("EXEC"), want)

    def test_reads_spread_over_replicas_not_the_primary(self):
        keys = self.preload(50)
        before = [commandstat(s, "get") for s in self.topo.servers]
        with ReadLoad(self.ports["resp"], keys) as load:
            time.sleep(1.0)
        after = [commandstat(s, "get") for s in self.topo.servers]
        primary_gets = after[0] - before[0]
        replica_gets = [after[i] - before[i] for i in (1, 2)]
        reads = load.between(0)
        log(f"{len(reads)} GETs from 4 clients: primary {primary_gets}, replicas {replica_gets}")
        self.assertEqual(load.errors, [])
        self.assertEqual(primary_gets, 0)
        # (a hedged read counts twice; hedges are a few percent at most)
        self.assertTrue(len(reads) <= sum(replica_gets) <= len(reads) * 1.05, (len(reads), replica_gets))
        # p2c on peak EWMA is not an even split (a latency spike of one replica keeps most reads away from it for
        # a while), but both replicas serve.
        self.assertTrue(all(g >= len(reads) // 100 for g in replica_gets), replica_gets)
        # KEYS and DBSIZE are reads too (one dataset), SCAN goes to the primary (its cursor is one server's).
        self.assertEqual(self.proxy.dbsize(), 50)
        self.assertEqual(len(self.proxy.keys("key:*")), 50)
        self.assertEqual(commandstat(self.topo.primary, "dbsize"), 0)
        self.proxy.scan(0)
        self.assertEqual(commandstat(self.topo.primary, "scan"), 1)

    def test_replica_with_link_down_is_out_until_in_sync_again(self):
        keys = self.preload(20)
        out, other = self.topo.replicas
        out.call("REPLICAOF", rt.HOST, str(harness.free_port()))  # a primary that does not exist: link down

        def gets(server) -> int:
            return commandstat(server, "get")

        def only_other():
            before = (gets(out), gets(other))
            for k, v in keys.items():
                self.assertEqual(self.proxy.get(k), v)
            return (gets(out) == before[0], f"GET calls on the replica whose link is down: {gets(out) - before[0]}")
        self.wait_roles("the replica whose link is down out of the reads", only_other)
        # Back in sync with the primary: it takes reads again.
        out.call("REPLICAOF", rt.HOST, str(self.topo.primary.port))
        self.topo.wait_synced()

        def both_serve():
            before = gets(out)
            with ReadLoad(self.ports["resp"], keys) as load:
                time.sleep(0.3)
            self.assertEqual(load.errors, [])
            return gets(out) > before, f"{len(load.between(0))} reads, none on the replica back in sync"
        self.wait_roles("the replica back in sync serves reads", both_serve)

    def test_kill9_replica_under_read_load(self):
        keys = self.preload(200)
        victim = self.topo.replicas[0]
        with ReadLoad(self.ports["resp"], keys) as load:
            time.sleep(0.5)
            t_kill = time.monotonic()
            victim.kill9()
            time.sleep(2.5)
        total = load.between(0)
        after = load.between(t_kill)
        rate = success(total)
        log(f"kill -9 of a replica: {len(total)} reads, {rate * 100:.3f}% ok ({len(after)} after the kill, "
            f"{success(after) * 100:.3f}% ok); p99 after {p99(after) * 1000:.1f} ms")
        self.assertGreater(len(after), 200)
        self.assertGreaterEqual(rate, 0.999, load.errors[:10])
        self.assertGreaterEqual(success(load.between(t_kill + 0.5)), 1.0, load.errors[:10])
        # The other replica took all the reads.
        survivor = self.topo.replicas[1]
        before = commandstat(survivor, "get")
        for k in list(keys)[:20]:
            self.assertEqual(self.proxy.get(k), keys[k])
        self.assertEqual(commandstat(survivor, "get") - before, 20)

    def test_sigstop_replica_keeps_reads_fast(self):
        keys = self.preload(200)
        victim = self.topo.replicas[0]
        with ReadLoad(self.ports["resp"], keys) as load:
            time.sleep(0.5)
            baseline = load.between(0)
            t_stop = time.monotonic()
            victim.sigstop()
            try:
                time.sleep(2.5)
            finally:
                victim.sigcont()
            t_cont = time.monotonic()
            time.sleep(0.3)
        stopped = load.between(t_stop, t_cont)
        log(f"SIGSTOP of a replica: {len(stopped)} reads while stopped, {success(stopped) * 100:.3f}% ok, "
            f"p99 {p99(stopped) * 1000:.1f} ms (before: p99 {p99(baseline) * 1000:.1f} ms), "
            f"max {max(s[2] for s in stopped) * 1000:.1f} ms")
        self.assertGreater(len(stopped), 200)
        self.assertGreaterEqual(success(stopped), 0.999, load.errors[:10])
        self.assertLess(p99(stopped), 0.2)
        # No read waited for the replica to resume: its one hedge went to the other replica (load_balance sends a
        # hedge where the read has not been, even while p2c still rates the stopped replica best), and the refresh
        # took the stopped one out.
        self.assertLess(max(s[2] for s in stopped), 1.0)
        self.assertEqual(load.errors, [])

    def test_kill9_primary_then_promotion(self):
        keys = self.preload(50)
        old = self.topo.primary
        new = self.topo.replicas[1]
        old.kill9()
        # Reads keep working (from the replicas, stale rather than none); writes fail fast.
        for k in list(keys)[:20]:
            self.assertEqual(self.proxy.get(k), keys[k])
        t0 = time.monotonic()
        deadline = t0 + 3
        err = ""
        while time.monotonic() < deadline:
            try:
                self.proxy.set(b"w", b"1")
            except redis.exceptions.ResponseError as e:
                err = str(e)
                if "no primary" in err:
                    break
            time.sleep(0.05)
        self.assertIn("unavailable: no primary", err)
        t1 = time.monotonic()
        with self.assertRaises(redis.exceptions.ResponseError):
            self.proxy.set(b"w", b"1")
        self.assertLess(time.monotonic() - t1, 0.2, "a write without a primary did not fail fast")
        r = request(self.ports["http"], "PUT", "/v1/kv/w", b"1")
        self.assertEqual(r.status, 503, r.body)
        # Promote a replica by hand: writes go to it after the next refresh.
        self.topo.promote(new)
        t_promoted = time.monotonic()

        def writable():
            try:
                return self.proxy.set(b"after", b"promotion") is True, "ok"
            except redis.exceptions.ResponseError as e:
                return False, str(e)
        self.wait_roles("writes through turretd after the promotion", writable, 5.0)
        failover = time.monotonic() - t_promoted
        log(f"kill -9 of the primary, REPLICAOF NO ONE: writes through turretd {failover * 1000:.0f} ms after the "
            f"promotion (refresh_interval {REFRESH * 1000:.0f} ms)")
        self.assertLess(failover, 3 * REFRESH + 0.5)
        self.assertEqual(new.client().get("after"), "promotion")
        for k in list(keys)[:10]:
            self.assertEqual(self.proxy.get(k), keys[k])


class UpstreamReplicasConfig(unittest.TestCase):
    """--check-config validates the mode; unknown keys and unsuitable balancers name file, line and key."""

    def setUp(self):
        harness.require_turretd(self)
        self.tmp = tempfile.mkdtemp()

    def check(self, store: str, code: int = 1) -> str:
        path = os.path.join(self.tmp, "turret.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - {name: resp, protocol: resp, address: 127.0.0.1:0}\nstore:\n" + store)
        r = subprocess.run([harness.TURRETD, "--check-config", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, code, r.stdout + r.stderr)
        return r.stdout + r.stderr

    def test_deploy_example_is_valid(self):
        example = harness.SOURCE_DIR / "deploy" / "replicas.yaml"
        r = subprocess.run([harness.TURRETD, "--check-config", str(example)], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_errors_name_file_line_and_key(self):
        base = "  kind: upstream\n  mode: replicas\n  endpoints: [127.0.0.1:7001, 127.0.0.1:7002]\n"
        self.check(base + "  refresh_interval: 1s\n  max_lag: 64kb\n", 0)
        out = self.check(base + "  refresh_intervall: 1s\n")
        self.assertIn("turret.yaml:7:3: store.refresh_intervall: unknown key", out)
        out = self.check(base + "  refresh_interval: 0s\n")
        self.assertIn("store.refresh_interval: must be greater than 0", out)
        out = self.check(base + "  max_lag: lots\n")
        self.assertIn("store.max_lag", out)
        out = self.check(base + "  pipeline: [{layer: load_balance, policy: ring_hash}]\n")
        self.assertIn("store.pipeline[0].policy: replicas mode balances reads by p2c or round_robin", out)
        out = self.check(base + "  pipeline: [{layer: hedge, delay: 10ms, max_hedge: 1}]\n")
        self.assertIn("store.pipeline[0].max_hedge: unknown key", out)
        # Keys of replicas mode are errors in shard mode.
        out = self.check("  kind: upstream\n  endpoints: [127.0.0.1:7001]\n  max_lag: 1mb\n")
        self.assertIn("store.max_lag: unknown key", out)


if __name__ == "__main__":
    unittest.main()
