"""Real-Redis topologies on loopback for the scale-out tests: independent shards, a primary with replicas, a Redis
Cluster. Every server is a Debian ``redis-server`` on a free port in its own temp dir, without persistence, and is
always stopped: context managers, ``start(owner, ...)`` (test / class cleanups), an ``atexit`` hook, and
``PR_SET_PDEATHSIG`` so that even a test runner killed with SIGKILL takes its servers with it (the signal follows
the thread that started a server: start them from a thread that outlives them, e.g. the main one). Every wait is bounded
and raises ``TopologyTimeout`` with the last state it saw.

Servers
-------
``RedisServer(extra=None, cluster=False, replicaof=None, name=None)`` (a ``harness.ServerProcess``): ``port``,
``address`` ("127.0.0.1:PORT"), ``pid``, ``tmpdir``, ``log_text()``; ``client(**kw)`` a new ``redis.Redis``
(``decode_responses=True`` unless overridden; the caller closes it), ``info(section)``, ``role()``;
``stop()`` (SIGTERM, SIGKILL after a timeout; idempotent), ``kill9()``, ``sigstop()`` / ``sigcont()``,
``restart()`` (same port, same dir: a cluster node keeps its ``nodes.conf`` and rejoins), ``cleanup()`` (stop and
remove the dir). A cluster node also has ``bus_port`` and ``node_id``.

Topologies
----------
Context managers; ``cleanup()`` stops every server; ``servers``, ``ports``, ``endpoints``; ``live()`` the servers
running and not paused; ``describe()`` each server's log tail, for failure messages.

``Shards(n=3)``: ``n`` independent servers.

``Replicated(replicas=2)``: ``primary`` and ``replicas`` (``--replicaof``), returned once every replica is online
and in sync (``master_link_status:up``). ``wait_synced()``; ``wait_replicated(key)`` waits until every live replica
holds exactly the primary's value (``DUMP`` compared); ``promote(replica, repoint=False)`` runs ``REPLICAOF NO ONE``
and waits for ``role:master`` (with ``repoint=True`` the other live servers, old primary included, then replicate
from it and are waited for); returns seconds.

``Cluster(primaries=3, replicas_per_primary=1, node_timeout_ms=1000)``: made with ``redis-cli --cluster create``,
returned once every live node says ``cluster_state:ok``, all 16384 slots are served, all nodes agree on roles and
slot owners and every replica's link is up (``wait_converged()``). ``slot_of(key)`` (CRC16 with hash tags, as
Redis), ``keyslot(key)`` (asks ``CLUSTER KEYSLOT``), ``node_for_slot(slot)`` / ``node_for_key(key)`` (the primary
serving it), ``primaries()``, ``replicas_of(primary)``, ``node(port_or_id)``, ``failover(replica, force=False)``
(``CLUSTER FAILOVER`` on the replica, waits until it is master and the topology converged; returns seconds),
``kill_primary_and_wait_promotion(primary=None)`` (kill -9, waits until one of its replicas is master and the
cluster is ok and converged again; returns seconds). ``last_failover`` describes the last of these two
(``Failover``: kind, old, new, promoted_s, converged_s). ``start_slot_migration(slot, target)`` returns a
``SlotMigration`` (IMPORTING / MIGRATING set: the source answers -ASK for the keys already moved) with
``move_keys(count=None, keys=None)`` and ``finish()`` (rest of the keys moved, SETSLOT NODE everywhere, converged).
``cluster_client()`` is a ``redis.cluster.RedisCluster``. ``key_in_slot(slot, prefix)`` makes a key for a slot.

Usage::

    import redis_topology as rt

    class T(unittest.TestCase):
        @classmethod
        def setUpClass(cls):
            cls.cluster = rt.start(cls, rt.Cluster)          # stopped by a class cleanup
        def test_x(self):
            with rt.Shards(3) as shards:                      # stopped when the block ends, even on failure
                ...
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import harness

try:
    import redis  # python3-redis (Debian)
except ImportError:  # pragma: no cover
    redis = None

HOST = "127.0.0.1"
SLOTS = 16384
SCALE = harness.TIMEOUT_SCALE
SYNC_TIMEOUT = 20.0 * SCALE       # replicas online and in sync
CONVERGE_TIMEOUT = 30.0 * SCALE   # cluster creation, failover, promotion
CREATE_TIMEOUT = 60.0 * SCALE     # redis-cli --cluster create
POLL = 0.02
QUERY_TIMEOUT = 1.0 * SCALE       # one admin query (a SIGSTOPped server must not block a wait for long)
FAST_SYNC = ["--repl-diskless-sync-delay", "0"]  # the default waits 5 s for more replicas before a full sync


class TopologyTimeout(TimeoutError):
    """A bounded wait ran out; the message says what was awaited and the last state observed."""


def wait_until(what: str, probe, timeout: float, interval: float = POLL, give_up=None):
    """Call probe() until it returns (True, value); returns value. probe returns (done, state); an exception
    from probe (a server restarting, a connection refused) counts as not done. Raises TopologyTimeout, or
    RuntimeError as soon as give_up() returns a reason (e.g. the process waited for has exited)."""
    deadline = time.monotonic() + timeout
    state = "<not probed>"
    while True:
        reason = give_up() if give_up else None
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        try:
            done, state = probe()
            if done:
                return state
        except Exception as e:  # noqa: BLE001 - any failure of a probe means "not yet"
            state = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise TopologyTimeout(f"{what}: not reached within {timeout:.1f}s; last state:\n{state}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------------------
# Servers

_LIVE: set = set()   # servers not cleaned up yet (the atexit hook stops them)
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.cleanup()


def pid_gone(pid: int) -> bool:
    """True when no process has that pid any more (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


class RedisServer(harness.ServerProcess):
    """A redis-server child: see the module docstring."""

    kind = "redis"

    def __init__(self, extra: list[str] | None = None, *, cluster: bool = False, replicaof: int | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        self.extra = list(extra or [])
        self.cluster = cluster
        self.replicaof = replicaof  # the port of the primary it replicates from (part of its command line)
        self.name = name or "redis"
        self.bus_port = 0
        self.node_id: str | None = None
        self.paused = False
        self._admin = None
        _LIVE.add(self)
        try:
            self._first_start()
        except BaseException:
            self.cleanup()
            raise

    def __repr__(self) -> str:
        return f"<{self.name} :{self.port} pid={self.proc.pid if self.proc else '-'}>"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def argv(self) -> list[str]:
        argv = harness.redis_server_argv(self.port, self.tmpdir)
        if self.cluster:
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-port", str(self.bus_port)]
        if self.replicaof:
            argv += ["--replicaof", HOST, str(self.replicaof)]
        return argv + self.extra

    def _spawn(self, argv: list[str]) -> None:
        # like harness.ServerProcess._spawn, but the log is appended to (restarts) and the child dies with us
        self._log_file = open(self.log_path, "ab")
        self.argv_used = argv
        self.proc = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.tmpdir, start_new_session=True, preexec_fn=_die_with_parent)

    def _first_start(self) -> None:
        def argv():
            self.port = harness.free_port()
            if self.cluster:
                self.bus_port = harness.free_port()
            return self.argv()
        self.start_on_free_ports(argv, self._ready, f"{self.name}: redis-server")

    def _ready(self) -> None:
        harness.wait_accepting(self.port, self.proc)
        if self.cluster and self.node_id is None:
            self.node_id = self.call("CLUSTER", "MYID")

    def _launch(self) -> None:
        self.signalled = self._checked = self.paused = False
        self._spawn(self.argv())
        try:
            self._ready()
        except RuntimeError:
            self.signalled = True
            with contextlib.suppress(AssertionError):
                self.stop()
            raise

    # -- queries -----------------------------------------------------------------------------------------------
    def client(self, **kw) -> "redis.Redis":
        """A new redis.Redis on this server (decode_responses=True unless given); the caller closes it."""
        opts = dict(host=HOST, port=self.port, decode_responses=True, socket_timeout=harness.IO_TIMEOUT,
                    socket_connect_timeout=harness.IO_TIMEOUT)
        opts.update(kw)
        return redis.Redis(**opts)

    def call(self, *args):
        """One command on a shared admin connection with a short timeout (decoded replies)."""
        if self._admin is None:
            self._admin = self.client(socket_timeout=QUERY_TIMEOUT, socket_connect_timeout=QUERY_TIMEOUT)
        return self._admin.execute_command(*args)

    def raw(self, *args) -> bytes:
        """The exact reply bytes of one command on a fresh raw connection."""
        with harness.RespConn(self.port, timeout=QUERY_TIMEOUT) as c:
            return c.call(*args)

    def info(self, section: str | None = None) -> dict:
        return self.call("INFO", section) if section else self.call("INFO")

    def role(self) -> str:
        """'master' or 'slave' (INFO replication)."""
        return self.info("replication")["role"]

    def usable(self) -> bool:
        """Running and not SIGSTOPped."""
        return self.alive() and not self.paused

    # -- faults and lifecycle ------------------------------------------------------------------------------------
    def _drop_admin(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def kill9(self) -> None:
        """SIGKILL and reap."""
        self._drop_admin()
        if self.alive():
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=harness.STOP_TIMEOUT)
        self.paused = False

    def sigstop(self) -> None:
        """SIGSTOP; returns once the process is stopped (state T)."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

        def stopped():
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            return stat[stat.rindex(")") + 2] == "T", stat
        wait_until(f"{self.name} stopped", stopped, 5.0 * SCALE)

    def sigcont(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = harness.STOP_TIMEOUT) -> int | None:
        self._drop_admin()
        if self.paused:
            self.sigcont()  # SIGTERM waits for SIGCONT otherwise
        return super().stop(timeout)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and dir; the log is appended to."""
        self.stop()
        with open(self.log_path, "ab") as log:
            log.write(b"--- restart ---\n")
        try:
            self._launch()
        except RuntimeError as e:
            raise RuntimeError(f"{self.name}: restart on port {self.port} failed: {e}\n{self.log_text()}") from None

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            _LIVE.discard(self)


# ---------------------------------------------------------------------------------------------------------------
# Topologies


class _Topology:
    servers: list[RedisServer]

    def __init__(self) -> None:
        self.servers = []

    def _add(self, server: RedisServer) -> RedisServer:
        self.servers.append(server)
        return server

    def _guard(self, build) -> None:
        """Run build(); on any failure stop what was started, then re-raise."""
        try:
            build()
        except BaseException:
            with contextlib.suppress(Exception):
                self.cleanup()
            raise

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def endpoints(self) -> list[str]:
        return [s.address for s in self.servers]

    def live(self) -> list[RedisServer]:
        return [s for s in self.servers if s.usable()]

    def describe(self) -> str:
        return "\n".join(f"{s!r}\n{s.log_text(3000)}" for s in self.servers)

    def cleanup(self) -> None:
        """Stop every server (all of them, even when one fails), then raise the first error."""
        errors = []
        for s in self.servers:
            try:
                s.cleanup()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def start(owner, kind, *args, **kw):
    """kind(*args, **kw) with its cleanup registered on a test (addCleanup) or a test class (addClassCleanup)."""
    return harness._register(owner, kind(*args, **kw))


class Shards(_Topology):
    def __init__(self, n: int = 3, extra: list[str] | None = None) -> None:
        super().__init__()
        self._guard(lambda: [self._add(RedisServer(extra, name=f"shard{i}")) for i in range(n)])


class Replicated(_Topology):
    def __init__(self, replicas: int = 2, extra: list[str] | None = None) -> None:
        super().__init__()
        extra = FAST_SYNC + list(extra or [])
        self.primary: RedisServer | None = None
        self.replicas: list[RedisServer] = []

        def build():
            self.primary = self._add(RedisServer(extra, name="primary"))
            for i in range(replicas):
                self.replicas.append(self._add(RedisServer(extra, replicaof=self.primary.port, name=f"replica{i}")))
            self.wait_synced()
        self._guard(build)

    def wait_synced(self, timeout: float = SYNC_TIMEOUT) -> None:
        """Every live replica online at the primary, link up, no sync in progress."""
        def probe():
            lines = []
            ok = True
            prim = self.primary.info("replication")
            online = {int(v["port"]) for k, v in prim.items() if k.startswith("slave") and isinstance(v, dict)
                      and v.get("state") == "online"}
            for r in self.replicas:
                if not r.usable():
                    continue
                rep = r.info("replication")
                good = (rep.get("master_link_status") == "up" and rep.get("master_sync_in_progress") == 0
                        and rep.get("master_port") == self.primary.port and r.port in online)
                ok &= good
                lines.append(f"{r!r}: link={rep.get('master_link_status')} sync={rep.get('master_sync_in_progress')} "
                             f"master_port={rep.get('master_port')} online_at_primary={r.port in online}")
            return ok, "\n".join(lines)
        wait_until("replicas in sync", probe, timeout)

    def wait_replicated(self, key, timeout: float = SYNC_TIMEOUT) -> None:
        """Until every live replica holds exactly the primary's value of key (DUMP bytes, absent included)."""
        def probe():
            want = self.primary.raw("DUMP", key)
            differ = [r for r in self.replicas if r.usable() and r.raw("DUMP", key) != want]
            return not differ, f"primary DUMP {want[:60]!r}; replicas not there yet: {differ}"
        wait_until(f"key {key!r} replicated", probe, timeout)

    def promote(self, replica: RedisServer, repoint: bool = False, timeout: float = SYNC_TIMEOUT) -> float:
        """REPLICAOF NO ONE on replica, wait for role:master; with repoint the other live servers replicate from
        it afterwards (and are waited for). Afterwards primary is replica and replicas are the servers following it
        (none without repoint). Returns seconds."""
        t0 = time.monotonic()
        replica.call("REPLICAOF", "NO", "ONE")
        replica.replicaof = None
        wait_until(f"{replica!r} master", lambda: (replica.role() == "master", replica.role()), timeout)
        followers = []
        if repoint:
            for s in self.servers:
                if s is not replica and s.usable():
                    s.call("REPLICAOF", HOST, str(replica.port))
                    s.replicaof = replica.port
                    followers.append(s)
        self.primary, self.replicas = replica, followers
        if followers:
            self.wait_synced(timeout)
        return time.monotonic() - t0


# -- Cluster -----------------------------------------------------------------------------------------------------


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the one Redis Cluster uses."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


def slot_of(key) -> int:
    """The cluster slot of key (str or bytes): CRC16 mod 16384 of the hash tag (the part between the first '{' and
    the first '}' after it) when that part is non-empty, else of the whole key."""
    k = key.encode() if isinstance(key, str) else bytes(key)
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) & (SLOTS - 1)


