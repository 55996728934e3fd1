"""turretd in front of a real Redis Cluster (store kind upstream, mode cluster).

The clusters are rt.Cluster: three primaries and three replicas made by `redis-cli --cluster create` on free ports,
cluster-node-timeout 1000 ms, stopped even on failure. turretd has RESP, HTTP and gRPC listeners, one seed endpoint
(the rest of the cluster is discovered with CLUSTER SLOTS) and refreshes its slot map every 500 ms:
- every key lands on the primary of its hash slot (read there directly), from RESP (redis-py), HTTP and gRPC, and the
  keys spread over the three primaries; hash tags keep keys together;
- MGET, MSET, DEL and EXISTS across slots are split per slot and merged in order; other multi-slot commands get the
  CROSSSLOT error a cluster node sends, byte for byte; replies are a cluster node's bytes (differential);
- MULTI/EXEC with keys of one slot run on its node (replies byte for byte a node's, queue-time errors, DISCARD,
  CROSSSLOT at EXEC), and concurrent transactions of many clients never interleave on the shared connections;
- a slot migrated to another primary (CLUSTER SETSLOT, MIGRATE) keeps its keys readable and writable through
  turretd: during the migration by ASK (with ASKING), after it by MOVED, and the client never sees either;
- CLUSTER FAILOVER under read and write load: every request succeeds; the time until writes reach the new primary
  through turretd is measured;
- kill -9 of a primary under load (cluster-require-full-coverage no): the other slots never fail; the dead primary's slots fail fast (no request hangs)
  and work again once the cluster promoted its replica (the promotion and the recovery through turretd are measured);
- read_from: replicas sends GETs to the replicas (READONLY connections) and writes to the primaries.
Figures go to stderr (ctest -V shows them).
"""
from __future__ import annotations

import sys
import threading
import time
import unittest
import urllib.parse

import harness
import redis_topology as rt
from test_http import request
from test_pipelines import kv_stub, listener_ports
from test_upstream_replicas import ReadLoad, success
from test_upstream_shard import require_clients, upstream_config

try:
    import redis
except ImportError:  # pragma: no cover
    redis = None


def cluster_config(seeds: list[str], grpc: bool, read_from: str = "primary") -> str:
    return upstream_config(grpc, ["kind: upstream", "mode: cluster",
                                  "endpoints: [" + ", ".join(seeds) + "]",
                                  "connect_timeout: 500ms",
                                  "refresh_interval: 500ms",
                                  "refresh_timeout: 200ms",
                                  f"read_from: {read_from}",
                                  "pipeline:",
                                  "  - {layer: retry, max_attempts: 3, retry_on: [unavailable, TRYAGAIN]}"],
                           threads=2)


def log(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)


def commandstat(server: rt.RedisServer, command: str) -> int:
    stats = server.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


class Load(ReadLoad):
    """`threads` redis-py connections to turretd, each writing (SET) then reading back (GET) its own keys in a loop
    and checking every value. Records (time, ok, latency, key) per command (ReadLoad's start, stop and errors)."""

    def __init__(self, port: int, keys: list[str], threads: int = 4) -> None:
        super().__init__(port, {k: b"" for k in keys}, threads)
        self.n = threads

    def _run(self, i: int) -> None:
        c = redis.Redis(port=self.port, socket_timeout=5)
        mine = [k for k, _ in self.keys[i::self.n]]
        k = 0
        try:
            while not self.stop_flag.is_set():
                key = mine[k % len(mine)]
                value = f"{key}-{k}".encode()
                k += 1
                for op in ("set", "get"):
                    t0 = time.monotonic()
                    try:
                        if op == "set":
                            ok = c.set(key, value) is True
                        else:
                            got = c.get(key)
                            ok = got == value
                            if not ok:
                                self.errors.append(f"GET {key}: {got!r}, expected {value!r}")
                    except redis.exceptions.RedisError as e:
                        ok = False
                        self.errors.append(f"{op.upper()} {key}: {type(e).__name__}: {e}")
                    self.samples[i].append((t0, ok, time.monotonic() - t0, key))
                    if not ok:
                        time.sleep(0.01)
                        break
        finally:
            c.close()

    def between(self, t0: float, t1: float = float("inf"), keys=None) -> list:
        return [s for s in super().between(t0, t1) if keys is None or s[3] in keys]


