"""Test support: the real floodgate binary on free ports, child processes, waiting."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodgate_client import FloodgateClient, HeartbeatResult

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # clients/python
REPO_ROOT = PACKAGE_ROOT.parents[1]
EXAMPLES = PACKAGE_ROOT / "examples"

TOKENS = {"admin": "test-admin-token", "frontend": "test-frontend-token", "worker": "test-worker-token"}
LISTENING = re.compile(r"floodgate listening grpc=(\S+) http=(\S+)")
START_TIMEOUT = 60.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {value!r} as TOML")


def runtime_toml(runtime: dict[str, Any]) -> str:
    """A config file with a ``[runtime]`` table; nested dicts become sub-tables."""
    lines = ["[runtime]"]
    tables: list[tuple[str, dict[str, Any]]] = []

    def walk(prefix: str, table: dict[str, Any], out: list[str]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                tables.append((f"{prefix}.{key}", value))
            else:
                out.append(f"{key} = {_toml_value(value)}")

    walk("runtime", runtime, lines)
    while tables:
        name, table = tables.pop(0)
        lines.append(f"\n[{name}]")
        walk(name, table, lines)
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LineReader:
    """Reads a child's stream on a thread, so it never blocks on a full pipe."""

    def __init__(self, stream: Any, sink: Path | None = None) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.eof = False
        self._sink = sink.open("a") if sink else None
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for raw in iter(stream.readline, ""):
            line = raw.rstrip("\n")
            self.seen.append(line)
            self.lines.put(line)
            if self._sink:
                self._sink.write(raw)
                self._sink.flush()
        self.eof = True
        self.lines.put(None)  # end of stream

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.seen:
            m = rx.search(line)
            if m:
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line matching {rx.pattern!r} within {timeout}s; saw {self.seen[-20:]}")
            try:
                line = self.lines.get(timeout=min(left, 0.1))
            except queue.Empty:
                if self.eof and self.lines.empty():
                    line = None
                else:
                    continue
            if line is None:
                raise EOFError(f"stream closed before a line matching {rx.pattern!r}; saw {self.seen[-20:]}")
            m = rx.search(line)
            if m:
                return m

    async def wait_for_async(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str]:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, pattern, timeout)


def terminate(process: subprocess.Popen[str], timeout: float = 30) -> int:
    """SIGTERM, then the exit code; SIGKILL (-9) if it is still running after ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class Floodgate:
    """One running floodgate process."""

    process: subprocess.Popen[str]
    grpc_target: str
    http_addr: str
    log_path: Path

    def client(self, role: str | None = "frontend", **kwargs: Any) -> FloodgateClient:
        """A new client with the token of ``role`` (None: no token); the caller closes it."""
        token = TOKENS[role] if role else None
        return FloodgateClient(self.grpc_target, token=token, **kwargs)

    def stop(self) -> int:
        """SIGTERM, then the exit code (floodgate exits 0)."""
        return terminate(self.process)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return ""


def start_floodgate(
    binary: Path,
    workdir: Path,
    runtime: dict[str, Any] | None = None,
    *,
    grpc_addr: str = "127.0.0.1:0",
    profile: str = "production",
) -> Floodgate:
    workdir.mkdir(parents=True, exist_ok=True)
    n = len(list(workdir.glob("floodgate-*.toml")))
    config = workdir / f"floodgate-{n}.toml"
    config.write_text(runtime_toml(runtime or {}))
    log_path = workdir / f"floodgate-{n}.log"
    env = {
        **os.environ,
        "FLOODGATE_ADMIN_TOKENS": TOKENS["admin"],
        "FLOODGATE_FRONTEND_TOKENS": TOKENS["frontend"],
        "FLOODGATE_WORKER_TOKENS": TOKENS["worker"],
        "FLOODGATE_LOG_FORMAT": "text",
    }
    for name in ("FLOODGATE_GRPC_ADDR", "FLOODGATE_HTTP_ADDR", "FLOODGATE_STORE", "FLOODGATE_PROFILE", "FLOODGATE_CONFIG"):
        env.pop(name, None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(binary), "serve", "--profile", profile, "--grpc-addr", grpc_addr,
             "--http-addr", "127.0.0.1:0", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
    reader = LineReader(process.stdout)
    try:
        m = reader.wait_for(LISTENING, START_TIMEOUT)
    except (TimeoutError, EOFError) as e:
        process.kill()
        process.wait()
        raise RuntimeError(f"floodgate did not start: {e}\n{log_path.read_text()[-3000:]}") from e
    fg = Floodgate(process, m.group(1), m.group(2), log_path)
    try:
        _wait_serving(fg)
    except Exception:
        fg.stop()
        raise
    return fg


def _wait_serving(fg: Floodgate) -> None:
    """Waits until floodgate answers /healthz.

    floodgate prints its line just before it starts serving (and installs its
    SIGTERM handler); a test that stops it within that instant would kill it
    instead of shutting it down. Once it answers, it is fully up.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"http://{fg.http_addr}/healthz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if fg.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"floodgate never answered /healthz\n{fg.log_tail()}")
        time.sleep(0.01)


async def wait_until(
    condition: Callable[[], Any | Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Polls ``condition`` (sync or async) until it is truthy; fails after a generous deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or condition}")
        await asyncio.sleep(interval)


async def one_chat_process(worker: FloodgateClient, instance: str = "home-instance-1", process: str = "p1") -> HeartbeatResult:
    """The seed's example: one healthy chat REST process of capacity 5 (T = 14)."""
    result = await worker.heartbeat(instance, process, capacity=5)
    assert result.system_capacity == 14
    return result
