"""Differential test: every script in tests/differential/*.txt is sent to turretd and to redis-server 7.0 over raw
sockets, in lockstep, and the reply bytes are compared (format and normalisers: differential.py).

One test method per script (test_<script name>), so a failure names the script; the message lists every mismatch with
both byte strings. Run one script: `python3 -m unittest -v test_differential.Differential.test_strings`.
"""
import os
import unittest
from pathlib import Path

import harness
from differential import parse_script, run_script, server_options

SCRIPTS_DIR = harness.SOURCE_DIR / "tests" / "differential"
SCRIPTS = sorted(SCRIPTS_DIR.glob("*.txt"))


class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis(cls)
        cls.target = harness.start_target(cls)

    def check_script(self, path: Path):
        text = path.read_text()
        redis, target = self.redis, self.target
        redis_args, store = server_options(text)
        if redis_args:  # this script needs its own servers (e.g. requirepass)
            redis = harness.start_redis(self, redis_args)
            target = harness.start_target(self, harness.turretd_yaml(store=store), redis_args)
        try:
            mismatches = run_script(path.stem, text, redis.port, target.port)
        except OSError as e:
            self.fail(f"{path.name}: {e!r}\n{target.describe()}")
        self.assertTrue(target.alive(), f"target died during {path.name}\n{target.describe()}")
        if mismatches:
            shown = "\n".join(str(m) for m in mismatches[:60])
            more = f"\n... and {len(mismatches) - 60} more" if len(mismatches) > 60 else ""
            self.fail(f"{len(mismatches)} mismatch(es) in {path.name}:\n{shown}{more}")


def _make(path):
    def test(self):
        self.check_script(path)
    test.__doc__ = f"differential script {path.name}"
    return test


for _p in SCRIPTS:
    setattr(Differential, f"test_{_p.stem}", _make(_p))


class Runner(unittest.TestCase):
    """The runner itself: it must report real differences (two redis-servers made to differ) and nothing else."""

    def test_detects_mismatches_and_tokenizes(self):
        from differential import tokenize
        self.assertEqual(tokenize("SET \"a\\x00b\\r\\n\" 'x y' \"ab\"*3 plain"),
                         [b"SET", b"a\x00b\r\n", b"x y", b"ababab", b"plain"])
        self.assertEqual(tokenize("KEYS \"a*\"*2b \"x\"'y'z\"\\x00\"*2 k\"v\""),
                         [b"KEYS", b"a*a*b", b"xyz\0\0", b'k"v"'])
        a = harness.start_redis(self)
        b = harness.start_redis(self, ["--maxclients", "5"])
        script = "SET k v\nGET k\nCONFIG GET maxclients\n!norm type\nCLIENT ID\n!pipeline\nPING\nECHO x\n!end\n"
        mismatches = run_script("selftest", script, a.port, b.port)
        self.assertEqual([m.line for m in mismatches], [3], "\n".join(map(str, mismatches)))
        self.assertIn("maxclients", str(mismatches[0]))


class ScriptsParse(unittest.TestCase):
    def test_scripts_exist_and_parse(self):
        self.assertGreater(len(SCRIPTS), 5, f"no scripts in {SCRIPTS_DIR}")
        for p in SCRIPTS:
            with self.subTest(script=p.name):
                self.assertTrue(parse_script(p.read_text()))


if __name__ == "__main__":
    unittest.main()
