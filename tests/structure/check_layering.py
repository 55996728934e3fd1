#!/usr/bin/python3
"""Dependencies point down: checks every #include of the repository against the layering of docs/architecture.md.

    framework/            includes only <turret/...> of the framework, Boost, the standard library, ...
    middleware/           the framework and its own <turret/middleware/...>; each public header lives in
                          middleware/<folder>/include/turret/middleware/ (one folder per middleware), so the only
                          spelling anywhere is <turret/middleware/NAME.hpp> (the bare <timeout/timeout.hpp>,
                          <builtin.hpp>, <testing/...> of the old layout are errors)
    services/kv/include/  (the key-value contracts) the framework and <turret/kv/...>
    services/ops/         (the operations of REST and gRPC, <turret/ops/...>) the contracts, the framework and
                          itself; never middleware, the core, a front end or turretd
    services/{resp,http,grpc}/  (front ends) the contracts, the operations, the framework, middleware headers, their
                          own folder; never the in-process core (services/kv/...), another front end, or turretd
    services/kv/          (the in-process core) the contracts and itself; never the operations, a front end or
                          turretd
    services/upstream/    (the upstream backend, <turret/upstream/...>) the contracts, the framework and its clients,
                          middleware headers and itself; never the core, the operations, a front end or turretd
    examples/, tests/package/  (what a third party writes: programs and plugins) public headers only: never services/

Exits 1 and lists every violation (file:line: include).
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
FRONT_ENDS = ("resp", "http", "grpc")


# The spellings of the old middleware layout (middleware/ itself on the include path): gone everywhere.
BARE_MIDDLEWARE = re.compile(r"^((timeout|concurrency_limit|fault|testing)/|builtin\.hpp$)")


def allowed(rel: str, inc: str) -> bool:
    if BARE_MIDDLEWARE.match(inc):
        return False
    if rel.startswith("framework/"):
        if inc.startswith("turret/kv/v1/"):  # the generated protocol (protos/), not the key-value contracts
            return True
        return not inc.startswith(("services/", "turret/kv/", "turret/ops/", "turret/middleware/"))
    if rel.startswith("middleware/"):
        return not inc.startswith(("services/", "turret/kv/", "turret/ops/"))
    if rel.startswith("services/kv/include/"):
        return not inc.startswith(("services/", "turret/ops/", "turret/middleware/"))
    if rel.startswith("services/ops/"):
        return not inc.startswith(("services/", "turret/middleware/"))
    for fe in FRONT_ENDS:
        if rel.startswith(f"services/{fe}/"):
            if inc.startswith("services/"):
                return inc.startswith(f"services/{fe}/")
            return True
    if rel.startswith("services/upstream/"):
        return not inc.startswith(("services/", "turret/ops/"))
    if rel.startswith("services/kv/"):
        return not inc.startswith(tuple(f"services/{x}/" for x in FRONT_ENDS + ("turretd", "ops")) + ("turret/ops/",))
    if rel.startswith(("examples/", "tests/package/")):
        return not inc.startswith("services/")
    return True


def misplaced_header(rel: str) -> bool:
    """A middleware header outside middleware/<folder>/include/turret/middleware/."""
    if not rel.startswith("middleware/") or not rel.endswith((".hpp", ".h")):
        return False
    return not re.match(r"^middleware/[a-z_]+/include/turret/middleware/", rel)


def main() -> int:
    bad = []
    for path in sorted(ROOT.glob("**/*")):
        if path.suffix not in (".hpp", ".cpp", ".inc", ".h"):
            continue
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("build", ".git")) or "/build" in rel.split("/")[0]:
            continue
        if misplaced_header(rel):
            bad.append(f"{rel}: a middleware header belongs in middleware/<folder>/include/turret/middleware/")
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if m and not allowed(rel, m.group(1)):
                bad.append(f"{rel}:{n}: {m.group(1)}")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} violation(s) of the layering (see the docstring of {pathlib.Path(__file__).name})")
        return 1
    print("layering ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
