#!/usr/bin/python3
"""Generate services/kv/generated/*.inc from the real redis-server 7.0.

Starts redis-server on a free port (no persistence) and writes, as C++ include files:

- redis_commands.inc: one row per command and subcommand redis-server knows (not only those turretd implements: a
  proxy in front of real Redis servers forwards them all): name, arity, flags, ACL categories, the legacy key range,
  its key specs, the getkeys procedure Redis falls back to, and turret's two columns (see TURRET COLUMNS below).
- redis_key_specs.inc: the key specs of every command (COMMAND INFO's 9th element), in row order.
- redis_replies.inc + redis_replies_N.inc: the exact COMMAND INFO / COMMAND DOCS reply bytes under RESP2 and RESP3
  (HELLO 3), and the HELP replies of containers, only for the commands turretd implements (COMMANDS below).

The output is committed and checked by tests/integration/test_command_table_regen.py, which runs this script into a
temporary directory and diffs. Run it by hand when the command set or these tables change:

    /usr/bin/python3 scripts/gen_commands.py [--out DIR] [--redis-server PATH]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "services", "kv", "generated")
MAX_PART_LINES = 700  # redis_replies_N.inc are cut at command boundaries past this many lines

# Top-level commands turretd implements; containers list the subcommands turretd implements. Their raw COMMAND
# INFO/DOCS bytes are kept, and their order here is the order of COMMAND, COMMAND LIST and COMMAND DOCS.
COMMANDS = {
    # connection
    "ping": None, "echo": None, "quit": None, "select": None, "swapdb": None, "auth": None, "hello": None,
    "reset": None,
    "client": ["id", "setname", "getname", "list", "info", "kill", "reply", "no-evict", "help"],
    # server
    "info": None, "dbsize": None, "flushdb": None, "flushall": None,
    "config": ["get", "set", "resetstat", "help"],
    "command": ["count", "info", "docs", "list", "help"],
    "time": None, "shutdown": None,
    "function": ["flush", "list", "help"],
    # keys
    "del": None, "unlink": None, "exists": None, "type": None, "keys": None, "scan": None, "randomkey": None,
    "rename": None, "renamenx": None, "copy": None, "move": None, "touch": None, "expire": None, "pexpire": None,
    "expireat": None, "pexpireat": None, "ttl": None, "pttl": None, "expiretime": None, "pexpiretime": None,
    "persist": None,
    # strings (h3)
    "get": None, "set": None, "setnx": None, "setex": None, "psetex": None, "getset": None, "getdel": None,
    "getex": None, "mget": None, "mset": None, "msetnx": None, "incr": None, "decr": None, "incrby": None,
    "decrby": None, "incrbyfloat": None, "append": None, "strlen": None, "getrange": None, "setrange": None,
    "substr": None, "lcs": None,
    # bitmap (h3)
    "setbit": None, "getbit": None, "bitcount": None, "bitpos": None, "bitop": None, "bitfield": None,
    "bitfield_ro": None,
    # pubsub
    "subscribe": None, "unsubscribe": None, "psubscribe": None, "punsubscribe": None, "publish": None,
    "pubsub": ["channels", "numsub", "numpat", "help"],
    # transactions
    "multi": None, "exec": None, "discard": None, "watch": None, "unwatch": None,
}

FLAGS = {
    "write": "cmd_write", "readonly": "cmd_readonly", "denyoom": "cmd_denyoom", "admin": "cmd_admin",
    "pubsub": "cmd_pubsub", "noscript": "cmd_noscript", "blocking": "cmd_blocking", "loading": "cmd_loading",
    "stale": "cmd_stale", "skip_monitor": "cmd_skip_monitor", "skip_slowlog": "cmd_skip_slowlog", "fast": "cmd_fast",
    "no_auth": "cmd_no_auth", "may_replicate": "cmd_may_replicate", "no_multi": "cmd_no_multi",
    "allow_busy": "cmd_allow_busy", "module": "cmd_module", "asking": "cmd_asking", "sentinel": "cmd_sentinel",
    "only_sentinel": "cmd_only_sentinel", "no_mandatory_keys": "cmd_no_mandatory_keys", "protected": "cmd_protected",
    "no_async_loading": "cmd_no_async_loading", "movablekeys": "cmd_movablekeys",
}
ACL = ["keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog", "geo",
       "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous", "connection", "transaction",
       "scripting"]
# Key spec flags (Redis's CMD_KEY_*), as COMMAND INFO names them.
KEY_FLAGS = {
    "RO": "key_ro", "RW": "key_rw", "OW": "key_ow", "RM": "key_rm", "access": "key_access", "update": "key_update",
    "insert": "key_insert", "delete": "key_delete", "not_key": "key_not_key", "incomplete": "key_incomplete",
    "variable_flags": "key_variable_flags",
}

# The getkeys procedure Redis 7.0 falls back to when a command's key specs are incomplete, invalid for the argv, or
# have variable flags (src/db.c; the commands' JSON "get_keys_function"). COMMAND INFO does not say which commands
# have one (SET and BITFIELD are not even "movablekeys"), hence this table. Values name turret::kv::getkeys_proc:
#   numkeys1       numkeys at argv[1], keys from argv[2]       (sintercard, zunion/zinter/zdiff/zintercard, lmpop, zmpop)
#   numkeys2       numkeys at argv[2], keys from argv[3]       (eval*, fcall*, blmpop, bzmpop)
#   dest_numkeys2  destination argv[1], numkeys at argv[2]     (zunionstore, zinterstore, zdiffstore)
#   sort, sort_ro, migrate, georadius, xread, set, bitfield    (their own parsers)
GETKEYS = {
    "sintercard": "numkeys1", "zunion": "numkeys1", "zinter": "numkeys1", "zdiff": "numkeys1",
    "zintercard": "numkeys1", "lmpop": "numkeys1", "zmpop": "numkeys1",
    "eval": "numkeys2", "evalsha": "numkeys2", "eval_ro": "numkeys2", "evalsha_ro": "numkeys2", "fcall": "numkeys2",
    "fcall_ro": "numkeys2", "blmpop": "numkeys2", "bzmpop": "numkeys2",
    "zunionstore": "dest_numkeys2", "zinterstore": "dest_numkeys2", "zdiffstore": "dest_numkeys2",
    "sort": "sort", "sort_ro": "sort_ro", "migrate": "migrate", "georadius": "georadius",
    "georadiusbymember": "georadius", "xread": "xread", "xreadgroup": "xread", "set": "set", "bitfield": "bitfield",
}

# ---------------------------------------------------------------------------------------------------------------------
# TURRET COLUMNS
#
# idempotent: sending the command twice in a row, with nothing in between, has the same effect on the keyspace (and
# on the server) AND the same reply as sending it once, so a retry layer may resend it after a failure whose outcome
# it cannot know (connection lost after the write). Two readings of the rule:
#   - A read is idempotent: a repeat returns a fresh reading of the same data. Replies that depend on time or chance
#     (TTL, RANDOMKEY, SRANDMEMBER, ACL GENPASS) count as the same reply.
#   - Relative expirations (SET ... EX, EXPIRE, GETEX EX) count as the same effect: a repeat sets the deadline the
#     same distance from its own execution, as if the one command had arrived that much later.
# The rules, applied in this order (the generator fails on a command no rule covers):
#   1. containers (CLIENT, CONFIG, ...: no effect of their own): idempotent.
#   2. IDEMPOTENT_BY_ARGS: idempotent or not depending on the arguments; turret::kv::is_idempotent() decides per
#      request (services/kv/command_info.cpp), with the reason given here.
#   3. flag readonly: idempotent.
#   4. flag write: not idempotent, unless listed in IDEMPOTENT_WRITES. Counting replies (DEL, SADD, HSET, PERSIST,
#      XTRIM), read-modify-write (INCR, APPEND, LPUSH, SETBIT, GETSET), conditional sets (SETNX, MSETNX, HSETNX),
#      moves (RENAME, LMOVE, SMOVE, MOVE) and pops fail the rule.
#   5. neither readonly nor write (connection, server, admin, pub/sub, scripting): listed in OTHER_IDEMPOTENT or
#      OTHER_NOT_IDEMPOTENT.
IDEMPOTENT_BY_ARGS = {
    "set": "unless NX or GET (NX: OK then nil; GET: the old value then the new one)",
    "expire": "unless NX, GT or LT (NX: 1 then 0; GT/LT compare with the deadline the first one set)",
    "pexpire": "unless NX, GT or LT", "expireat": "unless NX, GT or LT", "pexpireat": "unless NX, GT or LT",
    "copy": "with REPLACE (without: 1 then 0)",
    "restore": "with REPLACE (without: BUSYKEY the second time)", "restore-asking": "with REPLACE",
    "function|load": "with REPLACE (without: 'already exists' the second time)",
    "function|restore": "with the FLUSH or REPLACE policy (APPEND fails the second time)",
    "zadd": "with XX and neither CH nor INCR (adds nothing, replies 0 both times)",
    "bitfield": "when it only has GET (and OVERFLOW) operations",
    "sort": "without STORE (a read); with STORE when the destination is not the sorted key and no BY/GET pattern "
            "reads other keys",
    "georadius": "without STORE/STOREDIST (a read); with one when the destination differs from the source",
    "georadiusbymember": "as georadius",
    "bitop": "when the destination is not one of the sources (BITOP XOR d d x toggles)",
    "sunionstore": "when the destination is not one of the sources", "sinterstore": "as sunionstore",
    "sdiffstore": "as sunionstore", "zunionstore": "as sunionstore (ZUNIONSTORE d 2 d x adds scores again)",
    "zinterstore": "as sunionstore", "zdiffstore": "as sunionstore", "zrangestore": "as sunionstore",
    "geosearchstore": "as sunionstore",
}
IDEMPOTENT_WRITES = {
    "mset", "setex", "psetex", "getex", "setrange", "lset", "hmset", "pfmerge", "xsetid", "xgroup|setid",
    "flushdb", "flushall", "function|flush",
}
OTHER_IDEMPOTENT = {
    "acl|cat", "acl|dryrun", "acl|genpass", "acl|getuser", "acl|help", "acl|list", "acl|load", "acl|log", "acl|save",
    "acl|setuser", "acl|users", "acl|whoami", "asking", "auth",
    "client|caching", "client|getname", "client|getredir", "client|help", "client|id", "client|info", "client|list",
    "client|no-evict", "client|pause", "client|reply", "client|setname", "client|tracking", "client|trackinginfo",
    "client|unpause",
    "cluster|count-failure-reports", "cluster|countkeysinslot", "cluster|flushslots", "cluster|getkeysinslot",
    "cluster|help", "cluster|info", "cluster|keyslot", "cluster|links", "cluster|meet", "cluster|myid",
    "cluster|nodes", "cluster|replicas", "cluster|replicate", "cluster|reset", "cluster|saveconfig",
    "cluster|setslot", "cluster|shards", "cluster|slaves", "cluster|slots",
    "command", "command|count", "command|docs", "command|getkeys", "command|getkeysandflags", "command|help",
    "command|info", "command|list",
    "config|get", "config|help", "config|resetstat", "config|rewrite", "config|set",
    "echo", "function|dump", "function|help", "function|list", "function|stats", "hello", "info", "lastsave",
    "latency|doctor", "latency|graph", "latency|help", "latency|histogram", "latency|history", "latency|latest",
    "memory|doctor", "memory|help", "memory|malloc-stats", "memory|purge", "memory|stats",
    "module|help", "module|list", "object|help", "xgroup|help", "xinfo|help", "pfselftest", "ping",
    "psubscribe", "punsubscribe", "subscribe", "unsubscribe", "ssubscribe", "sunsubscribe",
    "pubsub|channels", "pubsub|help", "pubsub|numpat", "pubsub|numsub", "pubsub|shardchannels",
    "pubsub|shardnumsub",
    "readonly", "readwrite", "reset", "role", "save", "script|exists", "script|flush", "script|help", "script|load",
    "select", "slowlog|get", "slowlog|help", "slowlog|len", "slowlog|reset", "time", "unwatch", "wait", "watch",
}
OTHER_NOT_IDEMPOTENT = {
    "acl|deluser",          # 1 then 0
    "bgrewriteaof", "bgsave",  # "already in progress" the second time
    "client|kill", "client|unblock",  # the second finds nothing
    "cluster|addslots", "cluster|addslotsrange", "cluster|bumpepoch", "cluster|delslots", "cluster|delslotsrange",
    "cluster|failover", "cluster|forget", "cluster|set-config-epoch",
    "debug", "failover", "shutdown", "monitor", "quit",
    "multi", "exec", "discard",  # nested MULTI / EXEC and DISCARD without MULTI are errors
    "eval", "evalsha", "fcall",  # a script may do anything
    "function|kill", "script|kill", "script|debug",
    "latency|reset",        # number of events reset
    "module|load", "module|loadex", "module|unload",
    "publish", "spublish",  # delivered twice
    "psync", "sync", "replconf", "replicaof", "slaveof",  # "Already connected" the second time
}

# session_state: the command reads or changes the state of the connection it runs on (selected database,
# transaction, subscriptions, protocol, authentication, client name/reply mode/tracking, cluster redirection
# state), so it must run on the client's own connection: a proxy pins it (and what follows) to one upstream
# connection, and a retry on another connection would not do the same thing.
SESSION_STATE = {
    "select", "multi", "exec", "discard", "watch", "unwatch",
    "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe",
    "hello", "auth", "reset", "quit", "readonly", "readwrite", "asking", "monitor", "wait",
    "client|setname", "client|getname", "client|id", "client|info", "client|reply", "client|tracking",
    "client|trackinginfo", "client|getredir", "client|caching", "client|no-evict",
    "acl|whoami", "script|debug", "sync", "psync", "replconf",
}

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def _line_end(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return i
            d = self.sock.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def _parse(self, pos):
        """Returns (value, end). value: (type, payload, raw_start, raw_end, children)."""
        e = self._line_end(pos)
        t = self.buf[pos:pos + 1]
        line = self.buf[pos + 1:e]
        nxt = e + 2
        if t in (b"+", b"-", b":", b",", b"#", b"(", b"_"):
            return (t, line, pos, nxt, None), nxt
        if t in (b"$", b"="):
            n = int(line)
            if n < 0:
                return (t, None, pos, nxt, None), nxt
            self._need(nxt + n + 2)
            return (t, self.buf[nxt:nxt + n], pos, nxt + n + 2, None), nxt + n + 2
        if t in (b"*", b"~", b">", b"%", b"|"):
            n = int(line)
            if n < 0:
                return (t, None, pos, nxt, None), nxt
            if t in (b"%", b"|"):
                n *= 2
            kids = []
            p = nxt
            for _ in range(n):
                v, p = self._parse(p)
                kids.append(v)
            return (t, None, pos, p, kids), p
        raise ValueError("bad RESP type %r" % t)

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        v, end = self._parse(0)
        raw = self.buf[:end]
        self.buf = self.buf[end:]
        return v, raw


def raw_of(raw_reply, node):
    return raw_reply[node[2]:node[3]]


def _header(raw_reply, node):
    """The bytes of an aggregate's header line ("*16\r\n")."""
    return raw_reply[node[2]:raw_reply.index(b"\r\n", node[2]) + 2]


