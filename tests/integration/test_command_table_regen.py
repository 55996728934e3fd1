"""The committed command table (services/kv/generated/*.inc) is what scripts/gen_commands.py writes from the
redis-server on this machine: regenerate it into a temporary directory and diff, file by file."""
import difflib
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import harness

GENERATED = harness.SOURCE_DIR / "services" / "kv" / "generated"
SCRIPT = harness.SOURCE_DIR / "scripts" / "gen_commands.py"


class CommandTableRegeneration(unittest.TestCase):
    def test_generated_files_match_redis_server(self):
        with tempfile.TemporaryDirectory() as out:
            p = subprocess.run([sys.executable, str(SCRIPT), "--out", out, "--redis-server", harness.REDIS_SERVER],
                               capture_output=True, timeout=120)
            self.assertEqual(p.returncode, 0, f"gen_commands.py failed:\n{p.stdout.decode()}{p.stderr.decode()}")
            fresh = sorted(os.listdir(out))
            committed = sorted(f.name for f in GENERATED.iterdir() if f.name.endswith(".inc"))
            self.assertEqual(fresh, committed, "the set of generated files differs")
            diffs = []
            for name in fresh:
                a = (GENERATED / name).read_text().splitlines(keepends=True)
                b = Path(out, name).read_text().splitlines(keepends=True)
                if a != b:
                    diffs += difflib.unified_diff(a, b, f"committed/{name}", f"regenerated/{name}", n=1)
            self.assertFalse(diffs, "regenerate with /usr/bin/python3 scripts/gen_commands.py:\n" +
                             "".join(diffs[:200]))


if __name__ == "__main__":
    unittest.main()
