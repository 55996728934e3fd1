"""python3-redis (redis-py 4.3) against turretd: pipelines, transactions with WATCH retry under contention, pub/sub
(get_message and listen, patterns), binary values, expiry, scan_iter, a connection pool shared by threads.
redis-py 4.3 speaks RESP2 only (RESP3 arrived in 5.0): RESP3 is covered by the differential test."""
import threading
import time
import unittest

import redis

import harness


class RedisPy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.start_target(cls)

    def setUp(self):
        self.r = redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=10)
        self.addCleanup(self.r.close)
        self.r.flushall()

    def client(self, **kw):
        c = redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=10, **kw)
        self.addCleanup(c.close)
        return c

    def test_basic_commands(self):
        r = self.r
        self.assertTrue(r.ping())
        self.assertTrue(r.set("k", "v"))
        self.assertEqual(r.get("k"), b"v")
        self.assertIsNone(r.get("missing"))
        self.assertEqual(r.incr("n"), 1)
        self.assertEqual(r.incrby("n", 9), 10)
        self.assertAlmostEqual(r.incrbyfloat("f", 2.5), 2.5)
        self.assertEqual(r.append("k", "w"), 2)
        self.assertEqual(r.strlen("k"), 2)
        self.assertEqual(r.mget("k", "n", "missing"), [b"vw", b"10", None])
        self.assertTrue(r.mset({"a": 1, "b": 2}))
        self.assertFalse(r.msetnx({"a": 3, "c": 4}))
        self.assertEqual(r.exists("a", "b", "c"), 2)
        self.assertEqual(r.delete("a", "b", "c"), 2)
        self.assertEqual(r.getset("k", "new"), b"vw")
        self.assertEqual(r.getdel("k"), b"new")
        self.assertEqual(r.type("n"), b"string")
        self.assertEqual(r.dbsize(), 2)
        with self.assertRaises(redis.ResponseError) as cm:
            r.incr("f")
        self.assertEqual(str(cm.exception), "value is not an integer or out of range")
        self.assertEqual(r.setbit("bits", 3, 1), 0)
        self.assertEqual(r.bitcount("bits"), 1)
        self.assertEqual(r.bitfield("bits").get("u8", 0).execute(), [16])
        self.assertEqual(r.getrange("n", 0, 0), b"1")
        self.assertEqual(r.setrange("n", 1, "5"), 2)
        self.assertEqual(r.get("n"), b"15")
        self.assertEqual(r.lcs("n", "f") if hasattr(r, "lcs") else r.execute_command("LCS", "n", "f"), b"5")

    def test_binary_values(self):
        r = self.r
        values = {b"nul\x00key": b"\x00\x01\x02\xff", b"crlf\r\nkey": b"a\r\nb\r\n", b"\xff" * 3: b"",
                  b"big": bytes(range(256)) * 4096}
        for k, v in values.items():
            self.assertTrue(r.set(k, v))
        for k, v in values.items():
            self.assertEqual(r.get(k), v)
        self.assertEqual(r.mget(list(values)), list(values.values()))
        self.assertEqual(r.strlen(b"big"), 256 * 4096)
        self.assertEqual(r.getrange(b"nul\x00key", 0, 1), b"\x00\x01")

    def test_expiry(self):
        r = self.r
        r.set("e", "v", px=200)
        self.assertGreater(r.pttl("e"), 0)
        r.set("ttl", "v", ex=100)
        self.assertIn(r.ttl("ttl"), (99, 100))
        self.assertTrue(r.persist("ttl"))
        self.assertEqual(r.ttl("ttl"), -1)
        time.sleep(0.35)
        self.assertIsNone(r.get("e"))
        self.assertEqual(r.ttl("e"), -2)

    def test_pipeline_without_transaction(self):
        p = self.r.pipeline(transaction=False)
        for i in range(1000):
            p.set(f"p:{i}", i)
        for i in range(1000):
            p.incr(f"p:{i}")
        p.get("p:999")
        p.incr("p:nope:x")
        res = p.execute()
        self.assertEqual(res[:1000], [True] * 1000)
        self.assertEqual(res[1000:2000], list(range(1, 1001)))
        self.assertEqual(res[2000], b"1000")
        self.assertEqual(res[2001], 1)

    def test_pipeline_errors_are_reported_per_command(self):
        self.r.set("s", "text")
        p = self.r.pipeline(transaction=False)
        p.set("x", 1).incr("s").get("x")
        res = p.execute(raise_on_error=False)
        self.assertEqual(res[0], True)
        self.assertIsInstance(res[1], redis.ResponseError)
        self.assertEqual(res[2], b"1")

    def test_transaction(self):
        p = self.r.pipeline(transaction=True)
        p.set("t", 1).incr("t").incrby("t", 10).get("t")
        self.assertEqual(p.execute(), [True, 2, 12, b"12"])
        # a queue-time error aborts the whole transaction (EXECABORT)
        p = self.r.pipeline(transaction=True)
        p.set("t", 100)
        p.execute_command("NOSUCHCOMMAND")
        with self.assertRaises(redis.ResponseError):
            p.execute()
        self.assertEqual(self.r.get("t"), b"12")

    def test_watch_conflict_aborts(self):
        other = self.client()
        self.r.set("w", 1)
        with self.r.pipeline() as p:
            p.watch("w")
            other.set("w", 2)
            p.multi()
            p.set("w", 3)
            with self.assertRaises(redis.WatchError):
                p.execute()
        self.assertEqual(self.r.get("w"), b"2")

    def test_watch_retry_under_contention(self):
        """8 threads x 50 optimistic increments with WATCH/MULTI/EXEC retry: no lost update, some retries happen."""
        self.r.set("counter", 0)
        threads, per_thread = 8, 50
        retries = []
        errors = []
        pool = redis.ConnectionPool(host="127.0.0.1", port=self.server.port, max_connections=threads + 2,
                                    socket_timeout=10)
        self.addCleanup(pool.disconnect)

        def worker():
            try:
                c = redis.Redis(connection_pool=pool)
                n = 0
                for _ in range(per_thread):
                    while True:
                        with c.pipeline() as p:
                            try:
                                p.watch("counter")
                                v = int(p.get("counter"))
                                p.multi()
                                p.set("counter", v + 1)
                                p.execute()
                                break
                            except redis.WatchError:
                                n += 1
                retries.append(n)
            except Exception as e:  # surfaced below
                errors.append(e)

        ts = [threading.Thread(target=worker) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(int(self.r.get("counter")), threads * per_thread)
        self.assertEqual(len(retries), threads)

    def test_exec_is_atomic_for_other_clients(self):
        """4 writers run MULTI; INCR x; INCR y; EXEC while a reader polls MGET x y: it must never see x != y."""
        self.r.mset({"x": 0, "y": 0})
        stop = threading.Event()
        errors, torn = [], []

        def writer():
            try:
                c = self.client()
                for _ in range(300):
                    p = c.pipeline(transaction=True)
                    p.incr("x").incr("y")
                    p.execute()
            except Exception as e:
                errors.append(e)

        def reader():
            try:
                c = self.client()
                while not stop.is_set():
                    x, y = c.mget("x", "y")
                    if x != y:
                        torn.append((x, y))
            except Exception as e:
                errors.append(e)
        rd = threading.Thread(target=reader)
        rd.start()
        ws = [threading.Thread(target=writer) for _ in range(4)]
        for t in ws:
            t.start()
        for t in ws:
            t.join(60)
        stop.set()
        rd.join(10)
        self.assertEqual(errors, [])
        self.assertEqual(torn, [])
        self.assertEqual(self.r.mget("x", "y"), [b"1200", b"1200"])

    def test_transaction_helper(self):
        self.r.set("a", 5)

        def move(pipe):
            a = int(pipe.get("a"))
            pipe.multi()
            pipe.set("a", a - 1)
            pipe.incr("b")
        self.assertEqual(self.r.transaction(move, "a"), [True, 1])
        self.assertEqual(self.r.mget("a", "b"), [b"4", b"1"])

    def test_pubsub_get_message(self):
        p = self.r.pubsub()
        self.addCleanup(p.close)
        p.subscribe("chan")
        msg = p.get_message(timeout=5)
        self.assertEqual(msg, {"type": "subscribe", "pattern": None, "channel": b"chan", "data": 1})
        self.assertEqual(self.client().publish("chan", b"hi\x00there"), 1)
        msg = p.get_message(timeout=5)
        self.assertEqual(msg, {"type": "message", "pattern": None, "channel": b"chan", "data": b"hi\x00there"})
        self.assertIsNone(p.get_message(timeout=0.1))
        p.psubscribe("ev.*")
        self.assertEqual(p.get_message(timeout=5)["type"], "psubscribe")
        self.assertEqual(self.client().publish("ev.one", "x"), 1)
        self.assertEqual(p.get_message(timeout=5),
                         {"type": "pmessage", "pattern": b"ev.*", "channel": b"ev.one", "data": b"x"})
        self.assertEqual(self.r.pubsub_numsub("chan"), [(b"chan", 1)])
        self.assertEqual(self.r.pubsub_numpat(), 1)
        self.assertEqual(self.r.pubsub_channels(), [b"chan"])
        p.unsubscribe("chan")
        self.assertEqual(p.get_message(timeout=5)["type"], "unsubscribe")
        p.punsubscribe()
        self.assertEqual(p.get_message(timeout=5)["type"], "punsubscribe")
        self.assertEqual(self.r.publish("chan", "nobody"), 0)

    def test_pubsub_listen_in_thread(self):
        p = self.r.pubsub(ignore_subscribe_messages=True)
        self.addCleanup(p.close)
        p.subscribe("feed")
        self.assertIsNone(p.get_message(timeout=5))  # consumes the subscribe confirmation
        got = []

        def reader():
            for m in p.listen():
                if m["type"] == "message":
                    got.append(m["data"])
                    if m["data"] == b"stop":
                        return
        t = threading.Thread(target=reader)
        t.start()
        pub = self.client()
        for i in range(100):
            self.assertEqual(pub.publish("feed", f"m{i}"), 1)
        pub.publish("feed", "stop")
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(got, [f"m{i}".encode() for i in range(100)] + [b"stop"])

    def test_pubsub_run_in_thread_handler(self):
        got = []
        done = threading.Event()
        p = self.r.pubsub()

        def handler(m):
            got.append(m["data"])
            if len(got) == 3:
                done.set()
        p.subscribe(**{"h": handler})
        worker = p.run_in_thread(sleep_time=0.01)
        self.addCleanup(lambda: (worker.stop(), worker.join(5)))
        self.assertTrue(harness.wait_for(lambda: self.r.pubsub_numsub("h") == [(b"h", 1)]))
        for x in (b"1", b"2", b"3"):
            self.r.publish("h", x)
        self.assertTrue(done.wait(5))
        self.assertEqual(got, [b"1", b"2", b"3"])

    def test_scan_iter_and_keys(self):
        p = self.r.pipeline(transaction=False)
        for i in range(2500):
            p.set(f"scan:{i}", i)
        p.set("other", 1)
        p.execute()
        seen = list(self.r.scan_iter(match="scan:*", count=100))
        self.assertEqual(len(seen), len(set(seen)) if len(seen) == 2500 else len(seen))
        self.assertEqual(set(seen), {f"scan:{i}".encode() for i in range(2500)})
        self.assertEqual(len(self.r.keys("scan:1??")), 100)
        self.assertEqual(set(self.r.scan_iter(_type="string", count=1000)), set(self.r.keys("*")))
        self.assertIn(self.r.randomkey(), set(self.r.keys("*")))

    def test_connection_pool_threads(self):
        pool = redis.ConnectionPool(host="127.0.0.1", port=self.server.port, max_connections=16, socket_timeout=10)
        self.addCleanup(pool.disconnect)
        errors = []

        def worker(n):
            try:
                c = redis.Redis(connection_pool=pool)
                for i in range(200):
                    c.set(f"t{n}:{i}", i)
                    if c.get(f"t{n}:{i}") != str(i).encode():
                        errors.append((n, i))
                    c.incr("shared")
            except Exception as e:
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(int(self.r.get("shared")), 16 * 200)

    def test_resp3(self):
        major = int(redis.__version__.split(".")[0])
        if major < 5:
            self.skipTest(f"redis-py {redis.__version__} has no RESP3 (5.0+); RESP3 is covered by test_differential")
        r = self.client(protocol=3)
        self.assertTrue(r.ping())
        self.assertTrue(r.set("k3", "v"))
        self.assertEqual(r.get("k3"), b"v")
        self.assertIsNone(r.get("nosuch"))

    def test_client_and_server_commands(self):
        r = self.r
        self.assertTrue(r.client_setname("py"))
        self.assertEqual(r.client_getname(), "py")
        self.assertIsInstance(r.client_id(), int)
        info = r.info()
        for field in ("redis_version", "connected_clients", "used_memory"):
            self.assertIn(field, info)
        self.assertIn("keyspace_hits", r.info("stats"))
        self.assertEqual(r.config_get("maxclients"), {"maxclients": "10000"})
        t = r.time()
        self.assertLess(abs(t[0] - time.time()), 5)
        self.assertTrue(any(c["name"] == "py" for c in r.client_list()))
        r.select(3) if hasattr(r, "select") else r.execute_command("SELECT", 3)
        self.assertTrue(r.flushdb())


if __name__ == "__main__":
    unittest.main()