def key_in_slot(slot: int, prefix: str = "k") -> str:
    """A key "{prefix}:N" (the first N) whose slot is slot."""
    n = 0
    while slot_of(f"{prefix}:{n}") != slot:
        n += 1
    return f"{prefix}:{n}"


@dataclasses.dataclass
class Failover:
    kind: str            # "manual" (CLUSTER FAILOVER) or "kill" (kill -9 of the primary)
    old: RedisServer     # the primary before
    new: RedisServer     # the replica promoted
    promoted_s: float    # until the new primary itself reported role:master
    converged_s: float   # until every live node agreed (and, for "kill", cluster_state:ok everywhere)


@dataclasses.dataclass
class NodeEntry:
    """One line of CLUSTER NODES."""
    id: str
    port: int
    flags: frozenset
    master: str | None
    slots: tuple  # ((first, last), ...)

    @property
    def is_master(self) -> bool:
        return "master" in self.flags


def parse_cluster_nodes(text: str) -> dict[str, NodeEntry]:
    out = {}
    for line in text.strip().splitlines():
        f = line.split()
        addr = f[1].split("@")[0]
        slots = []
        for s in f[8:]:
            if s.startswith("["):
                continue  # migrating / importing
            a, _, b = s.partition("-")
            slots.append((int(a), int(b or a)))
        out[f[0]] = NodeEntry(f[0], int(addr.rsplit(":", 1)[1]) if ":" in addr else 0,
                              frozenset(f[2].split(",")) - {"myself"}, None if f[3] == "-" else f[3], tuple(sorted(slots)))
    return out


