"""Fixtures: the real floodgate binary on free ports, and clients of it.

The binary is built once per session with ``cargo build --release --bin
floodgate`` (skipped when ``FLOODGATE_BIN`` names a binary already built, as
``scripts/test-python.sh`` does). Every test starts its own floodgate on
``127.0.0.1:0`` and reads the ports from the line it prints when ready.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from floodgate_client import FloodgateClient
from support import REPO_ROOT, Floodgate, start_floodgate


# Tests talk to 127.0.0.1 only: keep any proxy settings of the machine away
# from grpc, httpx, urllib and the example processes.
for _name in ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_name, None)


def pytest_report_header(config: pytest.Config) -> str:
    return f"floodgate repo: {REPO_ROOT}"


@pytest.fixture(scope="session")
def floodgate_bin() -> Path:
    explicit = os.environ.get("FLOODGATE_BIN")
    if explicit:
        path = Path(explicit)
        assert path.is_file(), f"FLOODGATE_BIN={explicit} is not a file"
        return path
    subprocess.run(["cargo", "build", "--release", "--bin", "floodgate"], cwd=REPO_ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    path = target / "release" / "floodgate"
    assert path.is_file(), f"cargo build did not produce {path}"
    return path


StartFloodgate = Callable[..., Floodgate]


@pytest.fixture
def floodgate_factory(floodgate_bin: Path, tmp_path: Path) -> Iterator[StartFloodgate]:
    """Starts floodgates (``runtime`` overrides → the config's ``[runtime]``); stops them after the test."""
    started: list[Floodgate] = []

    def start(runtime: dict[str, Any] | None = None, **kwargs: Any) -> Floodgate:
        fg = start_floodgate(floodgate_bin, tmp_path, runtime, **kwargs)
        started.append(fg)
        return fg

    yield start
    codes = [(fg.stop(), fg) for fg in started]
    for code, fg in codes:
        assert code == 0, f"floodgate exited {code} on SIGTERM\n{fg.log_tail()}"


@pytest.fixture
def floodgate(floodgate_factory: StartFloodgate) -> Floodgate:
    """A floodgate with the production profile's settings unchanged."""
    return floodgate_factory()


@pytest.fixture
async def frontend(floodgate: Floodgate) -> AsyncIterator[FloodgateClient]:
    async with floodgate.client("frontend") as c:
        yield c


@pytest.fixture
async def worker(floodgate: Floodgate) -> AsyncIterator[FloodgateClient]:
    async with floodgate.client("worker") as c:
        yield c


@pytest.fixture
async def admin(floodgate: Floodgate) -> AsyncIterator[FloodgateClient]:
    async with floodgate.client("admin") as c:
        yield c


