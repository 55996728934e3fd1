"""Differential runner: execute a command script against two servers in lockstep and compare the reply bytes.

Script format (tests/differential/*.txt), one step per line; blank lines and lines starting with `#` are ignored:

  SET key "va\\x00lue"        a command: sent as a RESP multibulk on the current connection; one reply is read from
                              each server and the two byte strings must be identical. Tokens are separated by blanks;
                              "double quotes" take C escapes (\\xHH \\r \\n \\t \\0 \\\\ \\"), 'single quotes' are literal,
                              a quoted token followed by *N (no blank) repeats it N times: "ab"*1000, and
                              pieces glued to a quoted token (quoted or bare, no blank) join it: "a*"*1000b.
                              SUBSCRIBE/PSUBSCRIBE/UNSUBSCRIBE/PUNSUBSCRIBE with n arguments read n replies.
  !conn NAME                  switch to connection NAME (opened on first use; the first one is "main").
  !replies N                  the next command (or !raw) reads N replies instead of the default.
  !norm NAME [ARGS...]        the next command's replies are compared after normaliser NAME (see NORMALISERS):
                              for replies that legitimately differ (ids, versions, time, order, cursors).
  !pipeline ... !end          the commands between are encoded into ONE write; all replies are then read in order.
  !raw N "bytes"              send raw bytes (quoted, with escapes; several quoted tokens are concatenated) and
                              read N replies (N may be 0).
  !read N                     read N more replies (push messages, pub/sub messages) on the current connection.
  !closed                     both servers must close the current connection (reopened on its next use).
  !silent [SECONDS]           nothing at all must arrive on the current connection within SECONDS (default 0.3).
  !close                      the client closes the current connection.
  !sleep SECONDS              wait (expiry tests).
  !server OPTION VALUE        (top of a script) run this script on its own pair of servers started with OPTION:
                              requirepass (see SERVER_OPTIONS).

Each mismatch is reported with the script line, the command and both byte strings.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import harness
from harness import ConnectionClosed, ReplyTimeout, RespConn, parse_reply

# ---------------------------------------------------------------------------------------------------------------
# tokenizer


def unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "x" and i + 3 < len(s) + 0 and re.fullmatch(r"[0-9a-fA-F]{2}", s[i + 2:i + 4] or ""):
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            out += {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\", '"': b'"', "'": b"'",
                    "a": b"\a", "b": b"\b"}.get(n, ("\\" + n).encode())
            i += 2
            continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def _quoted(line: str, i: int) -> tuple[bytes, int]:
    """The quoted piece starting at line[i] (with its optional *N repeat) and the index just after it."""
    q = line[i]
    n = len(line)
    j = i + 1
    buf = []
    while j < n and line[j] != q:
        if q == '"' and line[j] == "\\" and j + 1 < n:
            buf.append(line[j:j + 2])
            j += 2
            continue
        buf.append(line[j])
        j += 1
    if j >= n:
        raise ValueError(f"unbalanced quote in: {line}")
    raw = "".join(buf)
    tok = unescape(raw) if q == '"' else raw.encode()
    j += 1
    m = re.match(r"\*(\d+)", line[j:])
    if m:
        tok = tok * int(m.group(1))
        j += len(m.group(0))
    return tok, j


def tokenize(line: str) -> list[bytes]:
    toks: list[bytes] = []
    i = 0
    n = len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        if line[i] in "\"'":
            # a quoted piece, then more pieces glued to it (quoted or bare) up to the next blank: "a*"*1000b
            tok, i = _quoted(line, i)
            while i < n and not line[i].isspace():
                if line[i] in "\"'":
                    piece, i = _quoted(line, i)
                else:
                    j = i
                    while j < n and not line[j].isspace() and line[j] not in "\"'":
                        j += 1
                    piece, i = line[i:j].encode(), j
                tok += piece
            toks.append(tok)
            continue
        j = i
        while j < n and not line[j].isspace():
            j += 1
        toks.append(line[i:j].encode())
        i = j
    return toks


# ---------------------------------------------------------------------------------------------------------------
# normalisers: reply bytes -> canonical value, computed independently for each server and then compared.


def _bulk_items(v):
    return [x for x in v] if isinstance(v, list) else v


def norm_int_range(data: bytes, lo: str, hi: str):
    """An integer reply within [lo, hi] (TTL and friends) -> 'int in range'."""
    if data.startswith(b":") and int(lo) <= int(data[1:-2]) <= int(hi):
        return f"integer in [{lo},{hi}]"
    return data


def norm_sorted(data: bytes):
    """An array (or set) whose order is unspecified (KEYS): compare as a sorted list (with the type byte)."""
    v = parse_reply(data)
    if isinstance(v, list):
        return (data[:1], sorted(v))
    if isinstance(v, set):
        return (data[:1], sorted(v))
    return data


def norm_scan(data: bytes):
    """SCAN reply [cursor, keys]: cursor -> 0 / nonzero, keys sorted."""
    v = parse_reply(data)
    if isinstance(v, list) and len(v) == 2 and isinstance(v[1], list):
        return ("0" if v[0] == b"0" else "nonzero", sorted(v[1]))
    return data


def norm_oneof(data: bytes, *choices: str):
    """A bulk reply that must be one of the choices (RANDOMKEY)."""
    v = parse_reply(data)
    if isinstance(v, bytes) and v.decode("utf-8", "replace") in choices:
        return f"one of {choices}"
    return data


def norm_shape(data: bytes):
    """Structure only: RESP type bytes and aggregate sizes, scalars replaced by their type."""
    def walk(v):
        if isinstance(v, list):
            return [type(v).__name__] + [walk(x) for x in v]
        if isinstance(v, dict):
            return ["dict", len(v)]
        if isinstance(v, set):
            return ["set", len(v)]
        return type(v).__name__
    return (data[:1], walk(parse_reply(data)))


def norm_type(data: bytes):
    """Only the RESP type of the reply (e.g. an integer whose value is implementation-defined: CLIENT ID)."""
    return data[:1]


def norm_time(data: bytes):
    """TIME: two bulk strings of digits, seconds within 5 s of the test's clock."""
    v = parse_reply(data)
    if (isinstance(v, list) and len(v) == 2 and all(isinstance(x, bytes) and x.isdigit() for x in v)
            and abs(int(v[0]) - time.time()) < 5 and 0 <= int(v[1]) < 1_000_000):
        return "time"
    return data


