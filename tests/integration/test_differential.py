"""Differential test: every script in tests/differential/*.txt is sent to turretd and to redis-server 7.0 over raw
sockets, in lockstep, and the reply bytes are compared (format and normalisers: differential.py).

One test method per script (test_<script name>), so a failure names the script; the message lists every mismatch with
both byte strings. Run one script: `python3 -m unittest -v test_differential.Differential.test_strings`.
"""
import os
import unittest
from pathlib import Path

import harness
from differential import parse_script, run_script

SCRIPTS_DIR = harness.SOURCE_DIR / "tests" / "differential"
SCRIPTS = sorted(SCRIPTS_DIR.glob("*.txt"))


class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.start_redis(cls)
        cls.target = harness.start_target(cls)

    def check_script(self, path: Path):
        mismatches = run_script(path.stem, path.read_text(), self.redis.port, self.target.port)
        self.assertTrue(self.target.alive(), f"target died during {path.name}\n{self.target.describe()}")
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


class ScriptsParse(unittest.TestCase):
    def test_scripts_exist_and_parse(self):
        self.assertGreater(len(SCRIPTS), 5, f"no scripts in {SCRIPTS_DIR}")
        for p in SCRIPTS:
            with self.subTest(script=p.name):
                self.assertTrue(parse_script(p.read_text()))


if __name__ == "__main__":
    unittest.main()
