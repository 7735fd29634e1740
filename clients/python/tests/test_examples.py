"""The three examples, installed and run as a user would, serve chat requests end to end.

The package is built as a wheel (``FLOODGATE_WHEEL``, which
``scripts/test-python.sh`` builds with ``python -m build``; else built here)
and installed with its documented ``examples`` extra into a fresh virtualenv
of its own; the examples run with that virtualenv's Python, from a directory
outside the source tree, so they see only what the wheel and the extra give.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from support import EXAMPLES, PACKAGE_ROOT, TOKENS, LineReader, terminate

UVICORN_RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def _make_venv(path: Path) -> Path:
    """A fresh virtualenv at ``path``; answers its Python."""
    made = subprocess.run([sys.executable, "-m", "venv", str(path)], capture_output=True, text=True)
    if made.returncode != 0:  # Debian's python3 without python3-venv: virtualenv, as test-python.sh does
        subprocess.run([sys.executable, "-m", "virtualenv", "--quiet", str(path)], check=True)
    return path / "bin" / "python"


@pytest.fixture(scope="session")
def examples_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a fresh virtualenv holding the wheel with the ``examples`` extra."""
    wheel_env = os.environ.get("FLOODGATE_WHEEL")
    if wheel_env:
        wheel = Path(wheel_env)
    else:
        dist = tmp_path_factory.mktemp("dist")
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(PACKAGE_ROOT)], check=True)
        wheel = next(dist.glob("floodgate_client-*.whl"))
    assert wheel.is_file(), f"no wheel at {wheel}"
    python = _make_venv(tmp_path_factory.mktemp("examples") / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[examples]"],
        check=True,
    )
    return python


class Example:
    def __init__(self, python: Path, script: str, env: dict[str, str], log: Path) -> None:
        self.script = script
        self.process = subprocess.Popen(
            [str(python), str(EXAMPLES / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            cwd=log.parent,  # not the source tree: only the installed package is importable
        )
        self.output = LineReader(self.process.stdout, sink=log)

    def stop(self) -> int:
        return terminate(self.process)


@pytest.fixture
def run_example(tmp_path: Path, examples_python: Path) -> Iterator[Any]:
    started: list[Example] = []

    def run(script: str, **env: str) -> Example:
        example = Example(examples_python, script, env, tmp_path / f"{script}.log")
        started.append(example)
        return example

    yield run
    for example in started:
        example.stop()


async def test_the_examples_serve_a_rest_and_a_websocket_chat_end_to_end(floodgate, admin, run_example):
    base = {"FLOODGATE_TARGET": floodgate.grpc_target}
    worker = run_example("worker.py", **base, FLOODGATE_TOKEN=TOKENS["worker"], WORKER_PROCESS_ID="example-worker")
    rest = run_example("fastapi_app.py", **base, FLOODGATE_TOKEN=TOKENS["frontend"], PORT="0")
    ws = run_example("socketio_server.py", **base, FLOODGATE_TOKEN=TOKENS["frontend"], PORT="0")

    ready = await worker.output.wait_for_async(r"worker ready: .* system capacity (\d+)", 60)
    assert ready.group(1) == "14"
    rest_url = (await rest.output.wait_for_async(UVICORN_RUNNING, 60)).group(1)
    ws_url = (await ws.output.wait_for_async(UVICORN_RUNNING, 60)).group(1)

    # REST: Level 1 + Level 2 through the FastAPI app; the worker handles the task.
    async with httpx.AsyncClient(base_url=rest_url, timeout=10) as http:
        headers = {"x-user-id": "user-42", "x-user-type": "registered"}
        assert (await http.get("/landing/chat", headers=headers)).status_code == 200
        r = await http.post("/landing/chat", headers=headers, json={"text": "hello over REST"})
        assert r.status_code == 200, r.text
        rest_task = r.json()["task_id"]
        # Past its rate (production: anonymous burst 5, then one per 6 s): 429 with Retry-After.
        anonymous = {"x-user-id": "anon-7", "x-user-type": "anonymous"}
        statuses = [(await http.get("/landing/chat", headers=anonymous)).status_code for _ in range(5)]
        assert statuses == [200] * 5
        limited = await http.get("/landing/chat", headers=anonymous)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "6"
        assert limited.json()["detail"]["decision"] == "RATE_LIMITED"
    handled = await worker.output.wait_for_async(rf"handled task {rest_task} \(registered, delivery 1\): (.*)", 30)
    assert "'hello over REST' from user-42 via rest" in handled.group(1)

    # WebSocket: connect (Level 1) and a chat message (Level 1 + Level 2).
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        ws_url,
        namespaces=["/chat"],
        auth={"user_id": "user-43", "user_type": "privileged"},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        ack = await client.call("chat", {"text": "hello over WebSocket"}, namespace="/chat", timeout=10)
    finally:
        await client.disconnect()
    assert ack["status"] == "queued", ack
    handled = await worker.output.wait_for_async(rf"handled task {ack['task_id']} \(privileged, delivery 1\): (.*)", 30)
    assert "'hello over WebSocket' from user-43 via websocket" in handled.group(1)
    await ws.output.wait_for_async(r"connected \S+ as privileged user-43", 10)

    # Stopping the worker takes its process out of the capacity at once.
    assert (await admin.capacity_calculation()).system_total == 14
    assert worker.stop() == 0
    assert worker.output.wait_for(r"worker stopped after 2 tasks", 10)
    assert (await admin.capacity_calculation()).system_total == 0

    # With no worker left, the frontends refuse: REST with 503 and Retry-After...
    async with httpx.AsyncClient(base_url=rest_url, timeout=10) as http:
        r = await http.post("/landing/chat", headers={"x-user-id": "user-44"}, json={"text": "anyone?"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    # ...socket.io by refusing the connection: the client reads the refusal
    # (decision, retry-after) from connect_error, as the README shows.
    refused: list[Any] = []
    late = socketio.AsyncClient(reconnection=False)
    late.on("connect_error", refused.append, namespace="/chat")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await late.connect(
            ws_url, namespaces=["/chat"], auth={"user_id": "user-45"}, transports=["websocket"], wait_timeout=10
        )
    assert len(refused) == 1, refused
    assert refused[0]["data"]["decision"] == "BACKPRESSURE"
    assert (refused[0]["data"]["http_status"], refused[0]["data"]["retry_after_ms"]) == (503, 1000)
    assert refused[0]["message"] == refused[0]["data"]["reason"]
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal.
    for frontend in (rest, ws):
        assert frontend.stop() in (0, -signal.SIGTERM)
        assert frontend.output.wait_for(r"Finished server process", 10)