def canonical_info(raw_reply, node):
    """A COMMAND INFO element with its subcommands (element 10) sorted by name. redis-server lists a container's
    subcommands in the order of its dict, which changes from run to run; sorting makes the output reproducible (any
    order is one redis-server could send; the differential tests normalise it)."""
    kids = node[4]
    if len(kids) < 10 or not kids[9][4]:
        return raw_of(raw_reply, node)
    subs = sorted(kids[9][4], key=lambda k: k[4][0][1])
    return (raw_reply[node[2]:kids[9][2]] + _header(raw_reply, kids[9]) +
            b"".join(canonical_info(raw_reply, k) for k in subs) + raw_reply[kids[9][3]:node[3]])


def canonical_docs(raw_reply, node):
    """A COMMAND DOCS document (a map, or a flat array under RESP2) with its "subcommands" map sorted by name."""
    kids = node[4]
    out = _header(raw_reply, node)
    for i in range(0, len(kids), 2):
        key, val = kids[i], kids[i + 1]
        out += raw_of(raw_reply, key)
        if key[1] == b"subcommands":
            pairs = sorted(((val[4][j], val[4][j + 1]) for j in range(0, len(val[4]), 2)), key=lambda p: p[0][1])
            out += _header(raw_reply, val) + b"".join(
                raw_of(raw_reply, k) + canonical_docs(raw_reply, v) for k, v in pairs)
        else:
            out += raw_of(raw_reply, val)
    return out


