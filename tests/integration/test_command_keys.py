"""turret's key extraction and hash slots (turret::kv::extract_keys, key_hash_slot), checked against redis-server.

Keys: for a hand-written list of argvs covering every key-spec shape (index and keyword begin_search, range and
keynum find_keys, limits, incomplete specs and the getkeys procedures Redis falls back to), and for argvs generated
for every command redis-server knows, the positions and flags kv_command_keys prints must name exactly the keys and
flags of redis-server's COMMAND GETKEYSANDFLAGS, and its errors must be GETKEYS's errors.

Slots: CLUSTER KEYSLOT on a redis-server started with --cluster-enabled yes (it answers without a formed cluster)
against key_hash_slot for a few thousand random keys, hash tags included."""
import random
import shlex
import subprocess
import unittest

import harness

TOOL = harness._find_binary("TURRET_KV_COMMAND_KEYS", "services/kv_command_keys")

KEY_FLAG_NAMES = ["RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key", "incomplete",
                  "variable_flags"]
ERRORS = {
    "unknown": "ERR Invalid command specified",
    "nokeys": "ERR The command has no key arguments",
    "arity": "ERR Invalid number of arguments specified for command",
    "invalid": "ERR Invalid arguments specified for command",
}

# One argv per key-spec shape (and the edges of each).
HAND_WRITTEN = [
    "GET k", "GET k\x00", "SET k v", "SET k v GET", "SET k v EX 10 get", "SET k v GET\x00x", "MSET a 1 b 2 c 3", "MSET a 1 b", "MGET a b c",
    "DEL a b c", "EXISTS a a", "COPY s d REPLACE", "RENAME a b", "LCS a b IDX", "BITOP AND d a b c",
    "BITOP NOT d a", "OBJECT ENCODING k", "OBJECT HELP", "XGROUP CREATE s g $ MKSTREAM", "XGROUP SETID s g 0",
    "XINFO STREAM s FULL", "MEMORY USAGE k", "PFCOUNT a b", "PFMERGE d a b", "TOUCH a b", "WATCH a b",
    # keynum
    "EVAL s 2 a b x y", "EVAL s 0", "EVAL s 0 x", "EVAL s 3 a b", "EVAL s -1 a", "EVAL s 1x a", "EVAL s 01 a",
    "EVAL s 4294967297 a", "EVAL s 4294967297x a", "EVAL s 99999999999999999999x a", "EVAL s ' 1' a", "EVAL s +1 a",
    "EVALSHA sha 1 a", "EVAL_RO s 1 a", "FCALL f 2 a b", "FCALL_RO f 1 a", "ZUNIONSTORE d 2 a b WEIGHTS 1 2",
    "ZINTERSTORE d 3 a b", "ZDIFFSTORE d 1 a", "ZUNION 2 a b WITHSCORES", "ZINTERCARD 2 a b LIMIT 1",
    "ZDIFF 1 a", "SINTERCARD 2 a b", "SINTERCARD 0 a", "LMPOP 2 a b LEFT COUNT 2", "BLMPOP 0 2 a b RIGHT",
    "ZMPOP 1 a MIN", "BZMPOP 1 2 a b MAX",
    # keyword
    "XREAD STREAMS a b 0 0", "XREAD COUNT 2 BLOCK 0 STREAMS a 0", "XREAD STREAMS a b 0", "XREAD STREAMS",
    "XREAD COUNT 2 STREAMS streams 0", "XREADGROUP GROUP g c STREAMS a b > >", "XREADGROUP GROUP g c NOACK STREAMS a 0",
    "GEORADIUS k 0 0 1 km STORE d", "GEORADIUS k 0 0 1 km STOREDIST d", "GEORADIUS k 0 0 1 km STORE d STOREDIST e",
    "GEORADIUS k 0 0 1 km STORE", "GEORADIUSBYMEMBER k m 1 km STORE d", "GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 km",
    "MIGRATE h 1 k 0 5000", "MIGRATE h 1 '' 0 5000 KEYS a b", "MIGRATE h 1 k 0 5000 KEYS a b",
    "MIGRATE h 1 '' 0 5000 COPY REPLACE AUTH p KEYS a", "MIGRATE h 1 '' 0 5000 AUTH keys KEYS a",
    "MIGRATE h 1 '' 0 5000 AUTH2 u keys KEYS a b", "MIGRATE h 1 keys 0 5000", "MIGRATE h 1 \x00 0 5000 KEYS a",
    # getkeys procedures
    "SORT k", "SORT k STORE d", "SORT k LIMIT 0 1 STORE d", "SORT k STORE d STORE e", "SORT k BY w_* GET # STORE d",
    "SORT k STORE", "SORT k LIMIT STORE d", "SORT_RO k BY w_*", "BITFIELD k GET u8 0", "BITFIELD k SET u8 0 1",
    "BITFIELD k OVERFLOW WRAP GET u8 0", "BITFIELD k GET u8", "BITFIELD_RO k GET u8 0",
    # no keys, shard channels, containers
    "PING x", "SPUBLISH ch m", "SSUBSCRIBE a b", "CLIENT KILL ID 1", "CONFIG GET x", "NOSUCH a", "GET a b", "OBJECT NOSUCH k", "RESTORE k 0 payload REPLACE", "LMOVE a b LEFT RIGHT", "SMOVE a b m",
]


def words(line):
    """Shell-like splitting: '' is an empty argument, ' 1' keeps its space."""
    return [w.encode() for w in shlex.split(line)]


