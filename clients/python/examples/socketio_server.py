"""A python-socketio chat server guarded by floodgate (namespace ``/chat``).

- ``connect``: Level 1; a refused connection gets a ``connect_error`` whose
  ``data`` carries ``reason`` and ``retry_after_ms``.
- ``chat`` event ``{"text": "..."}``: Level 1 per message, then Level 2
  (enqueue the chat task); the ack is ``{"status": "queued", "task_id": ...}``.
  Refusals are sent as a ``floodgate_error`` event (and as the ack).

The client says who it is in the connect ``auth``: ``{"user_id": ...,
"user_type": "registered"}`` (demo only: a real server verifies a token).

Run (floodgate on 127.0.0.1:50051)::

    FLOODGATE_TOKEN=<frontend token> python examples/socketio_server.py

Environment: FLOODGATE_TARGET (default 127.0.0.1:50051), FLOODGATE_TOKEN
(default none), HOST (127.0.0.1), PORT (8001; 0 picks a free port, logged).
"""

from __future__ import annotations

import json
import os
from typing import Any

import socketio
import uvicorn

from floodgate_client import DEFAULT_TARGET, FloodgateClient, Identity, UserType
from floodgate_client.socketio import SocketIOGuard

NAMESPACE = "/chat"

floodgate = FloodgateClient(
    os.environ.get("FLOODGATE_TARGET", DEFAULT_TARGET), token=os.environ.get("FLOODGATE_TOKEN") or None
)
sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")


def current_user(sid: str, environ: dict, auth: Any) -> Identity:
    """Demo authentication: trust the connect auth. Replace with your own."""
    auth = auth if isinstance(auth, dict) else {}
    user_id = auth.get("user_id")
    if not user_id:
        return Identity(UserType.ANONYMOUS, subject=f"ip:{environ.get('REMOTE_ADDR', sid)}", session_id=sid)
    return Identity(UserType[str(auth.get("user_type", "anonymous")).upper()], subject=str(user_id), session_id=sid)


guard = SocketIOGuard(sio, floodgate, identify=current_user, route="/socket.io/chat", namespace=NAMESPACE)


@sio.on("connect", namespace=NAMESPACE)
@guard.connect
async def connect(sid: str, environ: dict, auth: Any) -> None:
    identity = await guard.identity_of(sid)
    print(f"connected {sid} as {identity.user_type.name.lower()} {identity.subject}", flush=True)


@sio.on("chat", namespace=NAMESPACE)
@guard.message
async def chat(sid: str, data: dict) -> dict:
    identity = await guard.identity_of(sid)
    payload = json.dumps({"text": data.get("text", ""), "user": identity.subject, "transport": "websocket"}).encode()
    result = await guard.enqueue(sid, payload, idempotency_key=data.get("message_id"))
    if not result.admitted:
        return result.error_payload()  # the floodgate_error event was sent too
    return {"status": "queued", "task_id": result.task_id}


async def on_shutdown() -> None:
    await floodgate.close()


app = socketio.ASGIApp(sio, on_shutdown=on_shutdown)

if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8001")))