HELLO_VOLATILE = {b"id", b"version"}


def norm_hello(data: bytes):
    """HELLO: map (RESP3) or flat array (RESP2); values of id and version are implementation-defined."""
    v = parse_reply(data)
    if isinstance(v, dict):
        return (data[:1], {k: ("*" if k in HELLO_VOLATILE else val) for k, val in v.items()})
    if isinstance(v, list) and len(v) % 2 == 0:
        out = []
        for k, val in zip(v[0::2], v[1::2]):
            out += [k, "*" if k in HELLO_VOLATILE else val]
        return (data[:1], out)
    return data


CLIENT_KEEP = {"name", "db", "sub", "psub", "ssub", "multi", "flags", "cmd", "user", "resp", "redir"}


def _client_line(line: str):
    fields = [f.split("=", 1) for f in line.split(" ") if f]
    return [(k, v if k in CLIENT_KEEP else "*") for k, v in fields]


def norm_client(data: bytes):
    """CLIENT LIST / CLIENT INFO: the same field names in the same order; values compared only for
    name, db, sub, psub, ssub, multi, flags, cmd, user, resp, redir (ids, addresses, ages, buffers differ)."""
    v = parse_reply(data)
    if isinstance(v, bytes):
        lines = [l for l in v.decode("utf-8", "replace").split("\n") if l]
        return (data[:1], sorted(_client_line(l) for l in lines), v.endswith(b"\n"))
    return data


