"""The FastAPI integration under Starlette's TestClient (httpx), against the real floodgate."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from floodgate_client import FloodgateClient, Identity, UserType
from floodgate_client.fastapi import Admitted, enqueue_or_raise, require_capacity
from support import TOKENS, free_port, one_chat_process


def who(request: Request) -> Identity:
    """The test app's 'authentication': the user id and type come in headers."""
    user_type = UserType[request.headers.get("x-user-type", "anonymous").upper()]
    return Identity(user_type, subject=request.headers.get("x-user-id", "nobody"))


def make_app(target: str, *, token: str | None = TOKENS["frontend"], fail_open: bool = False) -> FastAPI:
    floodgate = FloodgateClient(target, token=token, timeout=2.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await floodgate.close()

    app = FastAPI(lifespan=lifespan)
    level1 = require_capacity(floodgate, who, fail_open=fail_open)

    @app.get("/landing/chat")
    async def landing(admitted: Admitted = Depends(level1)) -> dict:
        return {"admitted": True, "pressure_ratio": admitted.result.pressure_ratio}

    @app.post("/landing/chat")
    async def chat(request: Request, admitted: Admitted = Depends(level1)) -> dict:
        task_id = await enqueue_or_raise(floodgate, admitted.identity, await request.body(), route="/landing/chat")
        return {"task_id": task_id}

    @app.post("/level2-only")
    async def level2_only(request: Request) -> dict:
        return {"task_id": await enqueue_or_raise(floodgate, who(request), await request.body())}

    return app


def heartbeat(target: str) -> None:
    async def go() -> None:
        async with FloodgateClient(target, token=TOKENS["worker"]) as worker:
            await one_chat_process(worker)

    asyncio.run(go())


def user(user_id: str, user_type: str = "anonymous") -> dict[str, str]:
    return {"x-user-id": user_id, "x-user-type": user_type}


def test_level1_answers_503_with_retry_after_when_there_is_no_capacity(floodgate):
    with TestClient(make_app(floodgate.grpc_target)) as http:
        r = http.get("/landing/chat", headers=user("u1", "registered"))
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"] == {
        "decision": "BACKPRESSURE",
        "http_status": 503,
        "reason": "no healthy chat REST processes",
        "retry_after_ms": 1000,
    }


def test_level1_answers_429_with_retry_after_past_the_rate_limit(floodgate):
    heartbeat(floodgate.grpc_target)
    with TestClient(make_app(floodgate.grpc_target)) as http:
        statuses = [http.get("/landing/chat", headers=user("anon-1")).status_code for _ in range(5)]
        assert statuses == [200] * 5
        limited = http.get("/landing/chat", headers=user("anon-1"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "6"  # 6000 ms, rounded up to seconds
        detail = limited.json()["detail"]
        assert detail["decision"] == "RATE_LIMITED" and 5_000 < detail["retry_after_ms"] <= 6_000
        # Another user is not limited.
        assert http.get("/landing/chat", headers=user("anon-2")).status_code == 200


def test_level2_returns_task_ids_then_maps_refusals_to_503(floodgate):
    heartbeat(floodgate.grpc_target)
    with TestClient(make_app(floodgate.grpc_target)) as http:
        answers = [http.post("/landing/chat", headers=user(f"anon-{i}"), content=b"hello") for i in range(8)]
        assert [a.status_code for a in answers] == [200] * 8
        assert len({a.json()["task_id"] for a in answers}) == 8

        # Load 8 = the anonymous limit: Level 1 refuses ...
        refused = http.post("/landing/chat", headers=user("anon-8"), content=b"hello")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        # ... and so does Level 2 alone, with the same mapping.
        refused2 = http.post("/level2-only", headers=user("anon-9"), content=b"hello")
        assert refused2.status_code == 503 and refused2.headers["retry-after"] == "1"
        assert refused2.json()["detail"]["decision"] == "BACKPRESSURE"
        assert "anonymous limit 8" in refused2.json()["detail"]["reason"]

        # Registered users still fit (limit 11).
        ok = http.post("/level2-only", headers=user("user-1", "registered"), content=b"hello")
        assert ok.status_code == 200 and ok.json()["task_id"]

        # Bad input is the caller's fault: 400, naming the field.
        too_big = http.post("/level2-only", headers=user("user-2", "registered"), content=b"x" * 70_000)
        assert too_big.status_code == 400 and "payload" in too_big.json()["detail"]["reason"]


def test_an_unreachable_floodgate_fails_closed_unless_told_to_fail_open():
    nobody = f"127.0.0.1:{free_port()}"
    with TestClient(make_app(nobody)) as http:
        r = http.get("/landing/chat", headers=user("u1"))
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["detail"]["decision"] == "UNAVAILABLE"
    with TestClient(make_app(nobody, fail_open=True)) as http:
        assert http.get("/landing/chat", headers=user("u1")).status_code == 200
        # Level 2 always fails closed.
        assert http.post("/landing/chat", headers=user("u1"), content=b"x").status_code == 503


def test_a_wrong_frontend_token_is_a_503_not_an_admission(floodgate):
    with TestClient(make_app(floodgate.grpc_target, token="wrong", fail_open=True)) as http:
        r = http.get("/landing/chat", headers=user("u1"))
    assert r.status_code == 503
    assert "UNAUTHENTICATED" in r.json()["detail"]["reason"]