def start_turretd(owner, cluster: rt.Cluster) -> None:
    """A turretd over `cluster` for `owner` (a test, or a test class: stopped by its (class) cleanup), seeded with
    one replica only: the primaries and the rest are discovered. Sets owner.srv, .ports, .proxy."""
    seed = cluster.replicas_of(cluster.primaries()[0])[0]
    owner.srv = harness.start_target(owner, cluster_config([seed.address], owner.grpc, owner.read_from))
    names = ["resp", "http"] + (["grpc"] if owner.grpc else [])
    owner.ports = listener_ports(owner.srv, names)
    owner.proxy = redis.Redis(port=owner.ports["resp"], socket_timeout=5)
    if isinstance(owner, type):
        owner.addClassCleanup(owner.proxy.close)
    else:
        owner.addCleanup(owner.proxy.close)


class ClusterFixture(unittest.TestCase):
    read_from = "primary"
    grpc = False

    def wait(self, what: str, probe, timeout: float = 10.0):
        try:
            return rt.wait_until(what, probe, timeout)
        except rt.TopologyTimeout as e:
            raise AssertionError(f"{e}\nturretd log:\n{self.srv.log_text(4000)}") from None


class UpstreamCluster(ClusterFixture):
    """One cluster and one turretd for the class; the migration tests move slots (routing follows)."""

    @classmethod
    def setUpClass(cls):
        cls.grpc = require_clients(cls)
        cls.cluster = rt.start(cls, rt.Cluster)
        start_turretd(cls, cls.cluster)

    def test_keys_land_on_their_slots_primary_from_resp_http_grpc(self):
        c = self.cluster
        keys = [f"user:{i}" for i in range(60)]
        for k in keys:
            self.assertTrue(self.proxy.set(k, k.upper()))
        r = request(self.ports["http"], "PUT", "/v1/kv/http:1", b"from-http")
        self.assertIn(r.status, (200, 201), r.body)
        keys_values = {k: k.upper() for k in keys} | {"http:1": "from-http"}
        if self.grpc:
            pb, kv = kv_stub(self, self.ports["grpc"])
            kv.Set(pb["kv"].SetRequest(key=b"grpc:1", value=b"from-grpc"), timeout=5)
            keys_values["grpc:1"] = "from-grpc"
        used = set()
        for k, v in keys_values.items():
            owner = c.node_for_key(k)
            used.add(owner.port)
            self.assertEqual(owner.client().get(k), v, k)  # on its slot's primary
            self.assertEqual(self.proxy.get(k), v.encode())
            r = request(self.ports["http"], "GET", "/v1/kv/" + urllib.parse.quote(k))
            self.assertEqual((r.status, r.body), (200, v.encode()))
            if self.grpc:
                self.assertEqual(kv.Get(pb["kv"].GetRequest(key=k.encode()), timeout=5).value, v.encode())
        self.assertEqual(used, {p.port for p in c.primaries()})  # spread over every primary
        self.assertEqual(request(self.ports["http"], "GET", "/v1/kv/nope").status, 404)

    def test_multi_key_commands_split_per_slot_and_crossslot(self):
        pairs = {f"m:{i}": f"v{i}" for i in range(12)}
        self.assertGreater(len({rt.slot_of(k) for k in pairs}), 3)
        self.assertTrue(self.proxy.mset(pairs))
        for k, v in pairs.items():
            self.assertEqual(self.cluster.node_for_key(k).client().get(k), v)
        names = list(pairs) + ["m:none"]
        self.assertEqual(self.proxy.mget(names), [v.encode() for v in pairs.values()] + [None])
        self.assertEqual(self.proxy.exists(*names), 12)
        self.assertEqual(self.proxy.delete(*names[:6], "m:none"), 6)
        self.assertEqual(self.proxy.exists(*names), 6)
        # Hash tags keep keys in one slot: multi-key commands work as on a node.
        self.assertTrue(self.proxy.set("{t}a", "1"))
        self.assertTrue(self.proxy.rename("{t}a", "{t}b"))
        self.assertEqual(self.proxy.get("{t}b"), b"1")
        # Not splittable across slots: the node's CROSSSLOT error, byte for byte.
        a, b = "cross:a", "cross:b"
        self.assertNotEqual(rt.slot_of(a), rt.slot_of(b))
        with harness.RespConn(self.ports["resp"]) as conn:
            for cmd in (("RENAME", a, b), ("SINTER", a, b), ("BLMOVE", a, b, "LEFT", "LEFT", "0")):
                node = self.cluster.node_for_key(a)
                self.assertEqual(conn.call(*cmd), node.raw(*cmd), cmd)
        # The commands no mode proxies, and those that concern every node, are refused.
        for cmd in (("SSUBSCRIBE", "ch"), ("KEYS", "*"), ("DBSIZE",), ("CLUSTER", "SLOTS"),
                    ("SELECT", "1")):
            with self.assertRaises(redis.exceptions.ResponseError) as e:
                self.proxy.execute_command(*cmd)
            self.assertIn("not supported in cluster mode", str(e.exception))
        self.assertTrue(self.proxy.ping())

    def test_replies_are_a_cluster_nodes_bytes(self):
        # The same commands through turretd (keys {tag}t...) and straight to the slot's primary ({tag}d...: the same
        # slot, so the same node).
        cmds = [("INCR", "{%s}n"), ("LPUSH", "{%s}l", "a", "b"), ("SET", "{%s}s", "v", "PX", "100000", "GET"),
                ("HSET", "{%s}h", "f", "1.5"), ("HINCRBYFLOAT", "{%s}h", "f", "0.25"), ("INCR", "{%s}l"),
                ("LRANGE", "{%s}l", "0", "-1"), ("GET", "{%s}nope"), ("MGET", "{%s}s", "{%s}n", "{%s}nope"),
                ("TTL", "{%s}nope"), ("SET", "{%s}x"), ("NOSUCHCOMMAND", "{%s}x"), ("GETRANGE", "{%s}s", "0", "0")]
        with harness.RespConn(self.ports["resp"]) as conn:
            for tag in ("alpha", "beta", "gamma"):
                node = self.cluster.node_for_key("{%s}" % tag)
                for cmd in cmds:
                    via = conn.call(*[a.replace("%s", tag).replace("}", "}t", 1) if "%s" in a else a for a in cmd])
                    direct = node.raw(*[a.replace("%s", tag).replace("}", "}d", 1) if "%s" in a else a for a in cmd])
                    self.assertEqual(via, direct.replace(b"}d", b"}t"), (tag, cmd))

    def test_transactions_run_on_the_node_of_their_slot(self):
        # A transaction's replies are a node's, byte for byte: the same sequence through turretd ({tx}t...) and
        # straight to the slot's primary ({tx}d...: the same slot).
        seq = [("MULTI",), ("SET", "{tx}%a", "1"), ("INCR", "{tx}%a"), ("LPUSH", "{tx}%a", "x"), ("GET", "{tx}%a"),
               ("PING",), ("EXEC",),
               ("MULTI",), ("GET", "{tx}%a"), ("DISCARD",), ("EXEC",), ("DISCARD",),
               ("MULTI",), ("SET", "{tx}%b"), ("NOSUCH", "x"), ("CLIENT", "NOSUCH"), ("MULTI",), ("EXEC",),
               ("MULTI",), ("EXEC",)]
        node = self.cluster.node_for_key("{tx}")
        with harness.RespConn(self.ports["resp"]) as via, harness.RespConn(node.port) as direct:
            for cmd in seq:
                got = via.call(*[a.replace("%", "t") for a in cmd])
                want = direct.call(*[a.replace("%", "d") for a in cmd])
                self.assertEqual(got, want.replace(b"}d", b"}t"), cmd)
            self.assertEqual(node.client().get("{tx}ta"), "2")
            # Keys of several slots: CROSSSLOT at EXEC, as a node answers, and nothing ran.
            self.assertEqual(via.call("MULTI"), b"+OK\r\n")
            self.assertEqual(via.call("SET", "cross:a", "1"), b"+QUEUED\r\n")
            self.assertEqual(via.call("SET", "cross:b", "1"), b"+QUEUED\r\n")
            self.assertEqual(via.call("EXEC"), b"-CROSSSLOT Keys in request don't hash to the same slot\r\n")
            self.assertEqual(via.call("EXISTS", "cross:a", "cross:b"), b":0\r\n")
            self.assertEqual(via.call("EXEC"), b"-ERR EXEC without MULTI\r\n")
            # WATCH on the slot's primary (a connection of its own): a change there aborts EXEC; keys of several
            # slots are CROSSSLOT, as a node answers; inside MULTI, Redis's own error.
            self.assertEqual(via.call("WATCH", "{tx}ta"), b"+OK\r\n")
            node.client().set("{tx}ta", "changed")
            self.assertEqual(via.call("MULTI"), b"+OK\r\n")
            self.assertEqual(via.call("SET", "{tx}ta", "mine"), b"+QUEUED\r\n")
            self.assertEqual(via.call("EXEC"), b"*-1\r\n")
            self.assertEqual(node.client().get("{tx}ta"), "changed")
            self.assertEqual(via.call("WATCH", "{tx}ta"), b"+OK\r\n")
            self.assertEqual(via.call("MULTI"), b"+OK\r\n")
            self.assertEqual(via.call("SET", "{tx}ta", "mine"), b"+QUEUED\r\n")
            self.assertEqual(via.call("EXEC"), b"*1\r\n+OK\r\n")
            self.assertEqual(node.client().get("{tx}ta"), "mine")
            self.assertEqual(via.call("WATCH", "cross:a", "cross:b"),
                             b"-CROSSSLOT Keys in request don't hash to the same slot\r\n")
            self.assertEqual(via.call("MULTI"), b"+OK\r\n")
            self.assertEqual(via.call("WATCH", "{tx}ta"), b"-ERR WATCH inside MULTI is not allowed\r\n")
            self.assertEqual(via.call("SUBSCRIBE", "ch"), b"-ERR SUBSCRIBE inside MULTI is not supported in cluster mode\r\n")
            self.assertEqual(via.call("EXEC"),
                             b"-EXECABORT Transaction discarded because of previous errors.\r\n")
        # Transactions of many clients at once on the shared upstream connections: none interleaves with another.
        errors = []

        def client(i: int) -> None:
            c = redis.Redis(port=self.ports["resp"], socket_timeout=5)
            try:
                for n in range(50):
                    p = c.pipeline(transaction=True)
                    p.incr(f"{{ctr}}:{i}").incr("{ctr}:all").get(f"{{ctr}}:{i}")
                    r = p.execute()
                    if r[0] != n + 1 or int(r[2]) != n + 1:
                        errors.append((i, n, r))
            except redis.exceptions.RedisError as e:
                errors.append((i, repr(e)))
            finally:
                c.close()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(self.proxy.get("{ctr}:all"), b"400")

    def test_slot_migration_ask_then_moved(self):
        c = self.cluster
        keys = [f"{{mig}}:{i}" for i in range(20)]
        slot = rt.slot_of(keys[0])
        for k in keys:
            self.assertTrue(self.proxy.set(k, "before"))
        source = c.node_for_slot(slot)
        target = next(p for p in c.primaries() if p is not source)
        mig = c.start_slot_migration(slot, target)
        moved = mig.move_keys(keys=keys[:10])
        self.assertEqual(len(moved), 10)
        asks_before = commandstat(target, "asking")
        # Keys already on the target: the source answers -ASK; turretd sends ASKING + the command to the target.
        for k in keys:
            self.assertEqual(self.proxy.get(k), b"before", k)
        # A new key of the slot goes to the target too (the source does not have it: -ASK).
        self.assertTrue(self.proxy.set("{mig}:new", "x"))
        with harness.RespConn(target.port) as direct:  # the target serves the importing slot only after ASKING
            self.assertEqual(direct.call("ASKING"), b"+OK\r\n")
            self.assertEqual(direct.call("GET", "{mig}:new"), b"$1\r\nx\r\n")
        self.assertGreaterEqual(commandstat(target, "asking") - asks_before, 11)
        mig.finish()
        # The slot is the target's: the source answers -MOVED until the map is refreshed; turretd follows it.
        t0 = time.monotonic()
        for k in keys:
            self.assertTrue(self.proxy.set(k, "after"))
            self.assertEqual(target.client().get(k), "after")
        self.assertEqual(self.proxy.get("{mig}:new"), b"x")
        gets_on_source = commandstat(source, "get")
        time.sleep(0.2)
        for k in keys:
            self.assertEqual(self.proxy.get(k), b"after")
        # After the MOVED the map points at the target: no GET goes to the source any more.
        self.assertEqual(commandstat(source, "get"), gets_on_source)
        log(f"slot {slot} migrated from :{source.port} to :{target.port}: reads and writes followed "
            f"({time.monotonic() - t0:.3f} s for 40 commands after the move)")


