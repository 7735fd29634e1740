"""The python-socketio guards: a real AsyncServer under uvicorn, a real AsyncClient."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
import uvicorn

from floodgate_client import FloodgateClient, Identity, UserType
from floodgate_client.socketio import SocketIOGuard
from support import TOKENS, one_chat_process, wait_until


def who(sid: str, environ: dict, auth: Any) -> Identity:
    auth = auth or {}
    return Identity(UserType[auth.get("user_type", "anonymous").upper()], subject=auth.get("user_id", sid), session_id=sid)


@dataclass
class ChatServer:
    url: str
    connected: list[str] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)


@pytest.fixture
async def chat_server(floodgate) -> AsyncIterator[ChatServer]:
    """A socket.io chat server guarded by floodgate, served by uvicorn on a free port."""
    sio = socketio.AsyncServer(async_mode="asgi")
    floodgate_client = FloodgateClient(floodgate.grpc_target, token=TOKENS["frontend"])
    guard = SocketIOGuard(sio, floodgate_client, identify=who)
    state = ChatServer(url="")

    @sio.event
    @guard.connect
    async def connect(sid, environ, auth):
        state.connected.append(sid)

    @sio.on("chat")
    @guard.message
    async def chat(sid, data):
        state.messages.append(data)
        return {"ok": True}

    server = uvicorn.Server(
        uvicorn.Config(socketio.ASGIApp(sio), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or serving.done(), what="uvicorn started")
    assert server.started, serving.exception() if serving.done() else "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.should_exit = True
        await serving
        await floodgate_client.close()


@dataclass
class Client:
    sio: socketio.AsyncClient
    connect_errors: list[Any] = field(default_factory=list)
    floodgate_errors: list[Any] = field(default_factory=list)


def make_client() -> Client:
    c = Client(socketio.AsyncClient(reconnection=False))

    @c.sio.event
    async def connect_error(data):
        c.connect_errors.append(data)

    @c.sio.on("floodgate_error")
    async def floodgate_error(data):
        c.floodgate_errors.append(data)

    return c


async def test_a_client_past_capacity_is_refused_at_connect(floodgate, chat_server):
    async with floodgate.client("worker") as worker, floodgate.client("frontend") as frontend:
        await one_chat_process(worker)
        for i in range(8):  # the anonymous limit of T = 14
            assert (await frontend.enqueue_atomic(UserType.ANONYMOUS, f"filler-{i}", b"x")).admitted

    anonymous = make_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await anonymous.sio.connect(
            chat_server.url, auth={"user_id": "anon-1"}, transports=["websocket"], wait_timeout=10
        )
    assert len(anonymous.connect_errors) == 1
    error = anonymous.connect_errors[0]
    assert error["data"]["decision"] == "BACKPRESSURE"
    assert error["data"]["http_status"] == 503
    assert error["data"]["retry_after_ms"] == 1000
    assert error["message"] == error["data"]["reason"] and "anonymous limit 8" in error["message"]
    assert chat_server.connected == []  # the application's handler never ran

    registered = make_client()  # registered users still fit (limit 11)
    await registered.sio.connect(
        chat_server.url, auth={"user_id": "user-1", "user_type": "registered"}, transports=["websocket"], wait_timeout=10
    )
    try:
        assert registered.connect_errors == []
        assert len(chat_server.connected) == 1
        assert await registered.sio.call("chat", {"text": "hi"}, timeout=10) == {"ok": True}
    finally:
        await registered.sio.disconnect()


async def test_a_client_sending_past_its_rate_gets_the_error_event(floodgate, chat_server):
    async with floodgate.client("worker") as worker:
        await one_chat_process(worker)

    c = make_client()
    await c.sio.connect(chat_server.url, auth={"user_id": "anon-7"}, transports=["websocket"], wait_timeout=10)
    try:
        # Anonymous burst is 5: the connect spent one, four messages pass ...
        acks = [await c.sio.call("chat", {"n": n}, timeout=10) for n in range(4)]
        assert acks == [{"ok": True}] * 4
        # ... and the fifth is refused: the handler does not run, the client
        # gets the error event (and the same payload as the ack).
        refused = await c.sio.call("chat", {"n": 4}, timeout=10)
        await wait_until(lambda: c.floodgate_errors, what="floodgate_error event")
    finally:
        await c.sio.disconnect()

    assert chat_server.messages == [{"n": n} for n in range(4)]
    assert len(c.floodgate_errors) == 1
    error = c.floodgate_errors[0]
    assert error == refused
    assert error["decision"] == "RATE_LIMITED" and error["http_status"] == 429
    assert error["reason"] == "rate limit exceeded for anonymous users"
    assert 5_000 < error["retry_after_ms"] <= 6_000


async def test_connect_without_any_capacity_is_refused(chat_server):
    c = make_client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await c.sio.connect(chat_server.url, auth={"user_id": "u"}, transports=["websocket"], wait_timeout=10)
    assert c.connect_errors[0]["data"]["reason"] == "no healthy chat REST processes"
    assert chat_server.connected == []