def norm_info(data: bytes):
    """INFO: the same sections ("# Name" headers, in order); every other line is `field:value`; keyspace lines
    compared without avg_ttl. Fields and values otherwise depend on the server."""
    v = parse_reply(data)
    if not isinstance(v, bytes):
        return data
    sections, bad, keyspace = [], [], []
    for line in v.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        if line.startswith("# "):
            sections.append(line)
        elif re.fullmatch(r"db\d+:keys=\d+,expires=\d+(,avg_ttl=\d+)?", line):
            keyspace.append(line.split(",avg_ttl")[0])
        elif not re.fullmatch(r"[a-z0-9_\-]+:.*", line):
            bad.append(line)
    return (data[:1], sections, keyspace, bad, v.endswith(b"\r\n"))


# Commands turretd must list in COMMAND LIST / answer COMMAND INFO for (issue 2).
REQUIRED_COMMANDS = set("""ping echo quit select swapdb auth hello reset client info dbsize flushdb flushall config
command time shutdown function del unlink exists type keys scan randomkey rename renamenx copy move touch expire
pexpire expireat pexpireat ttl pttl expiretime pexpiretime persist get set setnx setex psetex getset getdel getex
mget mset msetnx incr decr incrby decrby incrbyfloat append strlen getrange setrange substr lcs setbit getbit
bitcount bitpos bitop bitfield bitfield_ro subscribe unsubscribe psubscribe punsubscribe publish pubsub multi exec
discard watch unwatch""".split())


def norm_command_list(data: bytes):
    """COMMAND LIST: an array of bulk names that includes every command of issue 2 (Redis has more)."""
    v = parse_reply(data)
    if isinstance(v, list) and all(isinstance(x, bytes) for x in v):
        names = {x.decode().lower() for x in v}
        return ("array of names", sorted(REQUIRED_COMMANDS - names))
    return data


def norm_count(data: bytes, minimum: str = "0"):
    """An integer reply >= minimum (COMMAND COUNT, DBSIZE after active expiry...)."""
    if data.startswith(b":") and int(data[1:-2]) >= int(minimum):
        return f"integer >= {minimum}"
    return data


def norm_command_info(data: bytes):
    """COMMAND INFO: Redis lists a container command's subcommands (element 10) in hash order, which changes from
    process to process: compare them sorted by name. Everything else byte-exact (as parsed values)."""
    v = parse_reply(data)
    if not isinstance(v, list):
        return data

    def fix(entry):
        if isinstance(entry, list) and len(entry) >= 10 and isinstance(entry[9], list):
            entry = list(entry)
            entry[9] = sorted((fix(x) for x in entry[9]), key=lambda e: e[0] if isinstance(e, list) else b"")
        return entry
    return (data[:1], [fix(e) for e in v])


NORMALISERS = {
    "command_info": norm_command_info,
    "int_range": norm_int_range,
    "sorted": norm_sorted,
    "scan": norm_scan,
    "oneof": norm_oneof,
    "shape": norm_shape,
    "type": norm_type,
    "time": norm_time,
    "hello": norm_hello,
    "client": norm_client,
    "info": norm_info,
    "command_list": norm_command_list,
    "count": norm_count,
}

# ---------------------------------------------------------------------------------------------------------------
# script


@dataclass
class Step:
    line: int
    text: str
    kind: str                 # cmd, raw, read, closed, silent, close, sleep, conn, pipeline
    conn: str = "main"
    payload: bytes = b""
    replies: int = 1
    norm: tuple | None = None
    arg: float = 0.0
    cmds: list = field(default_factory=list)   # pipeline: list of (line, text, bytes, replies)