class UpstreamClusterFailover(ClusterFixture):
    """A cluster and a turretd per test: they fail over."""

    @classmethod
    def setUpClass(cls):
        cls.grpc = False
        require_clients(cls)

    def setUp(self):
        # cluster-require-full-coverage no: while a primary is dead, the nodes keep serving the other slots (with the
        # default, every node answers -CLUSTERDOWN until the failover, and turretd passes that on).
        self.cluster = rt.start(self, rt.Cluster, extra=["--cluster-require-full-coverage", "no"])
        start_turretd(self, self.cluster)

    def keys_of(self, primary: rt.RedisServer, n: int) -> list[str]:
        out, i = [], 0
        while len(out) < n:
            k = f"fo:{i}"
            if self.cluster.node_for_key(k) is primary:
                out.append(k)
            i += 1
        return out

    def test_cluster_failover_under_load(self):
        c = self.cluster
        old = c.primaries()[1]
        new = c.replicas_of(old)[0]
        moving = self.keys_of(old, 30)
        others = [k for k in (f"other:{i}" for i in range(200)) if c.node_for_key(k) is not old][:30]
        with Load(self.ports["resp"], moving + others) as load:
            time.sleep(0.5)
            t0 = time.monotonic()
            took = c.failover(new)
            promoted = c.last_failover.promoted_s

            def on_new_primary():
                before = commandstat(new, "set")
                self.assertTrue(self.proxy.set(moving[0], "probe"))
                return commandstat(new, "set") > before, "writes still go elsewhere"
            self.wait("writes reach the new primary through turretd", on_new_primary)
            reached = time.monotonic() - t0
            time.sleep(0.5)
        total = load.between(0)
        log(f"CLUSTER FAILOVER: promoted in {promoted:.3f} s, converged in {took:.3f} s; writes through turretd "
            f"on the new primary {reached:.3f} s after the command; {len(total)} commands, "
            f"{success(total) * 100:.3f}% ok")
        self.assertGreater(len(total), 200)
        self.assertEqual(load.errors, [])  # a manual failover loses nothing: MOVED is followed
        self.assertLess(reached, took + 1.0)

    def test_kill9_primary_fails_fast_then_recovers(self):
        c = self.cluster
        victim = c.primaries()[0]
        dead = set(self.keys_of(victim, 30))
        others = [k for k in (f"other:{i}" for i in range(200)) if c.node_for_key(k) is not victim][:30]
        with Load(self.ports["resp"], sorted(dead) + others) as load:
            time.sleep(0.5)
            t_kill = time.monotonic()
            took = c.kill_primary_and_wait_promotion(victim)
            promoted = c.last_failover.promoted_s

            def dead_slots_work():
                return self.proxy.set(next(iter(dead)), "probe") is True, "the dead primary's slots still fail"
            self.wait("the dead primary's slots work again through turretd", dead_slots_work)
            rt_ok = time.monotonic() - t_kill
            time.sleep(0.5)  # load on the recovered slots
        other = load.between(t_kill, keys=set(others))
        moved = load.between(t_kill, keys=dead)
        failed = [s for s in moved if not s[1]]
        recovered = load.between(t_kill + rt_ok + 0.2, keys=dead)
        slowest_failure = max((s[2] for s in failed), default=0.0)
        log(f"kill -9 of a primary: promoted {promoted:.3f} s, converged {took:.3f} s, its slots through turretd "
            f"again {rt_ok:.3f} s after the kill; other slots {len(other)} commands {success(other) * 100:.3f}% ok; "
            f"its slots {len(failed)} failures, slowest failure {slowest_failure * 1000:.1f} ms, "
            f"after recovery {success(recovered) * 100:.3f}% ok")
        self.assertGreater(len(other), 100)
        self.assertEqual(success(other), 1.0, [e for e in load.errors if e.split()[1].rstrip(":") in others][:10])
        self.assertLess(slowest_failure, 1.0)  # failures are fast: nothing waits out the failover
        self.assertLess(rt_ok, promoted + 1.5)
        self.assertGreater(len(recovered), 20)
        self.assertEqual(success(recovered), 1.0, load.errors[-10:])