class Cluster(_Topology):
    def __init__(self, primaries: int = 3, replicas_per_primary: int = 1, node_timeout_ms: int = 1000,
                 extra: list[str] | None = None) -> None:
        super().__init__()
        self.expected_primaries = primaries
        self.last_failover: Failover | None = None
        extra = FAST_SYNC + ["--cluster-node-timeout", str(node_timeout_ms)] + list(extra or [])

        def build():
            for i in range(primaries * (1 + replicas_per_primary)):
                self._add(RedisServer(extra, cluster=True, name=f"node{i}"))
            argv = [harness.REDIS_CLI, "--cluster", "create", *self.endpoints, "--cluster-replicas",
                    str(replicas_per_primary), "--cluster-yes"]
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=CREATE_TIMEOUT,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                raise TopologyTimeout(f"redis-cli --cluster create: no exit within {CREATE_TIMEOUT}s: {e.stdout}")
            if p.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed ({p.returncode}):\n{p.stdout}{p.stderr}")
            self.create_output = p.stdout
            self.wait_converged()
        self._guard(build)

    # -- views ---------------------------------------------------------------------------------------------------
    def node(self, key) -> RedisServer:
        """The server with that port or node id."""
        for s in self.servers:
            if key in (s.port, s.node_id):
                return s
        raise KeyError(key)

    def view(self, via: RedisServer | None = None) -> dict[str, NodeEntry]:
        """CLUSTER NODES as seen by via (default: the first live node)."""
        via = via or self.live()[0]
        return parse_cluster_nodes(via.call("CLUSTER", "NODES"))

    def primaries(self) -> list[RedisServer]:
        """The primaries serving slots, by their first slot."""
        masters = sorted((e for e in self.view().values() if e.is_master and e.slots and "fail" not in e.flags),
                         key=lambda e: e.slots[0])
        return [self.node(e.id) for e in masters]

    def replicas_of(self, primary: RedisServer) -> list[RedisServer]:
        return [self.node(e.id) for e in self.view().values()
                if e.master == primary.node_id and "fail" not in e.flags]

    def node_for_slot(self, slot: int) -> RedisServer:
        for e in self.view().values():
            if e.is_master and "fail" not in e.flags and any(a <= slot <= b for a, b in e.slots):
                return self.node(e.id)
        raise LookupError(f"slot {slot} is served by no live primary")

    def node_for_key(self, key) -> RedisServer:
        return self.node_for_slot(slot_of(key))

    slot_of = staticmethod(slot_of)

    def keyslot(self, key) -> int:
        return int(self.live()[0].call("CLUSTER", "KEYSLOT", key))

    def cluster_client(self, **kw):
        from redis.cluster import RedisCluster
        node = self.live()[0]
        return RedisCluster(host=HOST, port=node.port, decode_responses=True, **kw)

    def start_slot_migration(self, slot: int, target: RedisServer) -> "SlotMigration":
        """Put slot into migration from its primary to target (CLUSTER SETSLOT IMPORTING / MIGRATING), as
        redis-cli --cluster reshard does; nothing moves until move_keys() / finish()."""
        return SlotMigration(self, slot, self.node_for_slot(slot), target)

    # -- convergence -----------------------------------------------------------------------------------------------
    def _converged_state(self):
        """(converged, description): every live node says cluster_state:ok with all slots ok, all live nodes
        have the same view of the live nodes' roles and of the slot owners, every slot is owned by a live primary,
        no live node is flagged failing, and every replica of a live primary has its link up."""
        live = self.live()
        live_ids = {s.node_id for s in live}
        views = {}
        problems = []
        for s in live:
            info = s.call("CLUSTER", "INFO")
            info = dict(line.split(":", 1) for line in info.strip().splitlines() if ":" in line)
            if (info.get("cluster_state"), info.get("cluster_slots_ok")) != ("ok", str(SLOTS)):
                problems.append(f"{s!r}: cluster_state={info.get('cluster_state')} "
                                f"slots_ok={info.get('cluster_slots_ok')}")
            nodes = self.view(s)
            for e in nodes.values():
                if e.id in live_ids and e.flags & {"fail", "fail?", "handshake", "noaddr"}:
                    problems.append(f"{s!r} flags live node {e.port} {sorted(e.flags)}")
            owners = {}
            for e in nodes.values():
                if e.is_master:
                    for rng in e.slots:
                        owners[rng] = e.id
            roles = {e.id: ("master" if e.is_master else f"replica of {e.master}")
                     for e in nodes.values() if e.id in live_ids}
            views[s.port] = (roles, owners)
        distinct = {repr(sorted(v[0].items())) + repr(sorted(v[1].items())) for v in views.values()}
        if len(distinct) > 1:
            problems.append("views differ:\n" + "\n".join(f"  :{p} roles={v[0]} owners={v[1]}"
                                                          for p, v in views.items()))
        if views:
            roles, owners = next(iter(views.values()))
            covered = sum(b - a + 1 for a, b in owners)
            dead_owners = {o for o in owners.values() if o not in live_ids}
            if covered != SLOTS or dead_owners:
                problems.append(f"slots covered by live view: {covered}; owned by dead nodes: {dead_owners}")
            for s in live:
                role = roles.get(s.node_id, "?")
                if role.startswith("replica of ") and role[11:] in live_ids:
                    rep = s.info("replication")
                    if rep.get("master_link_status") != "up" or rep.get("master_port") != self.node(role[11:]).port:
                        problems.append(f"{s!r}: link {rep.get('master_link_status')} to :{rep.get('master_port')}")
        return not problems, "\n".join(problems) or "converged"

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT) -> None:
        wait_until("cluster converged", self._converged_state, timeout)

    # -- failovers -------------------------------------------------------------------------------------------------
    def _master_of(self, replica: RedisServer) -> RedisServer:
        entry = self.view(replica)[replica.node_id]
        if entry.is_master:
            raise ValueError(f"{replica!r} is not a replica")
        return self.node(entry.master)

    def failover(self, replica: RedisServer, force: bool = False, timeout: float = CONVERGE_TIMEOUT) -> float:
        """CLUSTER FAILOVER [FORCE] on replica; waits until it reports role:master and the topology converged on
        every live node. Returns the seconds from the command to convergence."""
        old = self._master_of(replica)
        t0 = time.monotonic()
        reply = replica.call("CLUSTER", "FAILOVER", *(["FORCE"] if force else []))
        if reply not in ("OK", True):
            raise RuntimeError(f"CLUSTER FAILOVER on {replica!r}: {reply!r}")
        wait_until(f"{replica!r} role master", lambda: (replica.role() == "master", replica.role()), timeout)
        promoted = time.monotonic() - t0
        wait_until("cluster converged after CLUSTER FAILOVER", self._converged_state, max(0.0, timeout - promoted))
        took = time.monotonic() - t0
        self.last_failover = Failover("manual", old, replica, promoted, took)
        return took

    def kill_primary_and_wait_promotion(self, primary: RedisServer | None = None,
                                        timeout: float = CONVERGE_TIMEOUT) -> float:
        """kill -9 primary (default: the first primary with a live replica); waits until one of its replicas is
        master, cluster_state:ok on every live node and the topology converged. Returns seconds since the kill."""
        if primary is None:
            primary = next((p for p in self.primaries() if any(r.usable() for r in self.replicas_of(p))), None)
            if primary is None:
                raise LookupError("no primary with a live replica")
        replicas = [r for r in self.replicas_of(primary) if r.usable()]
        if not replicas:
            raise LookupError(f"{primary!r} has no live replica")
        t0 = time.monotonic()
        primary.kill9()

        def promoted():
            masters = [r for r in replicas if r.role() == "master"]
            return bool(masters), (masters[0] if masters else f"roles: {[(r, r.role()) for r in replicas]}")
        new = wait_until(f"a replica of {primary!r} promoted", promoted, timeout)
        promoted_s = time.monotonic() - t0
        wait_until("cluster ok and converged after kill -9", self._converged_state, max(0.0, timeout - promoted_s))
        took = time.monotonic() - t0
        self.last_failover = Failover("kill", primary, new, promoted_s, took)
        return took