def run_tool(mode, lines):
    p = subprocess.run([TOOL, mode], input=b"".join(l + b"\n" for l in lines), capture_output=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError(f"kv_command_keys {mode} failed: {p.stderr!r}")
    out = p.stdout.decode().split("\n")
    return out[:len(lines)]


def turret_answers(argvs):
    return run_tool("keys", [b" ".join(a.hex().encode() for a in argv) for argv in argvs])


def expected_from_turret(argv, line):
    """kv_command_keys's line as the GETKEYSANDFLAGS reply it stands for."""
    if line in ERRORS:
        return ERRORS[line]
    status, *refs = line.split(" ")
    assert status in ("complete", "incomplete"), line
    out = []
    for r in refs:
        pos, flags = r.split(":")
        bits = int(flags, 16)
        out.append([argv[int(pos)], [n for i, n in enumerate(KEY_FLAG_NAMES) if bits & (1 << i)]])
    return out


def from_redis(reply):
    value = harness.parse_reply(reply)
    if isinstance(value, harness.Err):
        return str(value)
    return [[k, sorted(f if isinstance(f, str) else f.decode() for f in flags)] for k, flags in value]


def generated_argvs(commands):
    """For every command (the subcommand of every container): argvs of every length around its arity, drawn from a
    vocabulary of key names, numbers and the keywords key specs and getkeys procedures look for."""
    rng = random.Random(7)
    vocabulary = [b"0", b"1", b"2", b"3", b"-1", b"", b"STREAMS", b"STORE", b"STOREDIST", b"KEYS", b"GET", b"BY",
                  b"LIMIT", b"COUNT", b"BLOCK", b"GROUP", b"NOACK", b"SET", b"INCRBY", b"OVERFLOW", b"u8", b"w_*",
                  b"#", b"1x", b"nosort", b"{t}a", b"FROMMEMBER"]
    out = []
    for name, arity in commands:
        prefix = [p.encode() for p in name.split("|")]
        base = abs(arity)
        for argc in range(max(base - 1, len(prefix), 2), base + 6):  # (GETKEYS needs a command and an argument)
            for _ in range(4):
                rest = []
                for i in range(argc - len(prefix)):
                    rest.append(rng.choice(vocabulary) if rng.random() < 0.4 else b"k%d" % i)
                out.append(prefix + rest)
    return out


class CommandKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not TOOL:
            raise unittest.SkipTest("kv_command_keys not built and $TURRET_KV_COMMAND_KEYS not set")
        cls.redis = harness.start_redis(cls)
        cls.cluster = harness.start_redis(cls, ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])

    def getkeys(self, argvs):
        """redis-server's COMMAND GETKEYSANDFLAGS for each argv (pipelined)."""
        with harness.RespConn(self.redis.port, timeout=60) as c:
            replies = []
            for i in range(0, len(argvs), 500):
                chunk = argvs[i:i + 500]
                c.send(b"".join(harness.encode_command(b"COMMAND", b"GETKEYSANDFLAGS", *a) for a in chunk))
                replies += c.read_replies(len(chunk))
            return [from_redis(r) for r in replies]

    def compare(self, argvs):
        theirs = self.getkeys(argvs)
        ours = turret_answers(argvs)
        mismatches = []
        for argv, line, want in zip(argvs, ours, theirs):
            got = expected_from_turret(argv, line)
            if isinstance(got, list):
                got = [[k, sorted(f)] for k, f in got]
            if got != want:
                mismatches.append(f"{b' '.join(argv)!r}: turret {line!r} -> {got!r}, redis {want!r}")
        self.assertEqual(mismatches, [], "\n".join(mismatches[:40]))

    def test_hand_written_argvs_match_getkeysandflags(self):
        self.compare([words(l) for l in HAND_WRITTEN])

    def test_every_command_matches_getkeysandflags(self):
        with harness.RespConn(self.redis.port) as c:
            c.send(harness.encode_command(b"COMMAND"))
            everything = harness.parse_reply(c.read_reply(timeout=30))
        commands = []
        for entry in everything:
            subs = entry[9]
            if subs:
                commands += [(s[0].decode(), s[1]) for s in subs]
            else:
                commands.append((entry[0].decode(), entry[1]))
        self.assertGreater(len(commands), 300)
        argvs = generated_argvs(commands)
        self.compare(argvs)
        # The generated argvs reach keys through every mechanism, not only errors.
        ours = turret_answers(argvs)
        self.assertGreater(sum(1 for l in ours if l.startswith("complete ")), len(argvs) // 4)

    def test_hash_slots_match_cluster_keyslot(self):
        rng = random.Random(16384)
        keys = [b"foo", b"bar", b"", b"{user1000}.following", b"{user1000}.followers", b"foo{}{bar}",
                b"foo{{bar}}zap", b"{", b"}", b"{}", b"a{b}c{d}e", b"\x00{\xff}", b"123456789"]
        alphabet = b"ab{}\x00\xff\r\n z09"
        for _ in range(3000):
            n = rng.randrange(0, 24)
            keys.append(bytes(rng.choice(alphabet) if rng.random() < 0.5 else rng.randrange(256) for _ in range(n)))
        with harness.RespConn(self.cluster.port, timeout=60) as c:
            c.send(b"".join(harness.encode_command(b"CLUSTER", b"KEYSLOT", k) for k in keys))
            theirs = [harness.parse_reply(r) for r in c.read_replies(len(keys))]
        ours = [int(x) for x in run_tool("slots", [k.hex().encode() for k in keys])]
        mismatches = [(k, a, b) for k, a, b in zip(keys, ours, theirs) if a != b]
        self.assertEqual(mismatches, [])
        self.assertEqual(ours[:2], [12182, 5061])
        self.assertEqual(ours[3], ours[4])


if __name__ == "__main__":
    unittest.main()