def c_literal(b):
    out = []
    for ch in b:
        c = chr(ch)
        if c == "\\":
            out.append("\\\\")
        elif c == '"':
            out.append('\\"')
        elif c == "\r":
            out.append("\\r")
        elif c == "\n":
            out.append("\\n")
        elif c == "?":
            out.append("\\?")  # no trigraphs
        elif 32 <= ch < 127:
            out.append(c)
        else:
            out.append("\\%03o" % ch)
    s = "".join(out)
    # split long literals at \n boundaries for readability
    parts = s.split("\\r\\n")
    lines, cur = [], ""
    for i, p in enumerate(parts):
        piece = p + ("\\r\\n" if i < len(parts) - 1 else "")
        if len(cur) + len(piece) > 110 and cur:
            lines.append(cur)
            cur = ""
        cur += piece
    if cur or not lines:
        lines.append(cur)
    return "\n      ".join('"%s"' % l for l in lines) + "sv"


def conv(node):
    """A parsed RESP node -> Python value (maps -> dict, aggregates -> list, strings -> str, integers -> int)."""
    t, payload, _, _, kids = node
    if kids is None:
        if t == b":":
            return int(payload)
        return None if payload is None else payload.decode()
    if t == b"%":
        return {conv(kids[i]): conv(kids[i + 1]) for i in range(0, len(kids), 2)}
    return [conv(k) for k in kids]