class UpstreamClusterReplicaReads(ClusterFixture):
    read_from = "replicas"

    @classmethod
    def setUpClass(cls):
        cls.grpc = False
        require_clients(cls)
        cls.cluster = rt.start(cls, rt.Cluster)
        start_turretd(cls, cls.cluster)

    def test_reads_go_to_replicas_writes_to_primaries(self):
        c = self.cluster
        keys = {f"rr:{i}": f"v{i}" for i in range(30)}
        self.assertTrue(self.proxy.mset(keys))
        primaries = c.primaries()
        replicas = [r for p in primaries for r in c.replicas_of(p)]
        for p in primaries:
            rt.wait_until("replicated", lambda: (all(r.info("replication")["master_repl_offset"] ==
                                                     p.info("replication")["master_repl_offset"]
                                                     for r in c.replicas_of(p)), "lagging"), 5.0)
        # CLUSTER SLOTS lists a replica once its replication offset is not 0 (Redis 7.0), i.e. after the first
        # writes: turretd's next refresh (500 ms here) sends reads there. Wait for a round that reaches no primary.
        def round_on_replicas():
            before = [commandstat(s, "get") for s in primaries + replicas]
            for k, v in keys.items():
                self.assertEqual(self.proxy.get(k), v.encode())
            after = [commandstat(s, "get") for s in primaries + replicas]
            on_primaries = sum(after[i] - before[i] for i in range(len(primaries)))
            on_replicas = sum(after[i] - before[i] for i in range(len(primaries), len(after)))
            return (on_primaries, on_replicas) == (0, len(keys)), (on_primaries, on_replicas)
        t0 = time.monotonic()
        self.wait("a round of GETs served by replicas only", round_on_replicas, 5.0)
        log(f"read_from replicas: {len(keys)} GETs on replicas only, {time.monotonic() - t0:.3f} s after the "
            f"replicas caught up")
        self.assertTrue(self.proxy.set("rr:w", "1"))
        self.assertEqual(c.node_for_key("rr:w").client().get("rr:w"), "1")


if __name__ == "__main__":
    unittest.main()
