"""Developer tool: print every step of differential scripts with redis-server's replies (and a redis-vs-redis
self-check), to review what a script really exercises.  /usr/bin/python3 diffdump.py ../differential/x.txt [...]"""
import sys

import harness
from differential import Side, parse_script, run_script


def dump(path: str, port: int) -> None:
    side = Side("redis", port, 3.0)
    c = side.conn("__setup"); c.call("FLUSHALL"); c.close(); side.conns.pop("__setup")  # (NOAUTH with requirepass)
    import time
    for st in parse_script(open(path).read()):
        if st.kind == "sleep":
            time.sleep(st.arg); continue
        if st.kind == "close":
            if st.conn in side.conns: side.conns.pop(st.conn).close()
            continue
        if st.kind == "closed":
            c = side.conns.get(st.conn); print(f"{st.line:4} [{st.conn}] {st.text}  -> {c is not None and (c.eof or c.read_eof())}"); continue
        if st.kind == "silent":
            print(f"{st.line:4} [{st.conn}] {st.text}  -> {side.conn(st.conn).read_available(st.arg)!r}"); continue
        if st.kind == "pipeline":
            side.conn(st.conn).send(b"".join(x[2] for x in st.cmds))
            for ln, text, _, n in st.cmds:
                print(f"{ln:4} [{st.conn}] | {text[:70]}  -> {side.read(st.conn, n)!r}"[:400])
            continue
        if st.kind in ("cmd", "raw"):
            side.conn(st.conn).send(st.payload)
        print(f"{st.line:4} [{st.conn}] {st.text[:70]}  -> {side.read(st.conn, st.replies)!r}"[:400])
    side.close_all()


if __name__ == "__main__":
    from differential import server_options
    for p in sys.argv[1:]:
        args, _ = server_options(open(p).read())
        with harness.RedisServer(args) as a, harness.RedisServer(args) as b:
            print("=====", p)
            dump(p, a.port)
            for m in run_script(p, open(p).read(), a.port, b.port):
                print("SELF-MISMATCH", m)
