"""The committed stubs in quiver_client/_pb are exactly what regen.sh makes from proto/, and the
package's install requirements satisfy their version checks."""

from __future__ import annotations

import filecmp
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PKG = Path(__file__).resolve().parents[1]  # clients/python
COMMITTED = PKG / "quiver_client" / "_pb"
PYPROJECT = tomllib.loads((PKG / "pyproject.toml").read_text())


def requirement(name: str, extra: str | None = None) -> Requirement:
    reqs = PYPROJECT["project"]["optional-dependencies"][extra] if extra else \
        PYPROJECT["project"]["dependencies"]
    return next(r for r in map(Requirement, reqs) if r.name == name)


def lower_bound(req: Requirement) -> Version:
    bounds = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    assert bounds, f"{req} has no lower bound"
    return max(bounds)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def test_grpcio_tools_is_the_pinned_version():
    pin = requirement("grpcio-tools", "test")
    (spec,) = pin.specifier
    assert spec.operator == "==", f"pin grpcio-tools to one exact version: {pin}"
    have = importlib.metadata.version("grpcio-tools")
    assert have == spec.version, (f"grpcio-tools {have} is installed, the stubs are pinned to "
                                  f"{spec.version}: pip install '{PKG}[test]'")


def test_stubs_match_the_proto(tmp_path):
    out = tmp_path / "_pb"
    p = subprocess.run(["bash", str(PKG / "regen.sh"), str(out)], capture_output=True, text=True,
                       env={**os.environ, "PYTHON": sys.executable})
    assert p.returncode == 0, f"regen.sh failed:\n{p.stdout}{p.stderr}"
    assert tree(out) == tree(COMMITTED), "the generated file set differs from the committed one"
    stale = [f for f in tree(out) if not filecmp.cmp(out / f, COMMITTED / f, shallow=False)]
    assert not stale, (f"committed stubs differ from proto/ + grpcio-tools: {stale}; run "
                       "clients/python/regen.sh and commit the result")


def test_install_requirements_satisfy_the_generated_version_checks():
    # retrieval_pb2_grpc.py raises at import on grpcio older than GRPC_GENERATED_VERSION.
    for f in ("quiver/v1/retrieval_pb2_grpc.py", "grpc/health/v1/health_pb2_grpc.py"):
        m = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'", (COMMITTED / f).read_text(), re.M)
        assert m, f"no GRPC_GENERATED_VERSION in {f}"
        assert lower_bound(requirement("grpcio")) >= Version(m.group(1)), \
            f"{f} needs grpcio>={m.group(1)}; raise the bound in pyproject.toml"
    # *_pb2.py call ValidateProtobufRuntimeVersion(PUBLIC, major, minor, patch, ...): the runtime
    # must not be older than the protoc that generated them.
    for f in ("quiver/v1/retrieval_pb2.py", "grpc/health/v1/health_pb2.py"):
        m = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                      r"\s*(\d+),\s*(\d+),\s*(\d+),", (COMMITTED / f).read_text())
        assert m, f"no runtime version check found in {f}"
        gen = Version(".".join(m.groups()))
        assert lower_bound(requirement("protobuf")) >= gen, \
            f"{f} needs protobuf>={gen}; raise the bound in pyproject.toml"


def test_installed_package_imports_its_stubs():
    from quiver_client._pb.grpc.health.v1 import health_pb2, health_pb2_grpc  # noqa: F401
    from quiver_client._pb.quiver.v1 import retrieval_pb2, retrieval_pb2_grpc

    assert retrieval_pb2.DESCRIPTOR.package == "quiver.v1"
    assert retrieval_pb2.DESCRIPTOR.name == "quiver/v1/retrieval.proto"
    assert retrieval_pb2_grpc.RetrievalStub is not None