def key_spec_row(spec):
    """One key spec map (COMMAND INFO, RESP3) -> the arguments of TURRET_KV_KEY_SPEC."""
    flags = []
    for f in spec["flags"]:
        if f not in KEY_FLAGS:
            raise RuntimeError("unknown key spec flag " + f)
        flags.append(KEY_FLAGS[f])
    bs, fk = spec["begin_search"], spec["find_keys"]
    if bs["type"] == "index":
        begin = "index(%d)" % bs["spec"]["index"]
    elif bs["type"] == "keyword":
        begin = 'keyword("%s", %d)' % (bs["spec"]["keyword"], bs["spec"]["startfrom"])
    elif bs["type"] == "unknown":
        begin = "unknown()"
    else:
        raise RuntimeError("unknown begin_search type " + bs["type"])
    if fk["type"] == "range":
        find = "range(%d, %d, %d)" % (fk["spec"]["lastkey"], fk["spec"]["keystep"], fk["spec"]["limit"])
    elif fk["type"] == "keynum":
        find = "keynum(%d, %d, %d)" % (fk["spec"]["keynumidx"], fk["spec"]["firstkey"], fk["spec"]["keystep"])
    elif fk["type"] == "unknown":
        find = "unknown()"
    else:
        raise RuntimeError("unknown find_keys type " + fk["type"])
    return "%s, %s, %s" % (" | ".join(flags) or "0", begin, find)


