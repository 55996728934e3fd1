#!/usr/bin/python3
"""Dependencies point down: checks every #include of the repository against the layering of docs/architecture.md.

    framework/            includes only <turret/...> of the framework, Boost, the standard library, ...
    middleware/           the framework and its own <turret/middleware/...>
    services/kv/include/  (the key-value contracts) the framework and <turret/kv/...>
    services/ops/         (the operations of REST and gRPC, <turret/ops/...>) the contracts, the framework and
                          itself; never middleware, the core, a front end or turretd
    services/{resp,http,grpc}/  (front ends) the contracts, the operations, the framework, middleware headers, their
                          own folder; never the in-process core (services/kv/...), another front end, or turretd
    services/kv/          (the in-process core) the contracts and itself; never the operations, a front end or
                          turretd

Exits 1 and lists every violation (file:line: include).
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
FRONT_ENDS = ("resp", "http", "grpc")
MIDDLEWARE_FOLDERS = r"^(timeout|concurrency_limit|fault|builtin|testing)/"  # middleware headers by their folder


def allowed(rel: str, inc: str) -> bool:
    if rel.startswith("framework/"):
        if inc.startswith("turret/kv/v1/"):  # the generated protocol (protos/), not the key-value contracts
            return True
        return not inc.startswith(("services/", "turret/kv/", "turret/ops/", "turret/middleware/")) and not re.match(
            MIDDLEWARE_FOLDERS, inc)
    if rel.startswith("middleware/"):
        return not inc.startswith(("services/", "turret/kv/", "turret/ops/"))
    if rel.startswith("services/kv/include/"):
        return not inc.startswith(("services/", "turret/ops/", "turret/middleware/"))
    if rel.startswith("services/ops/"):
        return not inc.startswith(("services/", "turret/middleware/")) and not re.match(MIDDLEWARE_FOLDERS, inc)
    for fe in FRONT_ENDS:
        if rel.startswith(f"services/{fe}/"):
            if inc.startswith("services/"):
                return inc.startswith(f"services/{fe}/")
            return True
    if rel.startswith("services/kv/"):
        return not inc.startswith(tuple(f"services/{x}/" for x in FRONT_ENDS + ("turretd", "ops")) + ("turret/ops/",))
    return True


def main() -> int:
    bad = []
    for path in sorted(ROOT.glob("**/*")):
        if path.suffix not in (".hpp", ".cpp", ".inc", ".h"):
            continue
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("build", ".git")) or "/build" in rel.split("/")[0]:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if m and not allowed(rel, m.group(1)):
                bad.append(f"{rel}:{n}: {m.group(1)}")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} include(s) point up or sideways (see the docstring of {pathlib.Path(__file__).name})")
        return 1
    print("layering ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