class SlotMigration:
    """A slot being moved between two primaries: while it lasts, the source answers -ASK for keys already moved and
    the target serves them only after ASKING (otherwise -MOVED back to the source)."""

    def __init__(self, cluster: Cluster, slot: int, source: RedisServer, target: RedisServer) -> None:
        if source is target:
            raise ValueError(f"slot {slot} is already on {target!r}")
        self.cluster, self.slot, self.source, self.target = cluster, slot, source, target
        target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
        source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)

    def move_keys(self, count: int | None = None, keys: list | None = None) -> list:
        """MIGRATE keys (default: up to count of the slot's keys still on the source, all when None) to the
        target; returns the keys moved."""
        if keys is None:
            keys = self.source.call("CLUSTER", "GETKEYSINSLOT", self.slot, count if count is not None else 1 << 30)
        if keys:
            reply = self.source.call("MIGRATE", HOST, self.target.port, "", 0, int(5000 * SCALE), "KEYS", *keys)
            if reply not in ("OK", True):
                raise RuntimeError(f"MIGRATE of {len(keys)} keys: {reply!r}")
        return list(keys)

    def finish(self, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Move the remaining keys, give the slot to the target (CLUSTER SETSLOT NODE on the target, the source,
        then every other primary) and wait until the cluster converged."""
        while self.move_keys(1000):
            pass
        for node in [self.target, self.source] + [p for p in self.cluster.primaries()
                                                  if p not in (self.target, self.source)]:
            node.call("CLUSTER", "SETSLOT", self.slot, "NODE", self.target.node_id)
        self.cluster.wait_converged(timeout)
