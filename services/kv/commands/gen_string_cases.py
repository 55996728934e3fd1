#!/usr/bin/python3
"""Records redis-server 7.0.15's exact replies to the string/bitmap command scenarios below and writes them as a C++
table (string_cases.inc) that strings_test.cpp replays against turret's handlers, comparing bytes.

Usage: gen_string_cases.py            (starts a private redis-server on a unix socket, writes string_cases.inc)
Every scenario starts from an empty database; commands must not depend on the clock (no TTL reads).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# (scenario name, [commands]); a command is a list of str/bytes. "HELLO 3" switches the scenario to RESP3.
SCENARIOS = [
    ("get_set_basic", [
        ["GET", "k"], ["SET", "k", "v"], ["GET", "k"], ["SET", "k", ""], ["GET", "k"], ["STRLEN", "k"],
        ["SET", b"bin\x00key", b"v\x00\r\n\xff"], ["GET", b"bin\x00key"], ["GET", b"bin"], ["STRLEN", b"bin\x00key"],
        ["SET", "big", "x" * 300], ["GET", "big"], ["SET", "big", "small"], ["GET", "big"],
    ]),
    ("set_options", [
        ["SET", "k", "v", "NX"], ["SET", "k", "w", "NX"], ["GET", "k"], ["SET", "k", "w", "XX"], ["GET", "k"],
        ["SET", "n", "v", "XX"], ["GET", "n"], ["SET", "k", "x", "GET"], ["SET", "n", "x", "GET"], ["GET", "n"],
        ["SET", "k", "y", "NX", "GET"], ["SET", "new", "y", "NX", "GET"], ["SET", "new2", "z", "XX", "GET"],
        ["SET", "k", "v", "NX", "XX"], ["SET", "k", "v", "XX", "NX"], ["SET", "k", "v", "EX"],
        ["SET", "k", "v", "EX", "10", "PX", "100"], ["SET", "k", "v", "PX", "10", "EX", "100"],
        ["SET", "k", "v", "EX", "10", "KEEPTTL"], ["SET", "k", "v", "KEEPTTL", "EX", "10"],
        ["SET", "k", "v", "EXAT", "10", "PXAT", "10"], ["SET", "k", "v", "PERSIST"], ["SET", "k", "v", "FOO"],
        ["SET", "k", "v", "EX", "0"], ["SET", "k", "v", "EX", "-5"], ["SET", "k", "v", "PX", "0"],
        ["SET", "k", "v", "EX", "abc"], ["SET", "k", "v", "EX", "9223372036854775807"],
        ["SET", "k", "v", "EX", "9223372036854775"], ["SET", "k", "v", "PX", "9223372036854775807"],
        ["SET", "k", "v", "EXAT", "0"], ["SET", "k", "v", "PXAT", "-1"], ["SET", "k", "v", "EX", "1.5"],
        ["SET", "k", "v", "ex", "100", "nx"], ["SET", "k", "v", "ex", "100", "xx"], ["GET", "k"],
        ["SET", "k", "v2", "KEEPTTL"], ["GET", "k"], ["SET", "k", "v3", "keepttl", "get"],
        ["SET", "k", "v", "EX", "10", "EX", "20"], ["SET", "k", "v", "NX", "NX"], ["SET", "k", "v", "GET", "GET"],
        ["SET", "past", "v", "PXAT", "1"], ["GET", "past"], ["SET", "k", "v", "EXAT", "99999999999"], ["GET", "k"],
    ]),
    ("setnx_setex", [
        ["SETNX", "k", "1"], ["SETNX", "k", "2"], ["GET", "k"], ["SETEX", "k", "100", "3"], ["GET", "k"],
        ["SETEX", "k", "0", "x"], ["SETEX", "k", "-1", "x"], ["SETEX", "k", "a", "x"], ["PSETEX", "k", "0", "x"],
        ["PSETEX", "k", "100000", "4"], ["GET", "k"], ["SETEX", "k", "9223372036854776", "x"],
    ]),
    ("getset_getdel_getex", [
        ["GETSET", "k", "1"], ["GETSET", "k", "2"], ["GET", "k"], ["GETDEL", "k"], ["GETDEL", "k"], ["GET", "k"],
        ["GETEX", "nokey"], ["GETEX", "nokey", "PX", "0"], ["SET", "k", "v"], ["GETEX", "k"],
        ["GETEX", "k", "PX", "0"], ["GETEX", "k", "EX", "-1"], ["GETEX", "k", "EX", "x"],
        ["GETEX", "k", "PERSIST", "EX", "10"], ["GETEX", "k", "EX", "10", "PERSIST"], ["GETEX", "k", "NX"],
        ["GETEX", "k", "KEEPTTL"], ["GETEX", "k", "GET"], ["GETEX", "k", "EX"], ["GETEX", "k", "EX", "100"],
        ["GETEX", "k", "PERSIST"], ["GETEX", "k", "PXAT", "1"], ["GET", "k"], ["SET", "k", "v"],
        ["GETEX", "k", "EXAT", "99999999999"], ["GETEX", "k", "persist"], ["GETEX", "k", "EX", "10", "PX", "10"],
    ]),
    ("mget_mset", [
        ["MSET", "a", "1", "b", "2"], ["MGET", "a", "b", "c"], ["MSET", "a", "1", "b"], ["MSETNX", "c", "3", "a", "9"],
        ["MGET", "a", "c"], ["MSETNX", "c", "3", "d", "4"], ["MGET", "c", "d"], ["MSETNX", "c", "3", "d"],
        ["MSET", "x", "1", "x", "2"], ["GET", "x"],
    ]),
    ("incr_decr", [
        ["INCR", "n"], ["INCR", "n"], ["DECR", "n"], ["INCRBY", "n", "10"], ["DECRBY", "n", "5"], ["GET", "n"],
        ["INCRBY", "n", "abc"], ["INCRBY", "n", "1.5"], ["INCRBY", "n", " 1"], ["INCRBY", "n", "+1"],
        ["INCRBY", "n", "01"], ["INCRBY", "n", "-0"], ["INCRBY", "n", "-1"], ["INCRBY", "n", ""],
        ["SET", "n", "9223372036854775806"], ["INCR", "n"], ["INCR", "n"], ["GET", "n"],
        ["SET", "n", "-9223372036854775807"], ["DECR", "n"], ["DECR", "n"], ["DECRBY", "n", "-9223372036854775808"],
        ["INCRBY", "n", "9223372036854775808"], ["INCRBY", "n", "-9223372036854775808"],
        ["SET", "s", "abc"], ["INCR", "s"], ["SET", "s", " 12"], ["INCR", "s"], ["SET", "s", "12 "], ["INCR", "s"],
        ["SET", "s", "007"], ["INCR", "s"], ["SET", "s", ""], ["INCR", "s"], ["SET", "z", "0"], ["DECR", "z"],
        ["SET", "t", "10"], ["INCR", "t"], ["GET", "t"],
    ]),
    ("incrbyfloat", [
        ["INCRBYFLOAT", "f", "10.5"], ["INCRBYFLOAT", "f", "0.1"], ["INCRBYFLOAT", "f", "-5"], ["GET", "f"],
        ["INCRBYFLOAT", "g", "1e20"], ["INCRBYFLOAT", "h", "0.1"], ["INCRBYFLOAT", "h", "0.2"],
        ["INCRBYFLOAT", "h", "abc"], ["INCRBYFLOAT", "h", ""], ["INCRBYFLOAT", "h", " 1"], ["INCRBYFLOAT", "h", "1 "],
        ["INCRBYFLOAT", "h", "inf"], ["INCRBYFLOAT", "h", "-inf"], ["INCRBYFLOAT", "h", "nan"],
        ["INCRBYFLOAT", "h", "1e400"], ["INCRBYFLOAT", "i", "3.0e3"], ["INCRBYFLOAT", "i", "-3000"],
        ["INCRBYFLOAT", "j", "-0.0"], ["INCRBYFLOAT", "k", "5"], ["INCRBYFLOAT", "k", "1.23456789012345678"],
        ["INCRBYFLOAT", "l", "0x10"], ["INCRBYFLOAT", "m", "1e-20"], ["SET", "s", "abc"], ["INCRBYFLOAT", "s", "1"],
        ["SET", "s", "1.5"], ["INCRBYFLOAT", "s", "1"], ["SET", "s", "  1"], ["INCRBYFLOAT", "s", "1"],
        ["INCRBYFLOAT", "n", "1.7976931348623157e308"], ["INCRBYFLOAT", "n", "1.7976931348623157e308"],
        ["INCRBYFLOAT", "o", "123456789012345678901234567890"],
    ]),
    ("append_strlen", [
        ["APPEND", "k", "abc"], ["APPEND", "k", "def"], ["GET", "k"], ["STRLEN", "k"], ["APPEND", "k", ""],
        ["APPEND", "e", ""], ["EXISTS", "e"], ["STRLEN", "nokey"], ["APPEND", "b", b"\x00\x01"], ["GET", "b"],
        ["SET", "n", "12"], ["APPEND", "n", "34"], ["GET", "n"], ["INCR", "n"],
    ]),
    ("getrange_setrange", [
        ["SET", "k", "Hello World"], ["GETRANGE", "k", "0", "4"], ["GETRANGE", "k", "-5", "-1"],
        ["GETRANGE", "k", "-1", "-5"], ["GETRANGE", "k", "5", "2"], ["GETRANGE", "k", "0", "100"],
        ["GETRANGE", "k", "-100", "2"], ["GETRANGE", "k", "100", "200"], ["GETRANGE", "k", "0", "-100"],
        ["GETRANGE", "k", "a", "1"], ["GETRANGE", "nokey", "0", "-1"], ["GETRANGE", "nokey", "a", "b"],
        ["SUBSTR", "k", "1", "3"], ["SET", "e", ""], ["GETRANGE", "e", "0", "-1"], ["GETRANGE", "e", "-1", "0"],
        ["SETRANGE", "k", "6", "Redis"], ["GET", "k"], ["SETRANGE", "k", "20", "!"], ["GET", "k"],
        ["SETRANGE", "k", "-1", "x"], ["SETRANGE", "k", "x", "x"], ["SETRANGE", "k", "0", ""],
        ["SETRANGE", "nk", "0", ""], ["EXISTS", "nk"], ["SETRANGE", "nk", "3", "abc"], ["GET", "nk"],
        ["SETRANGE", "nk", "536870912", "x"], ["SETRANGE", "nk", "536870911", ""],
        ["SETRANGE", "nk2", "536870912", "x"], ["SETRANGE", "nk2", "536870912", ""],
        ["SET", "num", "1234"], ["SETRANGE", "num", "1", "9"], ["GET", "num"], ["GETRANGE", "num", "0", "1"],
    ]),
    ("lcs", [
        ["MSET", "key1", "ohmytext", "key2", "mynewtext"], ["LCS", "key1", "key2"], ["LCS", "key1", "key2", "LEN"],
        ["LCS", "key1", "key2", "IDX"], ["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"],
        ["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
        ["LCS", "key1", "key2", "IDX", "WITHMATCHLEN"], ["LCS", "key1", "key2", "LEN", "IDX"],
        ["LCS", "key1", "key2", "MINMATCHLEN"], ["LCS", "key1", "key2", "MINMATCHLEN", "x"],
        ["LCS", "key1", "key2", "FOO"], ["LCS", "key1", "nokey"], ["LCS", "nokey", "nokey2", "IDX"],
        ["LCS", "key1", "key1", "IDX", "MINMATCHLEN", "-3"], ["LCS", "key1", "key2", "len", "withmatchlen"],
        ["MSET", "a", "rxaxbxcxd", "b", "abcd"], ["LCS", "a", "b", "IDX", "WITHMATCHLEN"], ["LCS", "a", "b"],
        ["HELLO", "3"], ["LCS", "key1", "key2", "IDX", "WITHMATCHLEN"], ["LCS", "key1", "nokey"], ["GET", "nokey"],
    ]),
    ("setbit_getbit", [
        ["SETBIT", "b", "7", "1"], ["GET", "b"], ["SETBIT", "b", "7", "0"], ["SETBIT", "b", "100", "1"],
        ["STRLEN", "b"], ["GETBIT", "b", "100"], ["GETBIT", "b", "101"], ["GETBIT", "b", "100000"],
        ["GETBIT", "nokey", "0"], ["SETBIT", "b", "-1", "1"], ["SETBIT", "b", "x", "1"], ["SETBIT", "b", "1", "2"],
        ["SETBIT", "b", "1", "-1"], ["SETBIT", "b", "1", "x"], ["SETBIT", "b", "4294967296", "1"],
        ["SETBIT", "b", "4294967295", "2"], ["GETBIT", "b", "4294967296"], ["GETBIT", "b", "-1"],
        ["SET", "n", "12"], ["GETBIT", "n", "2"], ["SETBIT", "n", "6", "1"], ["GET", "n"],
        ["SETBIT", "c", "0", "0"], ["GET", "c"],
    ]),
    ("bitcount_bitpos", [
        ["SET", "s", "foobar"], ["BITCOUNT", "s"], ["BITCOUNT", "s", "0", "0"], ["BITCOUNT", "s", "1", "1"],
        ["BITCOUNT", "s", "1", "1", "BYTE"], ["BITCOUNT", "s", "5", "30", "BIT"], ["BITCOUNT", "s", "-3", "-1", "bit"],
        ["BITCOUNT", "s", "-1", "-3"], ["BITCOUNT", "s", "0"], ["BITCOUNT", "s", "0", "1", "foo"],
        ["BITCOUNT", "s", "a", "b"], ["BITCOUNT", "nokey", "a", "b"], ["BITCOUNT", "nokey"],
        ["BITCOUNT", "s", "0", "-1", "BIT"], ["BITCOUNT", "s", "100", "200"], ["BITCOUNT", "s", "3", "2"],
        ["SET", "z", "\xff\xf0\x00"], ["BITPOS", "z", "0"], ["BITPOS", "z", "1"], ["BITPOS", "z", "1", "2"],
        ["BITPOS", "z", "0", "0", "0"], ["BITPOS", "z", "0", "0", "1"], ["BITPOS", "z", "1", "7", "15", "BIT"],
        ["BITPOS", "z", "0", "7", "15", "BIT"], ["BITPOS", "z", "0", "0", "11", "bit"], ["BITPOS", "z", "2"],
        ["BITPOS", "z", "x"], ["BITPOS", "nokey", "1"], ["BITPOS", "nokey", "0"], ["BITPOS", "nokey", "1", "a"],
        ["BITPOS", "z", "1", "a"], ["BITPOS", "z", "1", "0", "a"], ["BITPOS", "z", "1", "0", "1", "foo"],
        ["SET", "o", "\xff\xff\xff"], ["BITPOS", "o", "0"], ["BITPOS", "o", "0", "0"], ["BITPOS", "o", "0", "0", "-1"],
        ["BITPOS", "o", "0", "0", "-1", "bit"], ["BITPOS", "o", "0", "1", "bit"], ["BITPOS", "o", "1", "-1"],
        ["SET", "e", ""], ["BITPOS", "e", "0"], ["BITPOS", "e", "1"], ["BITCOUNT", "e"], ["BITCOUNT", "e", "0", "-1"],
        ["BITPOS", "z", "1", "-100", "-50"], ["BITPOS", "z", "0", "5", "2"], ["BITPOS", "z", "1", "17", "23", "bit"],
    ]),
    ("bitop", [
        ["SET", "a", "foobar"], ["SET", "b", "abcdef"], ["BITOP", "AND", "d", "a", "b"], ["GET", "d"],
        ["BITOP", "OR", "d", "a", "b"], ["GET", "d"], ["BITOP", "XOR", "d", "a", "b", "nokey"], ["GET", "d"],
        ["BITOP", "NOT", "d", "a"], ["GET", "d"], ["BITOP", "NOT", "d", "a", "b"], ["BITOP", "FOO", "d", "a"],
        ["BITOP", "and", "d", "nokey", "nokey2"], ["EXISTS", "d"], ["SET", "c", "x"], ["BITOP", "AND", "d", "a", "c"],
        ["GET", "d"], ["BITOP", "OR", "a", "a", "c"], ["GET", "a"], ["BITOP", "NOT", "e", "nokey"], ["EXISTS", "e"],
    ]),
    ("bitfield", [
        ["BITFIELD", "bf", "SET", "i8", "0", "100", "GET", "i8", "0"], ["BITFIELD", "bf", "INCRBY", "i8", "0", "100"],
        ["BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i8", "0", "100"],
        ["BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "i8", "0", "100"],
        ["BITFIELD", "bf", "OVERFLOW", "WRAP", "INCRBY", "i8", "0", "100"], ["GET", "bf"],
        ["BITFIELD", "bf", "SET", "u8", "#1", "255", "GET", "u8", "#1", "INCRBY", "u8", "#1", "10"],
        ["BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "u8", "#1", "300", "INCRBY", "u8", "#1", "-300"],
        ["BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "#1", "300", "INCRBY", "u8", "#1", "-300"],
        ["BITFIELD", "bf", "GET", "u63", "0", "GET", "i64", "0", "GET", "u1", "0", "GET", "i1", "0"],
        ["BITFIELD", "bf", "GET", "u64", "0"], ["BITFIELD", "bf", "GET", "i65", "0"], ["BITFIELD", "bf", "GET", "x8", "0"],
        ["BITFIELD", "bf", "GET", "i0", "0"], ["BITFIELD", "bf", "GET", "i", "0"], ["BITFIELD", "bf", "GET", "i8", "-1"],
        ["BITFIELD", "bf", "GET", "i8", "#-1"], ["BITFIELD", "bf", "GET", "i8", "x"], ["BITFIELD", "bf", "GET", "i8"],
        ["BITFIELD", "bf", "SET", "i8", "0"], ["BITFIELD", "bf", "SET", "i8", "0", "x"], ["BITFIELD", "bf", "FOO"],
        ["BITFIELD", "bf", "OVERFLOW", "FOO"], ["BITFIELD", "bf", "OVERFLOW"], ["BITFIELD", "bf"],
        ["BITFIELD", "nokey", "GET", "u8", "0"], ["EXISTS", "nokey"], ["BITFIELD", "nk", "SET", "u4", "100", "15"],
        ["GET", "nk"], ["BITFIELD", "bf", "GET", "u8", "4294967295"], ["BITFIELD", "bf", "GET", "u8", "4294967296"],
        ["BITFIELD", "bf", "SET", "i64", "0", "-9223372036854775808", "INCRBY", "i64", "0", "-1"],
        ["BITFIELD", "bf", "OVERFLOW", "SAT", "INCRBY", "i64", "0", "-1", "INCRBY", "i64", "0", "9223372036854775807"],
        ["BITFIELD", "bf", "SET", "u63", "0", "-1", "GET", "u63", "0", "SET", "i5", "3", "100", "GET", "i5", "3"],
        ["BITFIELD", "bf", "OVERFLOW", "SAT", "SET", "i5", "3", "100", "GET", "i5", "3", "SET", "u3", "9", "-5"],
        ["BITFIELD", "bf", "OVERFLOW", "FAIL", "SET", "i5", "3", "100", "SET", "u3", "9", "7"],
        ["BITFIELD_RO", "bf", "GET", "u8", "0", "GET", "i16", "#2"], ["BITFIELD_RO", "bf", "SET", "u8", "0", "1"],
        ["BITFIELD_RO", "bf", "INCRBY", "u8", "0", "1"], ["BITFIELD_RO", "bf"], ["BITFIELD_RO", "nokey", "GET", "u8", "0"],
        ["BITFIELD", "w", "INCRBY", "u2", "100", "1", "OVERFLOW", "SAT", "incrby", "u2", "102", "1",
         "GET", "u2", "100", "overflow", "fail", "INCRBY", "u2", "102", "5"],
        ["HELLO", "3"], ["BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "#1", "300"],
    ]),
]


def encode(cmd):
    parts = [c.encode("latin-1") if isinstance(c, str) else c for c in cmd]
    out = b"*%d\r\n" % len(parts)
    for p in parts:
        out += b"$%d\r\n%s\r\n" % (len(p), p)
    return out, parts


def read_reply(f):
    """Returns the raw bytes of one RESP2/RESP3 reply."""
    line = f.readline()
    t = line[:1]
    if t in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return line
    if t in (b"$", b"=", b"!"):
        n = int(line[1:-2])
        if n < 0:
            return line
        return line + f.read(n + 2)
    if t in (b"*", b"~", b">", b"%", b"|"):
        n = int(line[1:-2])
        if n < 0:
            return line
        if t in (b"%", b"|"):
            n *= 2
        out = line
        for _ in range(n):
            out += read_reply(f)
        return out
    raise RuntimeError("bad reply %r" % line)


def cstr(b):
    out = '"'
    for ch in b:
        if ch == 0x5C:
            out += "\\\\"
        elif ch == 0x22:
            out += '\\"'
        elif 0x20 <= ch < 0x7F and ch != 0x3F:
            out += chr(ch)
        else:
            out += "\\%03o" % ch
    return out + '"'


def main():
    tmp = tempfile.mkdtemp()
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        lines = ["// GENERATED by gen_string_cases.py from redis-server 7.0.15. Do not edit.",
                 "// STRING_CASE(scenario, {args...}, expected reply bytes)"]
        for name, cmds in SCENARIOS:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            f = s.makefile("rb")
            s.sendall(encode(["FLUSHALL"])[0])
            read_reply(f)
            for cmd in cmds:
                data, parts = encode(cmd)
                s.sendall(data)
                rep = read_reply(f)
                args = ", ".join("std::string_view(%s, %d)" % (cstr(p), len(p)) for p in parts)
                lines.append("STRING_CASE(%s, (%s), std::string_view(%s, %d))" % (name, args, cstr(rep), len(rep)))
            s.close()
        with open(os.path.join(HERE, "string_cases.inc"), "w") as out:
            out.write("\n".join(lines) + "\n")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
