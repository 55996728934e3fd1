#!/usr/bin/python3
"""Writes the seed corpora of resp_parser and kv_commands from the differential scripts (tests/differential/*.txt).

The differential scripts are the project's collection of real client traffic (every command family, inline commands,
protocol errors, split frames, pub/sub, transactions, binary arguments), so the fuzz targets start from it:

  fuzz/corpus/resp_parser/<script>-<n>     the script's bytes as a client sends them (multibulk commands, raw lines),
                                           in chunks of about 1 KB, behind an option byte (fuzz/resp_parser.cpp);
                                           plus the same commands written as inline lines
  fuzz/corpus/kv_commands/<script>-<n>     the script's commands in kv_commands' encoding (fuzz/README.md), about 40
                                           commands per seed; `!conn` switches the session, `!close` reconnects it,
                                           `!sleep` becomes an active-expiry tick

Run it after changing the scripts or the kv_commands encoding: /usr/bin/python3 fuzz/make_seeds.py
Files of other names in the corpus folders (hand-written seeds) are left alone.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import differential  # noqa: E402  (tokenize, parse_script)

CORPUS = ROOT / "fuzz" / "corpus"
CHUNK_BYTES = 1024
CHUNK_COMMANDS = 40
MAX_PAYLOAD = 4096  # larger commands (`"x"*1000000` arguments) are left out of resp_parser's seeds


def steps_of(script: Path):
    """(conn, kind, payload bytes, tokens or None) for every step that sends or reconnects."""
    for step in differential.parse_script(script.read_text()):
        if step.kind == "cmd":
            yield step.conn, "cmd", step.payload, differential.tokenize(step.text)
        elif step.kind == "pipeline":
            for _, text, data, _ in step.cmds:
                yield step.conn, "cmd", data, differential.tokenize(text)
        elif step.kind == "raw":
            yield step.conn, "raw", step.payload, None
        elif step.kind in ("close", "closed"):
            yield step.conn, "reconnect", b"", None
        elif step.kind == "sleep":
            yield step.conn, "tick", b"", None


def inline_line(tokens: list[bytes]) -> bytes | None:
    """The command as an inline line (sdssplitargs quoting), None when a token cannot be written that way."""
    out = []
    for t in tokens:
        if t and all(33 <= c < 127 and c not in b"\"'\\" for c in t):
            out.append(t)
        else:
            out.append(b'"' + b"".join(b"\\x%02x" % c for c in t) + b'"')
    return b" ".join(out) + b"\r\n"


# --- kv_commands encoding (fuzz/kv_commands.cpp) ---------------------------------------------------------------------

def kv_arg(t: bytes) -> bytes:
    t = t[:255]
    if len(t) < 32:
        return bytes([0xC0 | len(t)]) + t
    return bytes([0xE0, len(t)]) + t


def kv_command(slot: int, tokens: list[bytes]) -> bytes:
    name, args = tokens[0][:255], tokens[1:39]
    n = len(args)
    if n <= 6:
        head = bytes([slot | (n << 2)])
    else:
        head = bytes([slot | (7 << 2), n - 7])
    return head + bytes([0xFF, len(name)]) + name + b"".join(kv_arg(a) for a in args)


def write(folder: Path, prefix: str, chunks: list[bytes]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(prefix + "-*"):
        old.unlink()
    for i, data in enumerate(chunks):
        (folder / f"{prefix}-{i}").write_bytes(data)
    return len(chunks)


def main() -> None:
    total_resp = total_kv = 0
    for script in sorted((ROOT / "tests" / "differential").glob("*.txt")):
        name = script.stem
        slots: dict[str, int] = {"main": 0}
        order = [1, 3, 2]
        resp_chunks, inline_chunks, kv_chunks = [], [], []
        cur, cur_inline, cur_kv, kv_count = b"", b"", b"", 0
        for conn, kind, payload, tokens in steps_of(script):
            if conn not in slots:
                slots[conn] = order[(len(slots) - 1) % len(order)]
            slot = slots[conn]
            if kind in ("cmd", "raw") and len(payload) <= MAX_PAYLOAD:
                cur += payload
                if len(cur) >= CHUNK_BYTES:
                    resp_chunks.append(cur)
                    cur = b""
            if kind == "cmd" and tokens:
                line = inline_line(tokens)
                if line and len(line) < 512:
                    cur_inline += line
                    if len(cur_inline) >= CHUNK_BYTES:
                        inline_chunks.append(cur_inline)
                        cur_inline = b""
                cur_kv += kv_command(slot, tokens)
            elif kind == "reconnect":
                cur_kv += bytes([slot | (7 << 5)])
            elif kind == "tick":
                cur_kv += bytes([slot | (6 << 5)])
            else:
                continue
            kv_count += 1
            if kv_count >= CHUNK_COMMANDS:
                kv_chunks.append(cur_kv)
                cur_kv, kv_count = b"", 0
        for rest, into in ((cur, resp_chunks), (cur_inline, inline_chunks), (cur_kv, kv_chunks)):
            if rest:
                into.append(rest)
        # resp_parser: option byte 0 (Redis's limits); every third chunk also with tiny limits (1) or as an
        # unauthenticated client (2).
        seeds = [b"\x00" + c for c in resp_chunks]
        for opt in (b"\x71", b"\x02"):
            seeds += [opt + c for i, c in enumerate(resp_chunks) if i % 3 == 0]
        seeds += [b"\x00" + c for c in inline_chunks]
        total_resp += write(CORPUS / "resp_parser", name, seeds)
        total_kv += write(CORPUS / "kv_commands", name, kv_chunks)
    print(f"resp_parser: {total_resp} seeds, kv_commands: {total_kv} seeds")


if __name__ == "__main__":
    main()
