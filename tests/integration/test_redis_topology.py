"""Self-tests of redis_topology.py, the real-Redis topologies of the scale-out tests (no turretd involved).

- RedisServer: kill -9 / restart on the same port / SIGSTOP (a client times out) / SIGCONT; stop is idempotent and
  cleanup removes the dir; servers die with the block that started them when it fails, at interpreter exit
  without cleanup, and with a runner killed by SIGKILL.
- Shards: three servers on distinct ports with independent keyspaces.
- Replicated: a write on the primary reaches both replicas (replicas refuse writes); promote, with and without
  re-pointing the others.
- Cluster (3 primaries, 3 replicas, made by redis-cli --cluster create): a key is accepted by its slot's primary and
  answered with MOVED (exact text) by the other primaries and by replicas; slot_of matches CLUSTER KEYSLOT for plain
  and hash-tag keys; CLUSTER FAILOVER and a primary's kill -9 converge within bounds, with the data, and report
  their durations (printed); the killed node restarted rejoins as a replica; a slot migration answers -ASK for
  the keys already moved (and the target serves them after ASKING only), then -MOVED to its new owner.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import time
import unittest

import harness
import redis_topology as rt

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

# bounds on the measured failovers with cluster-node-timeout 1000 ms (a manual failover needs no timeout at all; a
# promotion after kill -9 needs the failure detection (~2 node timeouts) plus the election delay (0.5-1 s))
MANUAL_FAILOVER_MAX_S = 5.0 * rt.SCALE
KILL_PROMOTION_MAX_S = 15.0 * rt.SCALE


def report(text: str) -> None:
    sys.stderr.write(f"\n[redis_topology] {text}\n")


@unittest.skipIf(redis is None, "python3-redis missing")
class OnTopology(unittest.TestCase):
    """Its tests share one topology (default arguments) started for the class: self.topo."""
    topology = None

    @classmethod
    def setUpClass(cls):
        if cls.topology is None:
            raise unittest.SkipTest("base class")
        t0 = time.monotonic()
        cls.topo = rt.start(cls, cls.topology)
        report(f"{cls.topology.__name__} up in {time.monotonic() - t0:.2f}s")


@unittest.skipIf(redis is None, "python3-redis missing")
class Servers(unittest.TestCase):
    def test_kill_restart_pause(self):
        s = rt.start(self, rt.RedisServer, name="solo")
        c = s.client()
        self.addCleanup(c.close)
        self.assertTrue(c.set("k", "v"))
        port, pid = s.port, s.pid

        s.kill9()
        self.assertTrue(rt.pid_gone(pid))
        with self.assertRaises(redis.ConnectionError):
            c.ping()

        s.restart()
        self.assertEqual(s.port, port)
        self.assertNotEqual(s.pid, pid)
        self.assertTrue(c.ping())
        self.assertIsNone(c.get("k"), "no persistence: a restarted server starts empty")
        self.assertIn("--- restart ---", s.log_text())

        s.sigstop()
        slow = s.client(socket_timeout=0.3)
        self.addCleanup(slow.close)
        with self.assertRaises(redis.TimeoutError):
            slow.ping()
        s.sigcont()
        self.assertTrue(s.client().ping())

        s.sigstop()  # stop() must not hang on a stopped server
        t0 = time.monotonic()
        self.assertEqual(s.stop(), 0)
        self.assertLess(time.monotonic() - t0, harness.STOP_TIMEOUT / 2)
        self.assertEqual(s.stop(), 0)  # idempotent
        s.cleanup()
        self.assertFalse(os.path.exists(s.tmpdir))

    def test_stopped_when_block_fails(self):
        with self.assertRaises(ZeroDivisionError):
            with rt.Shards(2) as shards:
                pids = [s.pid for s in shards.servers]
                dirs = [s.tmpdir for s in shards.servers]
                1 / 0
        self.assertTrue(all(rt.pid_gone(p) for p in pids), pids)
        self.assertFalse(any(os.path.exists(d) for d in dirs), dirs)

    def _child(self, body: str) -> subprocess.Popen:
        code = "import sys, time, redis_topology as rt\n" + textwrap.dedent(body)
        p = subprocess.Popen([sys.executable, "-c", code], cwd=harness.HERE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), p.stdout.close()))
        return p

    def test_stopped_at_exit_and_with_a_killed_runner(self):
        # exits without any cleanup: the atexit hook stops the server
        p = self._child("""
            s = rt.RedisServer()
            print(s.pid, flush=True)
        """)
        pid = int(p.stdout.readline())
        self.assertEqual(p.wait(timeout=30), 0)
        rt.wait_until("server gone", lambda: (rt.pid_gone(pid), pid), 10)
        # killed with SIGKILL (no atexit): the servers die with it
        p = self._child("""
            s = rt.Shards(2)
            print(*[x.pid for x in s.servers], flush=True)
            time.sleep(60)
        """)
        pids = [int(x) for x in p.stdout.readline().split()]
        self.assertEqual(len(pids), 2)
        self.assertFalse(any(rt.pid_gone(x) for x in pids))
        p.kill()
        p.wait()
        rt.wait_until("servers gone", lambda: (all(rt.pid_gone(x) for x in pids), pids), 10)


class ShardsTest(OnTopology):
    topology = rt.Shards

    def test_independent(self):
        servers = self.topo.servers
        self.assertEqual(len(servers), 3)
        self.assertEqual(len(set(self.topo.ports)), 3)
        self.assertEqual(self.topo.endpoints, [f"127.0.0.1:{p}" for p in self.topo.ports])
        clients = [s.client() for s in servers]
        for c in clients:
            self.addCleanup(c.close)
        for i, c in enumerate(clients):
            c.set("same", f"v{i}")
            c.set(f"only{i}", "x")
        for i, c in enumerate(clients):
            self.assertEqual(c.get("same"), f"v{i}")
            self.assertEqual(sorted(c.keys()), sorted(["same", f"only{i}"]))
        clients[0].flushall()
        self.assertEqual(clients[0].dbsize(), 0)
        self.assertEqual([c.dbsize() for c in clients[1:]], [2, 2])
        for s in servers:  # no persistence
            self.assertEqual(s.call("CONFIG", "GET", "save"), ["save", ""])
            self.assertEqual(s.call("CONFIG", "GET", "appendonly"), ["appendonly", "no"])


class ReplicatedTest(OnTopology):
    topology = rt.Replicated

    def assert_in_sync(self, rep):
        self.assertEqual(len(rep.replicas), 2)
        info = rep.primary.info("replication")
        self.assertEqual(info["connected_slaves"], 2)
        self.assertEqual(sorted((info[f"slave{i}"]["port"], info[f"slave{i}"]["state"]) for i in range(2)),
                         sorted((r.port, "online") for r in rep.replicas))
        for r in rep.replicas:
            info = r.info("replication")
            self.assertEqual((info["role"], info["master_link_status"], info["master_port"],
                              info["master_sync_in_progress"]), ("slave", "up", rep.primary.port, 0))

    def test_write_reaches_replicas(self):
        rep = self.topo
        self.assert_in_sync(rep)
        p = rep.primary.client()
        self.addCleanup(p.close)
        value = f"v{random.random()}"
        p.set("written", value)
        p.hset("h", mapping={"a": "1", "b": "2"})
        rep.wait_replicated("written")
        rep.wait_replicated("h")
        for r in rep.replicas:
            with r.client() as c:
                self.assertEqual(c.get("written"), value)
                self.assertEqual(c.hgetall("h"), {"a": "1", "b": "2"})
                with self.assertRaisesRegex(redis.ResponseError, "^You can't write against a read only replica"):
                    c.set("written", "no")

    def test_returns_once_in_sync(self):
        # the primary holds the full sync back for 1 s: the constructor must wait for it
        t0 = time.monotonic()
        with rt.Replicated(2, extra=["--repl-diskless-sync-delay", "1"]) as rep:
            self.assert_in_sync(rep)
            self.assertGreater(time.monotonic() - t0, 1.0)

    def test_wait_replicated_times_out(self):
        # a replica that no longer replicates never gets the write: wait_replicated must not pass on it
        with rt.Replicated(1) as rep:
            with rep.primary.client() as c:
                c.set("k", "1")
                rep.wait_replicated("k")
                rep.replicas[0].call("REPLICAOF", "NO", "ONE")
                c.set("k", "2")
            with self.assertRaisesRegex(rt.TopologyTimeout, "replicas not there yet: \\[<replica0"):
                rep.wait_replicated("k", timeout=1.0)

    def test_promote(self):
        with rt.Replicated(2) as rep:
            self.assert_in_sync(rep)  # at once: the constructor returns only then
            old, (a, b) = rep.primary, rep.replicas
            took = rep.promote(a, repoint=True)
            self.assertLess(took, rt.SYNC_TIMEOUT)
            self.assertIs(rep.primary, a)
            self.assertEqual(sorted(rep.replicas, key=id), sorted([old, b], key=id))
            self.assertEqual(a.role(), "master")
            for s in (old, b):
                info = s.info("replication")
                self.assertEqual((info["role"], info["master_port"], info["master_link_status"]),
                                 ("slave", a.port, "up"))
            with a.client() as c:
                self.assertTrue(c.set("after", "promote"))
            rep.wait_replicated("after")
            for s in (old, b):
                with s.client() as c:
                    self.assertEqual(c.get("after"), "promote")
            # without re-pointing: b becomes a second, independent primary
            rep.promote(b)
            self.assertEqual(b.role(), "master")
            self.assertEqual(rep.replicas, [])
            with b.client() as c:
                self.assertTrue(c.set("only_b", "1"))
            with a.client() as c:
                time.sleep(0.2)
                self.assertIsNone(c.get("only_b"))


class ClusterTest(OnTopology):
    topology = rt.Cluster

    def assert_healthy(self):
        for s in self.topo.live():
            info = s.call("CLUSTER", "INFO")
            self.assertIn("cluster_state:ok", info, s)
            self.assertIn(f"cluster_slots_ok:{rt.SLOTS}", info, s)

    def test_topology(self):
        c = self.topo
        self.assert_healthy()
        primaries = c.primaries()
        self.assertEqual(len(primaries), 3)
        self.assertEqual(len(c.live()), 6)
        covered = set()
        for p in primaries:
            self.assertEqual(p.role(), "master")
            replicas = c.replicas_of(p)
            self.assertEqual(len(replicas), 1, p)
            self.assertEqual(replicas[0].info("replication")["master_port"], p.port)
            ranges = [tuple(r[0:2]) for r in p.call("CLUSTER", "SLOTS") if r[2][1] == p.port]
            for a, b in ranges:
                covered |= set(range(a, b + 1))
                self.assertIs(c.node_for_slot(a), p)
                self.assertIs(c.node_for_slot(b), p)
        self.assertEqual(len(covered), rt.SLOTS)

    def test_moved(self):
        c = self.topo
        for i in range(20):
            key = f"moved:{i}"
            slot = c.slot_of(key)
            owner = c.node_for_key(key)
            with owner.client() as cl:
                self.assertTrue(cl.set(key, "v"))
                self.assertEqual(cl.get(key), "v")
            moved = f"MOVED {slot} 127.0.0.1:{owner.port}"
            others = [p for p in c.primaries() if p is not owner] + c.replicas_of(owner)
            self.assertEqual(len(others), 3)
            for other in others:
                with other.client() as cl:  # plain redis-py, no cluster mode
                    with self.assertRaises(redis.ResponseError) as e:
                        cl.get(key) if other in c.replicas_of(owner) else cl.set(key, "elsewhere")
                    self.assertEqual(str(e.exception), moved)
                self.assertEqual(other.raw("SET", key, "x"), f"-{moved}\r\n".encode())
            with c.cluster_client() as cc:
                self.assertEqual(cc.get(key), "v")

    def test_slot_of(self):
        c = self.topo
        known = {"foo": 12182, "123456789": 0x31C3, "": 0}
        for key, slot in known.items():
            self.assertEqual(rt.slot_of(key), slot, key)
        tagged = ["{user1000}.following", "{user1000}.followers", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}",
                  "{}", "{", "}", "}{", "a{b", "x{y}", "{y}x", "{{}}", "\u00e9{\u00e9}", b"\xff{\x00\x01}\xfe"]
        rnd = random.Random(11)
        plain = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40))) for _ in range(150)]
        plain += [f"key:{rnd.randrange(10**9)}" for _ in range(150)]
        for key in tagged + plain:
            self.assertEqual(c.slot_of(key), c.keyslot(key), key)
        self.assertEqual(rt.slot_of("{user1000}.following"), rt.slot_of("user1000"))
        self.assertEqual(rt.slot_of("foo{}{bar}"), rt.slot_of("foo{}{bar}".encode()))
        self.assertNotEqual(rt.slot_of("foo{}{bar}"), rt.slot_of("bar"))  # empty tag: the whole key is hashed
        self.assertEqual(rt.slot_of("foo{{bar}}zap"), rt.slot_of("{bar"))
        self.assertEqual(rt.slot_of("foo{bar}{zap}"), rt.slot_of("bar"))

    def test_slot_migration(self):
        c = self.topo
        slot = c.slot_of("{migrating}")
        keys = [f"{{migrating}}:{i}" for i in range(10)]
        source = c.node_for_slot(slot)
        target = next(p for p in c.primaries() if p is not source)
        with source.client() as cl:
            for k in keys:
                cl.set(k, k.upper())
        m = c.start_slot_migration(slot, target)
        moved = m.move_keys(4)
        self.assertEqual(len(moved), 4)
        stayed = [k for k in keys if k not in moved]
        ask = f"-ASK {slot} 127.0.0.1:{target.port}\r\n".encode()
        self.assertEqual(source.raw("GET", moved[0]), ask)
        self.assertEqual(source.raw("GET", stayed[0]), f"${len(stayed[0])}\r\n{stayed[0].upper()}\r\n".encode())
        self.assertEqual(target.raw("GET", moved[0]), f"-MOVED {slot} 127.0.0.1:{source.port}\r\n".encode())
        with harness.RespConn(target.port) as conn:
            self.assertEqual(conn.call("ASKING"), b"+OK\r\n")
            self.assertEqual(conn.call("GET", moved[0]), f"${len(moved[0])}\r\n{moved[0].upper()}\r\n".encode())
        self.assertIs(c.node_for_slot(slot), source)  # still the owner until finish
        m.finish()
        self.assertIs(c.node_for_slot(slot), target)
        self.assertEqual(source.raw("GET", stayed[0]), f"-MOVED {slot} 127.0.0.1:{target.port}\r\n".encode())
        with target.client() as cl:
            self.assertEqual([cl.get(k) for k in keys], [k.upper() for k in keys])
        self.assertEqual(source.call("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
        self.assert_healthy()
        self.assertEqual(rt.slot_of(rt.key_in_slot(slot, "x")), slot)

    def _keys_on(self, primary, n=5):
        keys = []
        i = 0
        while len(keys) < n:
            k = f"fo:{i}"
            if self.topo.node_for_key(k) is primary:
                keys.append(k)
            i += 1
        return keys

    def _write_replicated(self, primary, keys):
        with primary.client() as cl:
            for k in keys:
                cl.set(k, k.upper())
            self.assertEqual(cl.execute_command("WAIT", 1, 5000), 1)

    def test_failover(self):
        c = self.topo
        old = c.primaries()[1]
        slots = sorted(tuple(r[0:2]) for r in old.call("CLUSTER", "SLOTS") if r[2][1] == old.port)
        replica = c.replicas_of(old)[0]
        keys = self._keys_on(old)
        self._write_replicated(old, keys)

        took = c.failover(replica)
        report(f"CLUSTER FAILOVER: replica master after {c.last_failover.promoted_s:.3f}s, "
               f"all nodes converged after {took:.3f}s")
        self.assertGreater(took, 0)
        self.assertLess(took, MANUAL_FAILOVER_MAX_S)
        self.assertEqual((c.last_failover.kind, c.last_failover.old, c.last_failover.new), ("manual", old, replica))
        self.assertEqual(replica.role(), "master")
        self.assertEqual(old.role(), "slave")
        self.assertEqual(c.replicas_of(replica), [old])
        self.assertEqual(old.info("replication")["master_link_status"], "up")
        for a, b in slots:
            self.assertIs(c.node_for_slot(a), replica)
            self.assertIs(c.node_for_slot(b), replica)
        self.assert_healthy()
        with replica.client() as cl:
            self.assertEqual([cl.get(k) for k in keys], [k.upper() for k in keys])
            self.assertTrue(cl.set(keys[0], "after"))
        with old.client() as cl, self.assertRaisesRegex(redis.ResponseError, f"^MOVED \\d+ 127.0.0.1:{replica.port}$"):
            cl.get(keys[0])

    def test_kill_primary(self):
        c = self.topo
        victim = c.primaries()[2]
        replica = c.replicas_of(victim)[0]
        slot = c.slot_of(self._keys_on(victim, 1)[0])
        keys = self._keys_on(victim)
        self._write_replicated(victim, keys)

        took = c.kill_primary_and_wait_promotion(victim)
        report(f"kill -9 of a primary: replica master after {c.last_failover.promoted_s:.3f}s, "
               f"cluster ok and converged after {took:.3f}s")
        self.assertTrue(rt.pid_gone(victim.pid))
        self.assertEqual((c.last_failover.kind, c.last_failover.old, c.last_failover.new), ("kill", victim, replica))
        self.assertGreater(took, 0.5)  # failure detection takes at least the node timeout
        self.assertLess(took, KILL_PROMOTION_MAX_S)
        self.assertEqual(replica.role(), "master")
        self.assertIs(c.node_for_slot(slot), replica)
        self.assertEqual(len(c.live()), 5)
        self.assert_healthy()
        with replica.client() as cl:
            self.assertEqual([cl.get(k) for k in keys], [k.upper() for k in keys])
            self.assertTrue(cl.set(keys[0], "after"))

        # the killed node comes back on its port with its nodes.conf and rejoins as the new primary's replica
        victim.restart()
        c.wait_converged()
        self.assertEqual(victim.role(), "slave")
        self.assertEqual(c.replicas_of(replica), [victim])
        self.assert_healthy()


if __name__ == "__main__":
    unittest.main()
