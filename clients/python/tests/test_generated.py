"""The committed stubs are exactly what scripts/generate.sh makes from proto/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import PACKAGE_ROOT, REPO_ROOT

COMMITTED = PACKAGE_ROOT / "src" / "floodgate_client" / "_proto"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_stubs_match_proto(tmp_path):
    out = tmp_path / "_proto"
    subprocess.run(
        ["bash", str(PACKAGE_ROOT / "scripts" / "generate.sh"), str(out)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    fresh, committed = _files(out), _files(COMMITTED)
    hint = "the generated stubs drifted from proto/: run clients/python/scripts/generate.sh and commit the result"
    assert sorted(fresh) == sorted(committed), hint
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, f"{hint} (changed: {changed})"


def test_every_proto_of_floodgate_has_stubs():
    protos = sorted(p.relative_to(REPO_ROOT / "proto") for p in (REPO_ROOT / "proto" / "floodgate").rglob("*.proto"))
    assert protos, "no proto files found"
    for proto in protos:
        stem = COMMITTED / proto.with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert Path(f"{stem}{suffix}").is_file(), f"missing stub {stem}{suffix}"


def test_the_installed_package_carries_the_services():
    from floodgate_client._proto.floodgate.v1 import admin_pb2, admission_pb2, workers_pb2

    services = {
        name: [m.name for m in svc.methods]
        for module in (admission_pb2, workers_pb2, admin_pb2)
        for name, svc in module.DESCRIPTOR.services_by_name.items()
    }
    assert services["Admission"] == ["CheckCapacity", "EnqueueAtomic"]
    assert services["Workers"] == ["Heartbeat", "LeaseTasks", "CompleteTask", "ExtendLease"]
    assert "GetCapacityCalculation" in services["Admin"]
    # The google.api.http annotations resolve (googleapis-common-protos).
    from google.api import annotations_pb2

    options = admin_pb2.DESCRIPTOR.services_by_name["Admin"].methods_by_name["GetCapacityCalculation"].GetOptions()
    assert options.Extensions[annotations_pb2.http].get == "/debug/capacity-calculation"
