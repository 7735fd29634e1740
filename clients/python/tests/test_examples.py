"""The three examples, run as a user would, serve chat requests end to end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import socketio

from support import EXAMPLES, TOKENS, LineReader

UVICORN_RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


class Example:
    def __init__(self, script: str, env: dict[str, str], log: Path) -> None:
        self.script = script
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        self.output = LineReader(self.process.stdout, sink=log)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def run_example(tmp_path: Path) -> Iterator:
    started: list[Example] = []

    def run(script: str, **env: str) -> Example:
        example = Example(script, env, tmp_path / f"{script}.log")
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

    # With no worker left, the frontends refuse with 503 and Retry-After.
    async with httpx.AsyncClient(base_url=rest_url, timeout=10) as http:
        r = await http.post("/landing/chat", headers={"x-user-id": "user-44"}, json={"text": "anyone?"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal.
    for frontend in (rest, ws):
        assert frontend.stop() in (0, -signal.SIGTERM)
        assert frontend.output.wait_for(r"Finished server process", 10)
