"""gRPC helpers for the integration tests: stubs generated AT TEST TIME from the repo's protos with grpc_tools.protoc
(plus the standard health and reflection protos from /usr/share/grpc-proto), and a turretd with RESP + gRPC listeners.
"""
from __future__ import annotations

import atexit
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import harness

GRPC_PROTO_DIR = Path("/usr/share/grpc-proto")
PYTHON = "/usr/bin/python3"

try:
    import grpc  # noqa: F401
    HAVE_GRPC = True
except ImportError:  # pragma: no cover - the Debian package is a declared dependency
    HAVE_GRPC = False

_generated: dict[str, object] | None = None


def stubs() -> dict[str, object]:
    """Generates (once per process) and imports kv_pb2/kv_pb2_grpc, health_pb2/_grpc and reflection_pb2/_grpc."""
    global _generated
    if _generated is not None:
        return _generated
    if not HAVE_GRPC:
        raise unittest.SkipTest("python3-grpcio not installed")
    out = tempfile.mkdtemp(prefix="turret-grpc-stubs-")
    atexit.register(shutil.rmtree, out, True)
    protos = harness.SOURCE_DIR / "protos"
    jobs = [
        (protos, "turret/kv/v1/kv.proto"),
        (GRPC_PROTO_DIR, "grpc/health/v1/health.proto"),
        (GRPC_PROTO_DIR, "grpc/reflection/v1alpha/reflection.proto"),
        (GRPC_PROTO_DIR, "grpc/reflection/v1/reflection.proto"),
    ]
    for include, proto in jobs:
        subprocess.run([PYTHON, "-m", "grpc_tools.protoc", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", str(include / proto)], check=True, capture_output=True)
    sys.path.insert(0, out)
    importlib.invalidate_caches()
    _generated = {
        "kv": importlib.import_module("turret.kv.v1.kv_pb2"),
        "kv_grpc": importlib.import_module("turret.kv.v1.kv_pb2_grpc"),
        "health": _import_from(out, "grpc/health/v1/health_pb2"),
        "health_grpc": _import_from(out, "grpc/health/v1/health_pb2_grpc"),
        "refl": _import_from(out, "grpc/reflection/v1alpha/reflection_pb2"),
        "refl_grpc": _import_from(out, "grpc/reflection/v1alpha/reflection_pb2_grpc"),
        "refl_v1": _import_from(out, "grpc/reflection/v1/reflection_pb2"),
        "refl_v1_grpc": _import_from(out, "grpc/reflection/v1/reflection_pb2_grpc"),
    }
    return _generated


def _import_from(root: str, rel: str):
    """Imports a generated module whose package name ("grpc.") would clash with the grpc library itself: the
    generated *_grpc modules import their *_pb2 sibling as `from grpc.health.v1 import health_pb2`, so we register
    the generated modules under that name inside the real grpc package's namespace."""
    import importlib.util
    name = rel.replace("/", ".")
    if name in sys.modules:
        return sys.modules[name]
    # make sure parent packages exist as modules (grpc.health, grpc.health.v1 ...)
    parts = name.split(".")
    for i in range(2, len(parts)):
        pkg = ".".join(parts[:i])
        if pkg not in sys.modules:
            spec = importlib.util.spec_from_loader(pkg, loader=None, is_package=True)
            mod = importlib.util.module_from_spec(spec)
            mod.__path__ = [os.path.join(root, *parts[:i])]
            sys.modules[pkg] = mod
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, rel + ".py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


GRPC_LISTEN_RE = re.compile(rb"listening\s+grpc\s+\S*?:(\d+)")
HTTP_LISTEN_RE = re.compile(rb"listening\s+http\s+\S*?:(\d+)")


def turretd_grpc_yaml(grpc: dict | None = None, http: bool = False, pipeline: str = "", threads: int = 2,
                      store: dict | None = None, shutdown_grace: str = "5s") -> str:
    lines = [
        "server:",
        f"  threads: {threads}",
        f"  shutdown_grace: {shutdown_grace}",
        "logging:",
        "  level: info",
        "  format: text",
        "listeners:",
        "  - name: resp",
        "    protocol: resp",
        "    address: 127.0.0.1:0",
        "  - name: grpc",
        "    protocol: grpc",
        "    address: 127.0.0.1:0",
    ]
    if grpc:
        lines.append("    grpc:")
        lines += harness._yaml_lines(grpc, 6)
    if http:
        lines += ["  - name: http", "    protocol: http", "    address: 127.0.0.1:0"]
    lines += ["store:", "  kind: memory", "  databases: 16"]
    lines += harness._yaml_lines(store or {}, 2)
    text = "\n".join(lines) + "\n"
    if pipeline:
        text += pipeline.rstrip("\n") + "\n"
    return text


class GrpcTurret:
    """turretd with RESP and gRPC (and optionally HTTP) listeners; .resp_port, .grpc_port, .target, .http_port."""

    def __init__(self, **kw) -> None:
        harness.require_turretd(unittest.TestCase)
        try:
            self.server = harness.TurretServer(turretd_grpc_yaml(**kw))
        except RuntimeError as e:
            # Until turretd registers the "grpc" protocol (services/turretd/frontend_registry.cpp) say so plainly.
            if "protocol" in str(e) and "grpc" in str(e) and "unknown" in str(e).lower():
                raise unittest.SkipTest("turretd has no 'grpc' front end registered") from None
            raise
        try:
            self.grpc_port = self._port(GRPC_LISTEN_RE)
            self.http_port = self._port(HTTP_LISTEN_RE) if kw.get("http") else 0
        except Exception:
            self.server.cleanup()
            raise
        self.resp_port = self.server.port
        self.target = f"127.0.0.1:{self.grpc_port}"

    def _port(self, rx) -> int:
        deadline = time.monotonic() + harness.START_TIMEOUT
        while time.monotonic() < deadline:
            m = rx.search(Path(self.server.log_path).read_bytes())
            if m:
                return int(m.group(1))
            time.sleep(0.02)
        raise RuntimeError(f"no {rx.pattern!r} line in turretd's log:\n{self.server.log_text()}")

    def cleanup(self) -> None:
        self.server.cleanup()


def start_grpc_turret(owner, **kw) -> GrpcTurret:
    t = GrpcTurret(**kw)
    if isinstance(owner, type):
        owner.addClassCleanup(t.cleanup)
    else:
        owner.addCleanup(t.cleanup)
    return t