def turret_columns(name, flags, is_container):
    """The two turret columns of one command, as TURRET_KV_COMMAND's last argument."""
    if is_container:
        idem = "turret_idempotent"
    elif name in IDEMPOTENT_BY_ARGS:
        idem = "turret_idempotent_by_args"
    elif "readonly" in flags:
        idem = "turret_idempotent"
    elif "write" in flags:
        idem = "turret_idempotent" if name in IDEMPOTENT_WRITES else ""
    elif name in OTHER_IDEMPOTENT:
        idem = "turret_idempotent"
    elif name in OTHER_NOT_IDEMPOTENT:
        idem = ""
    else:
        raise RuntimeError("classify '%s' in OTHER_IDEMPOTENT or OTHER_NOT_IDEMPOTENT" % name)
    cols = [c for c in (idem, "turret_session_state" if name in SESSION_STATE else "") if c]
    return " | ".join(cols) or "0"


def check_tables(known):
    """Every name in the hand-written tables must be a command redis-server knows, and the tables must agree."""
    for table in (IDEMPOTENT_BY_ARGS, IDEMPOTENT_WRITES, OTHER_IDEMPOTENT, OTHER_NOT_IDEMPOTENT, SESSION_STATE,
                  GETKEYS):
        for n in table:
            if n not in known:
                raise RuntimeError("table names '%s', which redis-server does not know" % n)
    both = OTHER_IDEMPOTENT & OTHER_NOT_IDEMPOTENT
    if both:
        raise RuntimeError("classified both ways: %s" % sorted(both))
    for n, flags in known.items():
        if n in IDEMPOTENT_WRITES and "write" not in flags:
            raise RuntimeError("IDEMPOTENT_WRITES lists '%s', which is not a write" % n)
        if (n in OTHER_IDEMPOTENT or n in OTHER_NOT_IDEMPOTENT) and ("write" in flags or "readonly" in flags):
            raise RuntimeError("OTHER_* lists '%s', which is flagged %s" % (n, flags))