SUB_COMMANDS = {b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe", b"ssubscribe", b"sunsubscribe"}


def default_replies(toks: list[bytes]) -> int:
    if toks and toks[0].lower() in SUB_COMMANDS and len(toks) > 1:
        return len(toks) - 1
    return 1


def parse_script(text: str) -> list[Step]:
    steps: list[Step] = []
    conn = "main"
    pending_replies = None
    pending_norm = None
    pipeline: Step | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            word, _, rest = line[1:].partition(" ")
            rest = rest.strip()
            if word == "server":  # per-script server options: handled by test_differential (server_options)
                continue
            if word == "conn":
                conn = rest
            elif word == "replies":
                pending_replies = int(rest)
            elif word == "norm":
                parts = rest.split()
                if parts[0] not in NORMALISERS:
                    raise ValueError(f"line {lineno}: unknown normaliser {parts[0]}")
                pending_norm = tuple(parts)
            elif word == "pipeline":
                pipeline = Step(lineno, line, "pipeline", conn)
            elif word == "end":
                if pipeline is None:
                    raise ValueError(f"line {lineno}: !end without !pipeline")
                steps.append(pipeline)
                pipeline = None
            elif word == "raw":
                n, _, data = rest.partition(" ")
                payload = b"".join(tokenize(data))
                steps.append(Step(lineno, line, "raw", conn, payload, int(n), pending_norm))
                pending_norm = None
            elif word == "read":
                steps.append(Step(lineno, line, "read", conn, replies=int(rest or 1), norm=pending_norm))
                pending_norm = None
            elif word in ("closed", "close"):
                steps.append(Step(lineno, line, word, conn))
            elif word == "silent":
                steps.append(Step(lineno, line, "silent", conn, arg=float(rest or 0.3)))
            elif word == "sleep":
                steps.append(Step(lineno, line, "sleep", conn, arg=float(rest)))
            else:
                raise ValueError(f"line {lineno}: unknown directive {line}")
            continue
        toks = tokenize(line)
        n = pending_replies if pending_replies is not None else default_replies(toks)
        pending_replies = None
        data = harness.encode_command(*toks)
        if pipeline is not None:
            pipeline.cmds.append((lineno, line, data, n))
            continue
        steps.append(Step(lineno, line, "cmd", conn, data, n, pending_norm))
        pending_norm = None
    if pipeline is not None:
        raise ValueError("!pipeline without !end")
    return steps


# Per-script server options: name -> (redis-server arguments, turretd `store:` keys) for a value.
SERVER_OPTIONS = {
    "requirepass": lambda v: (["--requirepass", v], {"requirepass": f'"{v}"'}),
}


def server_options(text: str) -> tuple[list[str], dict]:
    """The `!server` lines of a script as (redis-server args, turretd store keys); empty when none."""
    redis_args, store = [], {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) == 3 and parts[0] == "!server":
            if parts[1] not in SERVER_OPTIONS:
                raise ValueError(f"unknown !server option {parts[1]}")
            r, t = SERVER_OPTIONS[parts[1]](parts[2])
            redis_args += r
            store.update(t)
    return redis_args, store


# ---------------------------------------------------------------------------------------------------------------
# runner


class Side:
    """One server's connections while a script runs."""

    def __init__(self, name: str, port: int, timeout: float) -> None:
        self.name = name
        self.port = port
        self.timeout = timeout
        self.conns: dict[str, RespConn] = {}

    def conn(self, name: str) -> RespConn:
        c = self.conns.get(name)
        if c is None or c.eof:
            if c is not None:
                c.close()
            c = RespConn(self.port, timeout=self.timeout)
            self.conns[name] = c
        return c

    def close_all(self) -> None:
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def read(self, name: str, n: int) -> list[bytes]:
        out = []
        c = self.conns.get(name) or self.conn(name)
        for _ in range(n):
            try:
                out.append(c.read_reply())
            except ReplyTimeout:
                # out of step: drop the connection (the next command on it reconnects) rather than wait again
                out.append(b"<timeout: no reply>")
                c.close()
                c.eof = True
                break
            except ConnectionClosed:
                out.append(b"<connection closed>")
                break
        return out


@dataclass
class Mismatch:
    script: str
    line: int
    text: str
    expected: object   # reference (redis-server)
    actual: object     # target (turretd)

    def __str__(self) -> str:
        exp, act = _show(self.expected), _show(self.actual)
        where = ""
        if isinstance(self.expected, list) and isinstance(self.actual, list):
            a = b"".join(x for x in self.expected if isinstance(x, bytes))
            b = b"".join(x for x in self.actual if isinstance(x, bytes))
            i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
            if a != b:
                where = f"\n    first difference at byte {i}: {a[max(0, i - 20):i + 40]!r} vs {b[max(0, i - 20):i + 40]!r}"
        return (f"{self.script}:{self.line}: {self.text[:200]}\n    redis-server: {exp}\n"
                f"    turretd:      {act}{where}")


def _show(v, limit: int = 600) -> str:
    r = repr(v)
    if len(r) <= limit:
        return r
    size = sum(len(x) for x in v if isinstance(x, bytes)) if isinstance(v, list) else len(r)
    return f"{r[:limit]}... ({size} bytes)"


def _apply_norm(norm, replies):
    if not norm:
        return replies
    fn = NORMALISERS[norm[0]]
    out = []
    for r in replies:
        try:
            out.append(fn(r, *norm[1:]) if not r.startswith(b"<") else r)
        except Exception as e:  # a malformed reply never normalises: keep the bytes
            out.append((r, f"normaliser error {e}"))
    return out


def run_script(name: str, text: str, ref_port: int, target_port: int, timeout: float = 3.0) -> list[Mismatch]:
    steps = parse_script(text)
    ref = Side("redis-server", ref_port, timeout)
    # the reference has already answered when the target is read: a short wait keeps failing runs short
    tgt = Side("turretd", target_port, min(timeout, 1.5))
    mismatches: list[Mismatch] = []
    try:
        setup = []
        for side in (ref, tgt):  # every script starts from empty databases on fresh connections
            c = side.conn("__setup")
            try:
                setup.append(c.call("FLUSHALL"))
            except (ConnectionClosed, ReplyTimeout) as e:
                setup.append(f"<{e}>".encode())
            c.close()
            side.conns.pop("__setup")
        if setup[0] != setup[1]:
            mismatches.append(Mismatch(name, 0, "<setup> FLUSHALL", setup[0], setup[1]))
        for st in steps:
            sides = (ref, tgt)
            if st.kind == "sleep":
                time.sleep(st.arg)
                continue
            if st.kind == "close":
                for s in sides:
                    if st.conn in s.conns:
                        s.conns.pop(st.conn).close()
                continue
            if st.kind == "closed":
                res = []
                for s in sides:
                    c = s.conns.get(st.conn)
                    res.append(c is not None and (c.eof or c.read_eof()))
                if res != [True, True]:
                    mismatches.append(Mismatch(name, st.line, st.text, "closed" if res[0] else "open",
                                               "closed" if res[1] else "open"))
                continue
            if st.kind == "silent":
                res = []
                for s in sides:
                    c = s.conn(st.conn)
                    got = c.read_available(st.arg)
                    res.append(got + (b"<closed>" if c.eof else b""))
                if res[0] != res[1] or res[0]:
                    mismatches.append(Mismatch(name, st.line, st.text, res[0], res[1]))
                continue
            if st.kind == "pipeline":
                for s in sides:
                    s.conn(st.conn).send(b"".join(c[2] for c in st.cmds))
                for lineno, text, _, n in st.cmds:
                    res = [s.read(st.conn, n) for s in sides]
                    if res[0] != res[1]:
                        mismatches.append(Mismatch(name, lineno, text, res[0], res[1]))
                continue
            if st.kind in ("cmd", "raw"):
                for s in sides:
                    try:
                        s.conn(st.conn).send(st.payload)
                    except OSError as e:
                        s.conn(st.conn).eof = True
            res = [_apply_norm(st.norm, s.read(st.conn, st.replies)) for s in sides]
            if res[0] != res[1]:
                mismatches.append(Mismatch(name, st.line, st.text, res[0], res[1]))
        # nothing unexpected may be left on any connection
        for cname in set(ref.conns) | set(tgt.conns):
            left = []
            for s in (ref, tgt):
                c = s.conns.get(cname)
                left.append(c.read_available(0.05) if c and not c.eof else b"")
            if left[0] != left[1]:
                mismatches.append(Mismatch(name, 0, f"<bytes left unread on connection {cname}>", left[0], left[1]))
    finally:
        ref.close_all()
        tgt.close_all()
    return mismatches
