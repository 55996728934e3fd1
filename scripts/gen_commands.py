#!/usr/bin/python3
"""Generate services/kv/generated/redis_commands.inc from the real redis-server 7.0.

Starts redis-server on a free port (no persistence), asks it COMMAND INFO and COMMAND DOCS for every command and
subcommand turretd implements, under RESP2 and RESP3 (HELLO 3), plus the HELP replies of the container commands,
and writes the metadata (arity, flags, key positions, ACL categories) and the exact raw reply bytes as a C++
include file. The output is committed; run this by hand only when the command set changes:

    /usr/bin/python3 scripts/gen_commands.py
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "services", "kv", "generated", "redis_commands.inc")

# Top-level commands turretd implements; containers list the subcommands turretd implements.
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


def info_fields(node):
    """COMMAND INFO entry (RESP2 parse) -> metadata."""
    k = node[4]
    name = k[0][1].decode()
    arity = int(k[1][1])
    flags = [f[1].decode() for f in k[2][4]]
    first, last, step = int(k[3][1]), int(k[4][1]), int(k[5][1])
    acl = [a[1].decode().lstrip("@") for a in k[6][4]]
    return name, arity, flags, first, last, step, acl


def main():
    port = free_port()
    tmp = tempfile.mkdtemp()
    proc = subprocess.Popen(["/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
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

        names = []
        for top, subs in COMMANDS.items():
            names.append(top)
            for s in subs or []:
                names.append(top + "|" + s)

        rows = []
        for n in names:
            i2, r_i2 = c2.call("COMMAND", "INFO", n)
            i3, r_i3 = c3.call("COMMAND", "INFO", n)
            d2, r_d2 = c2.call("COMMAND", "DOCS", n)
            d3, r_d3 = c3.call("COMMAND", "DOCS", n)
            e2 = i2[4][0]
            if e2[1] is None and e2[4] is None:
                raise RuntimeError("redis does not know " + n)
            name, arity, flags, first, last, step, acl = info_fields(e2)
            assert name == n, (name, n)
            info2 = raw_of(r_i2, e2)
            info3 = raw_of(r_i3, i3[4][0])
            # DOCS reply: RESP2 *2 name doc ; RESP3 %1 name doc
            docs2 = raw_of(r_d2, d2[4][1])
            docs3 = raw_of(r_d3, d3[4][1])
            for f in flags:
                if f not in FLAGS:
                    raise RuntimeError("unknown flag " + f)
            for a in acl:
                if a not in ACL:
                    raise RuntimeError("unknown acl category " + a)
            rows.append((n, arity, flags, first, last, step, acl, info2, info3, docs2, docs3))

        helps = []
        for top, subs in COMMANDS.items():
            if subs and "help" in subs:
                _, r2 = c2.call(top, "HELP")
                _, r3 = c3.call(top, "HELP")
                helps.append((top, r2, r3))
    finally:
        proc.terminate()
        proc.wait(10)

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("// GENERATED by scripts/gen_commands.py from redis-server %s. Do not edit.\n" % version)
        f.write("// TURRET_KV_COMMAND(name, arity, flags, first_key, last_key, key_step, acl_categories,\n")
        f.write("//                   info_resp2, info_resp3, docs_resp2, docs_resp3)\n")
        f.write("// TURRET_KV_HELP(container, help_resp2, help_resp3)\n")
        f.write("// Raw bytes are one COMMAND INFO / COMMAND DOCS reply element, exactly as redis-server sends it.\n")
        f.write("// Subcommands are named \"container|sub\" and follow their container.\n\n")
        f.write("#ifdef TURRET_KV_COMMAND\n")
        for (n, arity, flags, first, last, step, acl, i2, i3, d2, d3) in rows:
            fl = " | ".join(FLAGS[x] for x in flags) or "0"
            ac = " | ".join("acl_" + x for x in acl) or "0"
            f.write('TURRET_KV_COMMAND("%s", %d, %s, %d, %d, %d, %s,\n' % (n, arity, fl, first, last, step, ac))
            f.write("    %s,\n" % c_literal(i2))
            f.write("    %s,\n" % c_literal(i3))
            f.write("    %s,\n" % c_literal(d2))
            f.write("    %s)\n" % c_literal(d3))
        f.write("#endif\n\n#ifdef TURRET_KV_HELP\n")
        for top, r2, r3 in helps:
            f.write('TURRET_KV_HELP("%s",\n    %s,\n    %s)\n' % (top, c_literal(r2), c_literal(r3)))
        f.write("#endif\n")
    print("wrote %s (%d commands, redis %s)" % (OUT, len(rows), version))


if __name__ == "__main__":
    sys.exit(main())
