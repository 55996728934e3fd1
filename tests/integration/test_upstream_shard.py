"""turretd in front of three real redis-servers in shard mode (store kind upstream, mode shard).

One turretd with RESP, HTTP and gRPC listeners over three redis-servers on free ports; its store pipeline is
[retry, circuit_breaker{consecutive_failures: 5, open_for: 1s}, load_balance{ring_hash}], one instance per server:
- SET/GET/DEL/MGET/MSET through RESP (redis-py), HTTP (the REST API) and gRPC; every key is on exactly one
  redis-server (read directly), the keys spread over all three, and multi-key commands are split and merged in order;
- a command whose keys span servers (RENAME) gets Redis's CROSSSLOT error; SELECT 1 is refused;
- MULTI/EXEC over keys of one server run there; over keys of two servers EXEC answers CROSSSLOT; WATCH works
  (redis-py's optimistic transactions, a conflict aborts EXEC, a lost WATCH connection aborts it too);
- HELLO 3: the servers' RESP3 replies;
- kill -9 of one redis-server: its keys fail fast (unavailable, then "circuit open"), the other servers' keys keep
  working; once it is restarted on the same port its keys work again.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import unittest
import urllib.parse

import harness
import redis_topology as rt
from test_http import request
from test_pipelines import kv_stub, listener_ports, metric

try:
    import redis
except ImportError:  # pragma: no cover
    redis = None


M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * P2) & M64, 31) * P1) & M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64, the reference algorithm (what load_balance_placement.hpp places keys with)."""
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64]
        while i + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], int.from_bytes(data[i + 8 * j:i + 8 * j + 8], "little"))
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for x in v:
            h = ((h ^ _round(0, x)) * P1 + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h = (_rotl(h ^ _round(0, int.from_bytes(data[i:i + 8], "little")), 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h = (_rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * P1 & M64), 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h = (_rotl(h ^ (data[i] * P5 & M64), 11) * P1) & M64
        i += 1
    h = ((h ^ (h >> 33)) * P2) & M64
    h = ((h ^ (h >> 29)) * P3) & M64
    return h ^ (h >> 32)


def ring_owner(names: list[str], key: bytes, vnodes: int = 160) -> int:
    """The endpoint owning `key` under ring_hash (load_balance_placement.hpp): points XXH64("NAME_j"), first >= h."""
    points = sorted((xxh64(f"{n}_{j}".encode()), n, i) for i, n in enumerate(names) for j in range(vnodes))
    h = xxh64(key)
    for p, _, i in points:
        if p >= h:
            return i
    return points[0][2]


def upstream_config(grpc: bool, store: list[str], threads: int = 1) -> str:
    """A turretd config: RESP, HTTP (and gRPC) listeners on 127.0.0.1:0 named after their protocol, then the
    `store:` lines given (indented)."""
    listeners = [("resp", "resp"), ("http", "http")] + ([("grpc", "grpc")] if grpc else [])
    lines = ["server:", f"  threads: {threads}", "  shutdown_grace: 2s", "logging:", "  level: info", "listeners:"]
    for name, protocol in listeners:
        lines += [f"  - name: {name}", f"    protocol: {protocol}", "    address: 127.0.0.1:0"]
    return "\n".join(lines + ["store:"] + [f"  {line}" for line in store]) + "\n"


def require_clients(cls) -> bool:
    """Skips without turretd or redis-py; returns whether gRPC can be tested (python3-grpcio and the stubs)."""
    harness.require_turretd(cls)
    if redis is None:
        raise unittest.SkipTest("python3-redis is not installed")
    try:
        import grpc_support
        grpc_support.stubs()
    except unittest.SkipTest:
        return False
    return True


def shard_config(ports: list[int], grpc: bool, threads: int = 1) -> str:
    return upstream_config(grpc, ["kind: upstream", "mode: shard",
                                  "endpoints: [" + ", ".join(f"127.0.0.1:{p}" for p in ports) + "]",
                                  "connect_timeout: 500ms",
                                  "pipeline:",
                                  "  - {layer: retry, max_attempts: 3}",
                                  "  - {layer: circuit_breaker, consecutive_failures: 5, open_for: 1s}",
                                  "  - {layer: load_balance, policy: ring_hash}"], threads=threads)


class UpstreamShard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.grpc = require_clients(cls)
        cls.redises = [harness.start_redis(cls) for _ in range(3)]
        cls.srv = harness.start_target(cls, shard_config([r.port for r in cls.redises], cls.grpc))
        names = ["resp", "http"] + (["grpc"] if cls.grpc else [])
        cls.ports = listener_ports(cls.srv, names)
        cls.proxy = redis.Redis(port=cls.ports["resp"], socket_timeout=5)
        cls.names = [f"127.0.0.1:{r.port}" for r in cls.redises]
        cls.direct = [redis.Redis(port=r.port, socket_timeout=5) for r in cls.redises]
        cls.addClassCleanup(cls.proxy.close)

    def setUp(self):
        for d in self.direct:
            try:
                d.flushall()
            except redis.exceptions.ConnectionError:
                pass

    def where(self, key: bytes) -> list[int]:
        return [i for i, d in enumerate(self.direct) if d.exists(key)]

    def test_set_get_del_spread_over_every_shard(self):
        keys = [f"user:{i}".encode() for i in range(60)]
        for k in keys:
            self.assertTrue(self.proxy.set(k, b"v-" + k))
        placement = {}
        for k in keys:
            self.assertEqual(self.proxy.get(k), b"v-" + k)
            on = self.where(k)
            self.assertEqual(len(on), 1, f"{k!r} is on {on}")
            self.assertEqual(self.direct[on[0]].get(k), b"v-" + k)
            placement[k] = on[0]
            self.assertEqual(on[0], ring_owner(self.names, k), f"{k!r} is not where ring_hash places it")
        self.assertEqual(set(placement.values()), {0, 1, 2}, "keys do not spread over the three servers")
        # Placement is stable: the same key goes to the same server again.
        for k in keys[:10]:
            self.proxy.set(k, b"again")
            self.assertEqual(self.where(k), [placement[k]])
        self.assertEqual(self.proxy.delete(*keys), len(keys))
        self.assertEqual(sum(d.dbsize() for d in self.direct), 0)

    def test_multi_key_commands_are_split_and_merged_in_order(self):
        mapping = {f"m{i}".encode(): f"val{i}".encode() for i in range(30)}
        self.assertTrue(self.proxy.mset(mapping))
        self.assertEqual({i for k in mapping for i in self.where(k)}, {0, 1, 2})
        keys = list(mapping) + [b"missing"]
        order = keys[::-1]
        self.assertEqual(self.proxy.mget(order), [mapping.get(k) for k in order])
        self.assertEqual(self.proxy.exists(*keys), 30)
        self.assertEqual(self.proxy.touch(*keys), 30)
        self.assertEqual(self.proxy.unlink(*keys[:10]), 10)
        self.assertEqual(self.proxy.delete(*keys), 20)
        self.assertEqual(sum(d.dbsize() for d in self.direct), 0)

    def two_keys_on_different_shards(self) -> tuple[bytes, bytes]:
        seen = {}
        for i in range(100):
            k = f"x{i}".encode()
            self.proxy.set(k, b"1")
            seen.setdefault(self.where(k)[0], k)
            if len(seen) >= 2:
                break
        a, b = list(seen.values())[:2]
        return a, b

    def pipelined_batch(self, rnd, n: int) -> list[tuple]:
        """n commands over 40 keys: the single-server ones turretd starts all at once (SET, GET, INCR, APPEND,
        LPUSH, LRANGE, a WRONGTYPE error...), mixed with ones it answers itself or splits (PING, ECHO, MGET, DEL,
        EXISTS over several servers, an unknown command, a wrong arity): the replies must still come in order."""
        cmds = []
        for i in range(n):
            k = f"p{rnd.randrange(40)}"
            pick = rnd.randrange(14)
            if pick == 0:
                cmds.append(("SET", k, f"v{i}"))
            elif pick == 1:
                cmds.append(("GET", k))
            elif pick == 2:
                cmds.append(("INCR", f"n{rnd.randrange(5)}"))
            elif pick == 3:
                cmds.append(("APPEND", k, "x"))
            elif pick == 4:
                cmds.append(("LPUSH", f"l{rnd.randrange(5)}", str(i)))
            elif pick == 5:
                cmds.append(("LRANGE", f"l{rnd.randrange(5)}", "0", "2"))
            elif pick == 6:
                cmds.append(("INCR", k))  # WRONGTYPE / not an integer, often
            elif pick == 7:
                cmds.append(("MGET", k, f"p{rnd.randrange(40)}", f"p{rnd.randrange(40)}"))
            elif pick == 8:
                cmds.append(("PING",))
            elif pick == 9:
                cmds.append(("ECHO", f"e{i}"))
            elif pick == 10:
                cmds.append(("EXISTS", k, f"p{rnd.randrange(40)}"))
            elif pick == 11:
                cmds.append(("DEL", k))
            elif pick == 12:
                cmds.append(("STRLEN", k))
            else:
                cmds.append(rnd.choice([("NOSUCHCOMMAND", k), ("GET",), ("SET", k)]))
        return cmds

    def test_pipelined_batches_are_answered_in_order_like_redis_server(self):
        # turretd starts a batch's single-server commands together (one upstream pipeline); the replies of the whole
        # batch must still be redis-server's, in request order, byte for byte. Reference: one redis-server fed the
        # same commands.
        # The pipeline of this class's turretd holds retry, which needs each reply before answering: its commands go
        # one after another. A second turretd over the same servers has only the placement layer (as
        # bench/configs/shard.yaml), and 4 threads: its single-server commands are started.
        import random
        ref_server = harness.start_redis(self)
        fast = harness.start_target(self, upstream_config(False, [
            "kind: upstream", "mode: shard",
            "endpoints: [" + ", ".join(f"127.0.0.1:{r.port}" for r in self.redises) + "]",
            "pipeline:", "  - {layer: load_balance, policy: ring_hash}"], threads=4))
        fast_ports = listener_ports(fast, ["resp", "http"])
        fast_port = fast_ports["resp"]
        started = 'turret_commands_started_total{frontend="resp"}'
        rnd = random.Random(11)
        with harness.RespConn(fast_port) as proxy, harness.RespConn(ref_server.port) as ref:
            for size in (1, 16, 300, 2000):
                cmds = self.pipelined_batch(rnd, size)
                data = b"".join(harness.encode_command(*c) for c in cmds)
                proxy.send(data)
                ref.send(data)
                got = proxy.read_replies(len(cmds))
                want = ref.read_replies(len(cmds))
                for i, (g, w) in enumerate(zip(got, want)):
                    self.assertEqual(g, w, f"batch of {size}, command {i}: {cmds[i]}")
                self.assertEqual(proxy.read_available(0.1), b"")
            # Large replies through the slots (1 MiB values, two keys on two servers in one batch).
            a, b = self.two_keys_on_different_shards()
            big = b"x" * (1 << 20)
            cmds = [("SET", a, big), ("SET", b, big + b"y"), ("GET", a), ("GET", b), ("STRLEN", b), ("GET", a)]
            data = b"".join(harness.encode_command(*c) for c in cmds)
            proxy.send(data)
            ref.send(data)
            self.assertEqual(proxy.read_replies(len(cmds)), ref.read_replies(len(cmds)))
            # The single-server commands (about half of them) were started, not sent one after another.
            self.assertGreater(metric(fast_ports["http"], started), 0.3 * (1 + 16 + 300 + 2000))
        # Several clients at once, each on keys of its own: every client's replies in its order.
        errors = []

        def client(c: int) -> None:
            try:
                with harness.RespConn(fast_port) as conn:
                    for round_ in range(20):
                        data = b"".join(harness.encode_command("INCR", f"cnt{c}:{j % 7}") for j in range(70))
                        conn.send(data)
                        replies = conn.read_replies(70)
                        want = [f":{round_ * 10 + j // 7 + 1}\r\n".encode() for j in range(70)]
                        if replies != want:
                            errors.append((c, round_, replies[:5]))
                            return
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((c, repr(e)))

        threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])

    def test_an_http_request_on_the_resp_port_never_reaches_the_servers(self):
        # redis-server closes a connection that sends POST or Host: (a cross-protocol attack): forwarded, it would
        # close a connection that every client shares. turretd closes the sender, as redis-server would.
        for data in [b"POST /x HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"]:
            with harness.RespConn(self.ports["resp"]) as c:
                c.send(data)
                self.assertEqual(c.read_available(0.3), b"")
                self.assertTrue(c.eof)
        for i in range(30):
            self.assertTrue(self.proxy.set(f"h{i}", b"v"))
            self.assertEqual(self.proxy.get(f"h{i}"), b"v")
        for r in self.redises:
            self.assertNotIn("SECURITY ATTACK", r.log_text())

    def test_crossslot_and_refused_commands(self):
        a, b = self.two_keys_on_different_shards()
        with self.assertRaises(redis.exceptions.ResponseError) as e:
            self.proxy.rename(a, b)
        self.assertEqual(str(e.exception), "CROSSSLOT Keys in request don't hash to the same slot")
        with self.assertRaises(redis.exceptions.ResponseError) as e:
            self.proxy.execute_command("SELECT", "1")
        self.assertIn("not supported in shard mode", str(e.exception))
        self.assertTrue(self.proxy.execute_command("SELECT", "0"))
        self.assertTrue(self.proxy.ping())
        self.assertEqual(self.proxy.echo(b"hi"), b"hi")
        # Keyless commands reach an upstream.
        self.assertEqual(len(self.proxy.time()), 2)

    def test_commands_turretd_does_not_implement_are_placed_by_their_keys(self):
        # Lists, hashes, sets, sorted sets: turretd's own store does not implement them, the shards do; every key
        # lands on its ring owner, and reads find it there.
        for i in range(30):
            k = f"coll:{i}".encode()
            self.proxy.lpush(k + b":l", b"a", b"b")
            self.proxy.hset(k + b":h", b"f", b"v")
            self.proxy.zadd(k + b":z", {b"m": 1.5})
            for suffix in (b":l", b":h", b":z"):
                self.assertEqual(self.where(k + suffix), [ring_owner(self.names, k + suffix)], k + suffix)
            self.assertEqual(self.proxy.lrange(k + b":l", 0, -1), [b"b", b"a"])
            self.assertEqual(self.proxy.hget(k + b":h", b"f"), b"v")
            self.assertEqual(self.proxy.zscore(k + b":z", b"m"), 1.5)
        a, b = self.two_keys_on_different_shards()
        with self.assertRaises(redis.exceptions.ResponseError) as e:
            self.proxy.execute_command("LMOVE", a, b, "LEFT", "RIGHT")
        self.assertEqual(str(e.exception), "CROSSSLOT Keys in request don't hash to the same slot")

    def test_transactions_on_one_shard(self):
        a, b = self.two_keys_on_different_shards()
        p = self.proxy.pipeline(transaction=True)
        p.set(a, b"10").incrby(a, 5).get(a)
        self.assertEqual(p.execute(), [True, 15, b"15"])
        self.assertEqual(self.direct[self.where(a)[0]].get(a), b"15")
        # Keys of two servers: CROSSSLOT at EXEC, nothing ran.
        with harness.RespConn(self.ports["resp"]) as c:
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("SET", a, "x"), b"+QUEUED\r\n")
            self.assertEqual(c.call("SET", b, "x"), b"+QUEUED\r\n")
            self.assertEqual(c.call("EXEC"), b"-CROSSSLOT Keys in request don't hash to the same slot\r\n")
            self.assertEqual(c.call("GET", a), b"$2\r\n15\r\n")

    def clients_of(self, shard: int) -> list[str]:
        """The CLIENT LIST lines of a shard (turretd's connections and this test's own)."""
        return self.direct[shard].execute_command("CLIENT", "LIST").decode().splitlines()

    def wait_clients(self, shard: int, n: int, what: str) -> None:
        def probe():
            lines = self.clients_of(shard)
            return len(lines) == n, "\n".join(lines)
        rt.wait_until(what, probe, 2.0 * harness.TIMEOUT_SCALE)

    def test_watch_optimistic_transactions(self):
        # redis-py's transaction(): WATCH, GET, MULTI, SET, EXEC, again on a conflict. 4 clients x 50 increments.
        self.proxy.set("w:cnt", 0)

        def incr(pipe):
            v = int(pipe.get("w:cnt"))
            pipe.multi()
            pipe.set("w:cnt", v + 1)

        errors = []

        def worker():
            c = redis.Redis(port=self.ports["resp"], socket_timeout=5)
            try:
                for _ in range(50):
                    c.transaction(incr, "w:cnt")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(self.proxy.get("w:cnt"), b"200", "an increment was lost: WATCH did not protect it")
        shard = ring_owner(self.names, b"w:cnt")
        a, b = self.two_keys_on_different_shards()
        baseline = len(self.clients_of(shard))
        with harness.RespConn(self.ports["resp"]) as c:
            # A change by another client between WATCH and EXEC aborts EXEC (null), and nothing ran.
            self.assertEqual(c.call("WATCH", "w:cnt"), b"+OK\r\n")
            self.direct[shard].set("w:cnt", 7)
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("INCR", "w:cnt"), b"+QUEUED\r\n")
            self.assertEqual(c.call("EXEC"), b"*-1\r\n")
            self.assertEqual(self.proxy.get("w:cnt"), b"7")
            # No change: it runs; the WATCH connection closes after EXEC.
            self.assertEqual(c.call("WATCH", "w:cnt"), b"+OK\r\n")
            self.assertEqual(len(self.clients_of(shard)), baseline + 1, "WATCH has a connection of its own")
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("INCR", "w:cnt"), b"+QUEUED\r\n")
            self.assertEqual(c.call("EXEC"), b"*1\r\n:8\r\n")
            self.wait_clients(shard, baseline, "the WATCH connection closed after EXEC")
            # DISCARD and UNWATCH forget the WATCH: a later change does not abort the next EXEC.
            for forget in (("MULTI", "DISCARD"), ("UNWATCH",)):
                self.assertEqual(c.call("WATCH", "w:cnt"), b"+OK\r\n")
                for cmd in forget:
                    self.assertEqual(c.call(cmd), b"+OK\r\n")
                self.direct[shard].set("w:cnt", 1)
                self.assertEqual(c.call("MULTI"), b"+OK\r\n")
                self.assertEqual(c.call("INCR", "w:cnt"), b"+QUEUED\r\n")
                self.assertEqual(c.call("EXEC"), b"*1\r\n:2\r\n")
            # Keys of two servers: CROSSSLOT at WATCH, at a second WATCH, and at EXEC (nothing ran).
            crossslot = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
            self.assertEqual(c.call("WATCH", a, b), crossslot)
            self.assertEqual(c.call("WATCH", a), b"+OK\r\n")
            self.assertEqual(c.call("WATCH", b), crossslot)
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("SET", b, "changed"), b"+QUEUED\r\n")
            self.assertEqual(c.call("EXEC"), crossslot)
            self.assertEqual(self.proxy.get(b), b"1")
            # The WATCH connection lost (killed on the server): EXEC aborts, as if the key had changed.
            self.assertEqual(c.call("WATCH", "w:cnt"), b"+OK\r\n")
            (line,) = [ln for ln in self.clients_of(shard) if " cmd=watch " in ln]
            client_id = line.split("id=")[1].split(" ")[0]
            self.assertEqual(self.direct[shard].execute_command("CLIENT", "KILL", "ID", client_id), 1)
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("INCR", "w:cnt"), b"+QUEUED\r\n")
            self.assertEqual(c.call("EXEC"), b"*-1\r\n")
            self.assertEqual(self.proxy.get("w:cnt"), b"2")
            # A client that goes away while watching leaves no connection behind.
            self.assertEqual(c.call("WATCH", "w:cnt"), b"+OK\r\n")
        self.wait_clients(shard, baseline, "the WATCH connection of a client that went away closed")

    def test_resp3_clients_get_the_servers_resp3_replies(self):
        """HELLO 3 through turretd: every reply is the bytes the owning server sends a RESP3 client (maps, sets,
        doubles, nulls), split commands are merged in RESP3, and HELLO 2 goes back to RESP2."""
        cases = [("HSET", "r3:h", "f1", "v1", "f2", "v2"), ("HGETALL", "r3:h"), ("SADD", "r3:s", "m"),
                 ("SMEMBERS", "r3:s"), ("ZADD", "r3:z", "1.5", "m"), ("ZSCORE", "r3:z", "m"),
                 ("ZRANGE", "r3:z", "0", "-1", "WITHSCORES"), ("GET", "r3:nokey"), ("HGETALL", "r3:nokey"),
                 ("SET", "r3:x", "1"), ("INCRBYFLOAT", "r3:x", "1.5"), ("LPUSH", "r3:h", "x"),
                 ("CONFIG", "GET", "maxmemory")]
        with harness.RespConn(self.ports["resp"]) as c:
            hello = c.call("HELLO", "3")
            self.assertTrue(hello.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), hello)
            self.assertIn(b"$5\r\nproto\r\n:3\r\n", hello)
            for cmd in cases:
                via = c.call(*cmd)
                if cmd[0] == "CONFIG":  # refused here, in RESP3 framing of an error (the same as RESP2)
                    self.assertEqual(via, b"-ERR CONFIG is not supported in shard mode\r\n")
                    continue
                owner = self.redises[ring_owner(self.names, cmd[1].encode())]
                with harness.RespConn(owner.port) as d:
                    d.call("HELLO", "3")
                    # The write already ran through turretd: compare a read's bytes; a write's reply shape by
                    # running it again on the owner (idempotent here, or an error both ways).
                    self.assertEqual(via[:1], d.call(*cmd)[:1], cmd)
                    if cmd[0] in ("HGETALL", "SMEMBERS", "ZSCORE", "ZRANGE", "GET", "LPUSH"):
                        self.assertEqual(via, d.call(*cmd), cmd)
            self.assertEqual(c.call("HGETALL", "r3:h"), b"%2\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n")
            # MGET over every shard, merged: RESP3 null for the missing key.
            keys = [f"r3:m{i}" for i in range(12)]
            self.assertEqual(c.call("MSET", *[x for k in keys for x in (k, "v")]), b"+OK\r\n")
            self.assertEqual({ring_owner(self.names, k.encode()) for k in keys}, {0, 1, 2})
            self.assertEqual(c.call("MGET", keys[0], "r3:missing", keys[5]), b"*3\r\n$1\r\nv\r\n_\r\n$1\r\nv\r\n")
            # A transaction's EXEC array holds RESP3 replies.
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("HGETALL", "r3:h"), b"+QUEUED\r\n")
            self.assertEqual(c.call("HELLO", "2"), b"-ERR HELLO inside MULTI is not supported in shard mode\r\n")
            self.assertEqual(c.call("DISCARD"), b"+OK\r\n")
            self.assertEqual(c.call("MULTI"), b"+OK\r\n")
            self.assertEqual(c.call("HGETALL", "r3:h"), b"+QUEUED\r\n")
            self.assertEqual(c.call("EXEC"), b"*1\r\n%2\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n")
            # Pub/sub: RESP3 push frames, and commands are allowed while subscribed (RESP3).
            self.assertEqual(c.call("SUBSCRIBE", "r3:ch"), b">3\r\n$9\r\nsubscribe\r\n$5\r\nr3:ch\r\n:1\r\n")
            self.assertEqual(self.proxy.publish("r3:ch", "hi"), 1)
            self.assertEqual(c.read_reply(), b">3\r\n$7\r\nmessage\r\n$5\r\nr3:ch\r\n$2\r\nhi\r\n")
            self.assertEqual(c.call("GET", "r3:nokey"), b"_\r\n")
            self.assertEqual(c.call("UNSUBSCRIBE"), b">3\r\n$11\r\nunsubscribe\r\n$5\r\nr3:ch\r\n:0\r\n")
            # Redis's HELLO checks; then back to RESP2.
            self.assertEqual(c.call("HELLO", "4"), b"-NOPROTO unsupported protocol version\r\n")
            self.assertEqual(c.call("HELLO", "x"), b"-ERR Protocol version is not an integer or out of range\r\n")
            self.assertEqual(c.call("HELLO", "3", "AUTH", "u", "p"), b"-ERR AUTH is not supported in shard mode\r\n")
            self.assertEqual(c.call("HELLO", "3", "BOGUS"), b"-ERR Syntax error in HELLO option 'BOGUS'\r\n")
            self.assertTrue(c.call("HELLO", "2", "SETNAME", "r3").startswith(b"*14\r\n"))
            self.assertEqual(c.call("HGETALL", "r3:h"), b"*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n")

    def test_http_and_grpc_reach_the_shards(self):
        keys = [f"h{i}" for i in range(20)]
        for k in keys:
            r = request(self.ports["http"], "PUT", "/v1/kv/" + urllib.parse.quote(k), b"from-http-" + k.encode())
            self.assertIn(r.status, (200, 201), r.body)
        self.assertEqual({i for k in keys for i in self.where(k.encode())}, {0, 1, 2})
        for k in keys:
            r = request(self.ports["http"], "GET", "/v1/kv/" + urllib.parse.quote(k))
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"from-http-" + k.encode())
        self.assertEqual(request(self.ports["http"], "GET", "/v1/kv/nope").status, 404)
        if not self.grpc:
            return
        pb, kv = kv_stub(self, self.ports["grpc"])
        m = pb["kv"]
        for k in keys:
            self.assertEqual(kv.Get(m.GetRequest(key=k.encode()), timeout=5).value, b"from-http-" + k.encode())
        kv.Set(m.SetRequest(key=b"g1", value=b"grpc"), timeout=5)
        self.assertEqual(self.proxy.get(b"g1"), b"grpc")
        self.assertEqual(len(self.where(b"g1")), 1)
        deleted = kv.Delete(m.DeleteRequest(keys=[k.encode() for k in keys] + [b"g1", b"nope"]), timeout=5).deleted
        self.assertEqual(deleted, 21)
        self.assertEqual(sum(d.dbsize() for d in self.direct), 0)

    def test_zz_kill_one_shard_fails_fast_and_recovers(self):
        keys = [f"k{i}".encode() for i in range(30)]
        for k in keys:
            self.proxy.set(k, b"1")
        victim = 1
        dead = [k for k in keys if self.where(k) == [victim]]
        alive = [k for k in keys if k not in dead]
        self.assertTrue(dead and alive)
        port = self.redises[victim].port
        self.redises[victim].signalled = True  # killed on purpose: not a crash
        os.kill(self.redises[victim].proc.pid, signal.SIGKILL)
        self.redises[victim].proc.wait()
        errors = []
        for _ in range(20):
            for k in dead[:1]:
                t0 = time.monotonic()
                with self.assertRaises(redis.exceptions.ResponseError) as e:
                    self.proxy.get(k)
                self.assertLess(time.monotonic() - t0, 1.0)
                errors.append(str(e.exception))
            for k in alive[:3]:
                self.assertEqual(self.proxy.get(k), b"1")
        self.assertTrue(all(e.startswith("unavailable") for e in errors), errors)
        # A split request with a part on the dead server fails as a whole, with one reply: the next request on the
        # same connection gets its own.
        with self.assertRaises(redis.exceptions.ResponseError):
            self.proxy.mget([alive[0], dead[0], alive[1]])
        self.assertEqual(self.proxy.get(alive[0]), b"1")
        self.assertIn("unavailable: circuit open", errors[-1])
        # Restart on the same port: once the breaker lets a probe through, the shard's keys work again.
        proc = subprocess.Popen([harness.REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--logfile", "", "--loglevel", "warning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (proc.kill(), proc.wait()))
        self.direct[victim] = redis.Redis(port=port, socket_timeout=5)
        deadline = time.monotonic() + 15
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                self.proxy.set(dead[0], b"2")
                ok = self.proxy.get(dead[0]) == b"2"
            except redis.exceptions.ResponseError:
                time.sleep(0.1)
        self.assertTrue(ok, "the restarted shard did not come back")
        self.assertEqual(self.direct[victim].get(dead[0]), b"2")


class Placement(unittest.TestCase):
    def test_xxh64_reference_values(self):
        self.assertEqual(xxh64(b""), 0xEF46DB3751D8E999)
        self.assertEqual(xxh64(b"abc"), 0x44BC2CF5AD770999)


class UpstreamConfig(unittest.TestCase):
    """Unknown modes, keys of another mode and balancing policies that do not suit the mode are config errors naming
    file:line."""

    def check(self, store: str) -> str:
        harness.require_turretd(self)
        path = os.path.join(self.tmp, "turret.yaml")
        with open(path, "w") as f:
            f.write("listeners:\n  - {name: resp, protocol: resp, address: 127.0.0.1:0}\nstore:\n" + store)
        r = subprocess.run([harness.TURRETD, "--check-config", path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        return r.stdout + r.stderr

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp()

    def test_unknown_modes_and_keys_of_other_modes_are_rejected(self):
        out = self.check("  kind: upstream\n  mode: mirror\n  endpoints: [127.0.0.1:7001]\n")
        self.assertIn("turret.yaml:5:9: store.mode: unknown mode 'mirror' (supported: shard, replicas, cluster)", out)
        out = self.check("  kind: upstream\n  mode: cluster\n  endpoints: [127.0.0.1:7001]\n  max_lag: 1mb\n")
        self.assertIn("store.max_lag: unknown key", out)
        out = self.check("  kind: upstream\n  mode: cluster\n  endpoints: [127.0.0.1:7001]\n  read_from: nearest\n")
        self.assertIn("store.read_from: expected primary or replicas", out)
        out = self.check("  kind: upstream\n  mode: cluster\n  endpoints: [127.0.0.1:7001]\n"
                         "  pipeline: [{layer: load_balance, policy: ring_hash}]\n")
        self.assertIn("store.pipeline[0].policy: cluster mode places keys by hash slot", out)

    def test_bad_endpoint_and_policy(self):
        out = self.check("  kind: upstream\n  endpoints: [localhost]\n")
        self.assertIn("store.endpoints[0]: expected HOST:PORT", out)
        out = self.check("  kind: upstream\n  endpoints: [127.0.0.1:1]\n"
                         "  pipeline: [{layer: load_balance, policy: p2c}]\n")
        self.assertIn("store.pipeline[0].policy: shard mode places keys by ring_hash or maglev", out)
        out = self.check("  kind: upstream\n  endpoints: [127.0.0.1:1]\n  pipeline: [{layer: retry, max_atempts: 3}]\n")
        self.assertIn("store.pipeline[0].max_atempts: unknown key", out)


if __name__ == "__main__":
    unittest.main()