def all_commands(c3):
    """Every command and subcommand: COMMAND under RESP3, subcommands nested in their container (element 10)."""
    v, _ = c3.call("COMMAND")
    rows = {}

    def walk(e, parent):
        name, arity, flags, first, last, step, acl, _tips, specs, subs = e
        rows[name] = dict(name=name, arity=arity, flags=flags, first=first, last=last, step=step,
                          acl=[a.lstrip("@") for a in acl], specs=specs, subs=[s[0] for s in subs], parent=parent)
        for s in subs:
            walk(s, name)

    for e in conv(v):
        walk(e, None)
    return rows


def ordered_names(rows):
    """Implemented commands first, in COMMANDS order (the order of COMMAND/COMMAND LIST replies), then the others
    sorted; each container is followed by its subcommands (implemented ones first)."""
    out = []
    tops = list(COMMANDS) + sorted(n for n, r in rows.items() if r["parent"] is None and n not in COMMANDS)
    for top in tops:
        out.append(top)
        mine = [top + "|" + s for s in (COMMANDS.get(top) or [])]
        out += mine + sorted(s for s in rows[top]["subs"] if s not in mine)
    return out


def write_file(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT_DIR, help="directory for the .inc files (default: %(default)s)")
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    opts = ap.parse_args()

    port = free_port()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen([opts.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c2 = Conn(port)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        c3 = Conn(port)
        c3.call("HELLO", "3")
        version = c2.call("INFO", "server")[0][1].decode()
        version = [l for l in version.split("\r\n") if l.startswith("redis_version:")][0].split(":")[1]

        meta = all_commands(c3)
        names = ordered_names(meta)
        assert sorted(names) == sorted(meta), "every command exactly once"
        check_tables({n: r["flags"] for n, r in meta.items()})
        for top, subs in COMMANDS.items():
            for n in [top] + [top + "|" + s for s in subs or []]:
                if n not in meta:
                    raise RuntimeError("redis does not know " + n)

        replies = []
        for n in names:
            top, _, sub = n.partition("|")
            if top not in COMMANDS or (sub and sub not in (COMMANDS[top] or [])):
                continue
            i2, r_i2 = c2.call("COMMAND", "INFO", n)
            i3, r_i3 = c3.call("COMMAND", "INFO", n)
            d2, r_d2 = c2.call("COMMAND", "DOCS", n)
            d3, r_d3 = c3.call("COMMAND", "DOCS", n)
            # DOCS reply: RESP2 *2 name doc ; RESP3 %1 name doc
            replies.append((n, canonical_info(r_i2, i2[4][0]), canonical_info(r_i3, i3[4][0]),
                            canonical_docs(r_d2, d2[4][1]), canonical_docs(r_d3, d3[4][1])))

        helps = []
        for top, subs in COMMANDS.items():
            if subs and "help" in subs:
                _, r2 = c2.call(top, "HELP")
                _, r3 = c3.call(top, "HELP")
                helps.append((top, r2, r3))
    finally:
        proc.terminate()
        proc.wait(10)

    os.makedirs(opts.out, exist_ok=True)
    stamp = "// GENERATED by scripts/gen_commands.py from redis-server %s. Do not edit." % version

    # --- redis_commands.inc and redis_key_specs.inc -----------------------------------------------------------------
    cmd_lines = [stamp,
                 "// Every command and subcommand of redis-server (subcommands \"container|sub\" follow their container).",
                 "// TURRET_KV_COMMAND(name, arity, flags, acl_categories, first_key, last_key, key_step,",
                 "//                   first_key_spec, key_spec_count, getkeys, turret_columns)",
                 "// first_key_spec/key_spec_count: the command's rows in redis_key_specs.inc. getkeys: the procedure",
                 "// Redis falls back to (turret::kv::getkeys_proc). turret_columns: see TURRET COLUMNS in the script.",
                 ""]
    spec_lines = [stamp,
                  "// Key specs (COMMAND INFO), in the order of redis_commands.inc.",
                  "// TURRET_KV_KEY_SPEC(flags, begin_search, find_keys)", ""]
    nspecs = 0
    for n in names:
        r = meta[n]
        for f in r["flags"]:
            if f not in FLAGS:
                raise RuntimeError("unknown flag " + f)
        for a in r["acl"]:
            if a not in ACL:
                raise RuntimeError("unknown acl category " + a)
        fl = " | ".join(FLAGS[x] for x in r["flags"]) or "0"
        ac = " | ".join("acl_" + x for x in r["acl"]) or "0"
        cols = turret_columns(n, r["flags"], bool(r["subs"]))
        cmd_lines.append('TURRET_KV_COMMAND("%s", %d, %s, %s, %d, %d, %d, %d, %d, %s, %s)' % (
            n, r["arity"], fl, ac, r["first"], r["last"], r["step"], nspecs, len(r["specs"]),
            GETKEYS.get(n, "none"), cols))
        if r["specs"]:
            spec_lines.append("// %s" % n)
        for s in r["specs"]:
            spec_lines.append("TURRET_KV_KEY_SPEC(%s)" % key_spec_row(s))
            nspecs += 1
    write_file(os.path.join(opts.out, "redis_commands.inc"), cmd_lines)
    write_file(os.path.join(opts.out, "redis_key_specs.inc"), spec_lines)

    # --- redis_replies.inc + parts ------------------------------------------------------------------------------------
    blocks = []
    for (n, i2, i3, d2, d3) in replies:
        blocks.append(("R", ['TURRET_KV_REPLIES("%s",' % n, "    %s," % c_literal(i2), "    %s," % c_literal(i3),
                             "    %s," % c_literal(d2), "    %s)" % c_literal(d3)]))
    for top, r2, r3 in helps:
        blocks.append(("H", ['TURRET_KV_HELP("%s",' % top, "    %s," % c_literal(r2), "    %s)" % c_literal(r3)]))
    parts, cur, cur_len = [], [], 0
    for kind, text in blocks:
        n = sum(t.count("\n") + 1 for t in text)
        if cur and cur_len + n > MAX_PART_LINES:
            parts.append(cur)
            cur, cur_len = [], 0
        cur.append((kind, text))
        cur_len += n
    parts.append(cur)
    index = [stamp,
             "// Raw reply bytes of the commands turretd implements, split into parts of at most ~%d lines." %
             MAX_PART_LINES,
             "// TURRET_KV_REPLIES(name, info_resp2, info_resp3, docs_resp2, docs_resp3): one COMMAND INFO / DOCS",
             "//   reply element, exactly as redis-server sends it.",
             "// TURRET_KV_HELP(container, help_resp2, help_resp3): the container's HELP reply.", ""]
    for i, part in enumerate(parts, 1):
        fname = "redis_replies_%d.inc" % i
        index.append("#include \"%s\"" % fname)
        lines = [stamp, "// Part %d of redis_replies.inc." % i, ""]
        for kind, macro in (("R", "TURRET_KV_REPLIES"), ("H", "TURRET_KV_HELP")):
            body = [l for k, text in part if k == kind for l in text]
            if body:
                lines += ["#ifdef %s" % macro] + body + ["#endif"]
        write_file(os.path.join(opts.out, fname), lines)
    write_file(os.path.join(opts.out, "redis_replies.inc"), index)
    print("wrote %s (%d commands, %d key specs, %d with replies in %d parts; redis %s)" % (
        opts.out, len(names), nspecs, len(replies), len(parts), version))


if __name__ == "__main__":
    sys.exit(main())
