"""A FastAPI chat frontend guarded by floodgate.

- ``GET /landing/chat``: Level 1 only (may this user chat right now?).
- ``POST /landing/chat`` ``{"text": "...", "message_id": "..."}``: Level 1,
  then Level 2 (enqueue the chat task for a worker); answers the task id.

Refusals are 429 / 503 with ``Retry-After``. Who the user is comes from the
demo headers ``X-User-Id`` and ``X-User-Type`` (anonymous, registered,
privileged); a real app takes it from its authentication. Anonymous users
without an id are rate-limited by client address.

Run (floodgate on 127.0.0.1:50051)::

    FLOODGATE_TOKEN=<frontend token> python examples/fastapi_app.py

Environment: FLOODGATE_TARGET (default 127.0.0.1:50051), FLOODGATE_TOKEN
(default none: fine for floodgate's development profile without tokens),
HOST (127.0.0.1), PORT (8000; 0 picks a free port, logged by uvicorn).
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager

import uvicorn
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

from floodgate_client import DEFAULT_TARGET, FloodgateClient, Identity, UserType
from floodgate_client.fastapi import Admitted, enqueue_or_raise, require_capacity

floodgate = FloodgateClient(
    os.environ.get("FLOODGATE_TARGET", DEFAULT_TARGET), token=os.environ.get("FLOODGATE_TOKEN") or None
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    await floodgate.close()


app = FastAPI(title="floodgate FastAPI example", lifespan=lifespan)


def current_user(request: Request) -> Identity:
    """Demo authentication: trust two headers. Replace with your own."""
    user_id = request.headers.get("x-user-id")
    user_type = UserType[request.headers.get("x-user-type", "anonymous").upper()]
    if not user_id:
        host = request.client.host if request.client else "unknown"
        return Identity(UserType.ANONYMOUS, subject=f"ip:{host}")
    return Identity(user_type, subject=user_id, session_id=request.headers.get("x-session-id", ""))


level1 = require_capacity(floodgate, current_user)


class ChatMessage(BaseModel):
    text: str
    message_id: str | None = None


@app.get("/landing/chat")
async def landing(admitted: Admitted = Depends(level1)) -> dict:
    return {"status": "ok", "pressure_ratio": admitted.result.pressure_ratio}


@app.post("/landing/chat")
async def chat(message: ChatMessage, admitted: Admitted = Depends(level1)) -> dict:
    payload = json.dumps(
        {"text": message.text, "user": admitted.identity.subject, "transport": "rest"}
    ).encode()
    task_id = await enqueue_or_raise(
        floodgate, admitted.identity, payload, route="/landing/chat", idempotency_key=message.message_id
    )
    return {"status": "queued", "task_id": task_id}


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
