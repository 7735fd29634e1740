"""The asyncio client against the real floodgate (production profile)."""

from __future__ import annotations

import json
from collections import Counter

import grpc
import grpc.aio
import pytest

from floodgate_client import (
    DeadlineExceededError,
    Decision,
    FailedPreconditionError,
    FloodgateClient,
    PermissionDeniedError,
    ProcessStatus,
    RetryPolicy,
    UnauthenticatedError,
    UnavailableError,
    UserType,
)
from support import one_chat_process


async def test_one_healthy_chat_rest_process_gives_the_seed_capacity(worker, admin):
    ack = await worker.heartbeat("home-instance-1", "p1", capacity=5, load=0, status=ProcessStatus.HEALTHY)
    assert ack.system_capacity == 14
    assert ack.health == "healthy"
    assert ack.heartbeat_interval_ms == 5000  # production profile

    calc = await admin.capacity_calculation()
    assert (calc.concurrent_per_process, calc.capacity_buffer, calc.queue_multiplier) == (5, 0.2, 2)
    assert (calc.total_concurrent, calc.effective, calc.queue_capacity) == (5, 4, 10)
    assert (calc.total_per_instance, calc.instances, calc.system_total) == ((14,), 1, 14)
    assert (calc.anonymous_limit, calc.registered_limit, calc.privileged_limit) == (8, 11, 13)
    assert calc.instances_found == ("home-instance-1",)
    assert sorted(calc.breakdown) == [
        "step_1_config",
        "step_2_processes",
        "step_3_total_concurrent",
        "step_4_effective",
        "step_5_queue",
        "step_6_total_per_instance",
        "step_7_instances",
        "step_8_system_total",
    ]


async def test_level2_admits_each_user_type_up_to_its_limit_then_refuses(worker, frontend):
    await one_chat_process(worker)

    async def enqueue_many(user_type: UserType, n: int):
        return [await frontend.enqueue_atomic(user_type, f"{user_type.name}-{i}", b"chat") for i in range(n)]

    # One refusal per class: the production profile opens the backpressure
    # circuit after 5 backpressure refusals within 10 s (see below).
    anonymous = await enqueue_many(UserType.ANONYMOUS, 9)
    assert [r.decision for r in anonymous] == [Decision.ADMIT] * 8 + [Decision.BACKPRESSURE]
    assert [r.queue_position for r in anonymous[:8]] == list(range(1, 9))
    assert len({r.task_id for r in anonymous[:8]}) == 8 and all(r.task_id for r in anonymous[:8])
    refused = anonymous[8]
    assert (refused.http_status, refused.task_id, refused.admitted) == (503, None, False)
    assert refused.retry_after_ms > 0
    assert refused.reason == "backpressure: load 8 has reached the anonymous limit 8 of capacity 14"

    registered = await enqueue_many(UserType.REGISTERED, 4)  # load 8 → 11
    assert [r.decision for r in registered] == [Decision.ADMIT] * 3 + [Decision.BACKPRESSURE]
    assert registered[-1].http_status == 503 and "registered limit 11" in registered[-1].reason

    privileged = await enqueue_many(UserType.PRIVILEGED, 3)  # 11 → 13
    assert [r.decision for r in privileged] == [Decision.ADMIT] * 2 + [Decision.BACKPRESSURE]
    assert privileged[-1].http_status == 503 and privileged[-1].pressure_ratio == pytest.approx(13 / 14)
    assert Counter(r.decision for r in anonymous + registered + privileged) == {
        Decision.ADMIT: 13,
        Decision.BACKPRESSURE: 3,
    }

    # Level 1 now refuses every user type (load 13 of 14): with backpressure,
    # or, once enough refusals opened the backpressure circuit, CIRCUIT_OPEN
    # (also a 503 with a Retry-After).
    for _ in range(3):
        for user_type in (UserType.ANONYMOUS, UserType.REGISTERED, UserType.PRIVILEGED):
            r = await frontend.check_capacity(user_type, f"probe-{user_type.name}")
            assert r.decision in (Decision.BACKPRESSURE, Decision.CIRCUIT_OPEN)
            assert (r.http_status, r.admitted) == (503, False)
            assert r.retry_after_ms > 0 and r.retry_after_seconds >= 1


async def test_level1_rate_limits_an_anonymous_subject_after_its_burst(worker, frontend):
    await one_chat_process(worker)
    first = [await frontend.check_capacity(UserType.ANONYMOUS, "session-abc") for _ in range(5)]
    assert all(r.admitted and r.http_status == 200 for r in first)

    sixth = await frontend.check_capacity(UserType.ANONYMOUS, "session-abc")
    assert (sixth.decision, sixth.http_status) == (Decision.RATE_LIMITED, 429)
    # 10/min = one request per 6 s once the burst of 5 is spent (less the few
    # ms these calls took); the HTTP Retry-After for it is 6 s.
    assert 5_000 < sixth.retry_after_ms <= 6_000
    assert sixth.retry_after_seconds == 6

    # Another subject has its own budget.
    assert (await frontend.check_capacity(UserType.ANONYMOUS, "session-other")).admitted


async def test_no_healthy_process_means_backpressure_at_level1(frontend):
    r = await frontend.check_capacity(UserType.REGISTERED, "user-1")
    assert (r.decision, r.http_status, r.retry_after_ms) == (Decision.BACKPRESSURE, 503, 1000)
    assert r.reason == "no healthy chat REST processes"
    assert r.pressure_ratio == 1.0


async def test_completing_a_leased_task_frees_one_slot(worker, frontend):
    await one_chat_process(worker)
    for i in range(8):
        assert (await frontend.enqueue_atomic(UserType.ANONYMOUS, f"a{i}", str(i).encode())).admitted
    assert not (await frontend.enqueue_atomic(UserType.ANONYMOUS, "a8")).admitted

    tasks = await worker.lease_tasks("home-instance-1", "p1", max_tasks=1, lease_ms=30_000, wait_ms=0)
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.payload, task.user_type, task.delivery_count) == (b"0", UserType.ANONYMOUS, 1)
    assert task.lease_expires_at_ms > task.enqueued_at_ms
    # A leased task still counts in the load ...
    assert not (await frontend.enqueue_atomic(UserType.ANONYMOUS, "a8")).admitted

    expiry = await worker.extend_lease(task.task_id, task.lease_id, 60_000)
    assert expiry >= task.lease_expires_at_ms

    # ... until it is completed.
    await worker.complete_task(task.task_id, task.lease_id)
    again = await frontend.enqueue_atomic(UserType.ANONYMOUS, "a8")
    assert again.admitted and again.task_id
    assert not (await frontend.enqueue_atomic(UserType.ANONYMOUS, "a9")).admitted

    with pytest.raises(FailedPreconditionError):
        await worker.complete_task(task.task_id, task.lease_id)


async def test_an_idempotency_key_enqueues_once(worker, frontend):
    await one_chat_process(worker)
    first = await frontend.enqueue_atomic(UserType.REGISTERED, "user-1", b"hi", idempotency_key="msg-1")
    second = await frontend.enqueue_atomic(UserType.REGISTERED, "user-1", b"hi", idempotency_key="msg-1")
    assert first.admitted and second.admitted
    assert first.task_id == second.task_id
    assert first.idempotency_key == "msg-1"

    generated = await frontend.enqueue_atomic(UserType.REGISTERED, "user-1", b"hi", generate_idempotency_key=True)
    assert generated.admitted and generated.idempotency_key and generated.task_id != first.task_id

    tasks = await worker.lease_tasks("home-instance-1", "p1", max_tasks=10, wait_ms=0)
    assert sorted(t.task_id for t in tasks) == sorted([first.task_id, generated.task_id])


async def test_tokens_are_sent_as_bearer_metadata_and_checked(floodgate):
    async with floodgate.client(None) as anonymous_caller:
        with pytest.raises(UnauthenticatedError) as e:
            await anonymous_caller.check_capacity(UserType.ANONYMOUS, "x")
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    async with FloodgateClient(floodgate.grpc_target, token="not-a-token") as wrong:
        with pytest.raises(UnauthenticatedError):
            await wrong.heartbeat("i", "p", capacity=5)
    async with floodgate.client("worker") as worker_role:
        with pytest.raises(PermissionDeniedError) as denied:
            await worker_role.check_capacity(UserType.ANONYMOUS, "x")
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    async with floodgate.client("admin") as admin_role:  # admin may call everything
        assert (await admin_role.check_capacity(UserType.ANONYMOUS, "x")).decision == Decision.BACKPRESSURE


class AlwaysUnavailable(grpc.GenericRpcHandler):
    """A gRPC server that answers every call UNAVAILABLE and counts the attempts that reach it."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method

        async def unavailable(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            self.attempts[method] += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "down for the test")

        return grpc.unary_unary_rpc_method_handler(unavailable)


async def test_unavailable_is_retried_by_the_service_config_only_where_safe():
    handler = AlwaysUnavailable()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    try:
        async with FloodgateClient(f"127.0.0.1:{port}", token="t", timeout=10, retry=policy) as c:
            with pytest.raises(UnavailableError):
                await c.check_capacity(UserType.ANONYMOUS, "x")
            with pytest.raises(UnavailableError):
                await c.heartbeat("i", "p", capacity=5)
            with pytest.raises(UnavailableError):
                await c.enqueue_atomic(UserType.ANONYMOUS, "x", b"with key", idempotency_key="k1")
            with pytest.raises(UnavailableError):
                await c.enqueue_atomic(UserType.ANONYMOUS, "x", b"without key")
            with pytest.raises(UnavailableError):
                await c.lease_tasks("i", "p")
            with pytest.raises(UnavailableError):
                await c.complete_task("t", "l")
            with pytest.raises(UnavailableError):
                await c.extend_lease("t", "l", 1000)
    finally:
        await server.stop(None)
    assert handler.attempts == {
        "/floodgate.v1.Admission/CheckCapacity": 3,
        "/floodgate.v1.Workers/Heartbeat": 3,
        "/floodgate.v1.Admission/EnqueueAtomic": 3 + 1,  # with a key: retried; without: once
        "/floodgate.v1.Workers/LeaseTasks": 1,
        "/floodgate.v1.Workers/CompleteTask": 1,
        "/floodgate.v1.Workers/ExtendLease": 1,
    }


def test_the_retry_policy_becomes_the_channels_service_config():
    config = json.loads(RetryPolicy().service_config([("floodgate.v1.Admission", "CheckCapacity")]))
    assert config == {
        "methodConfig": [
            {
                "name": [{"service": "floodgate.v1.Admission", "method": "CheckCapacity"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.050000s",
                    "maxBackoff": "1.000000s",
                    "backoffMultiplier": 2.0,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    assert json.loads(RetryPolicy(max_attempts=1).service_config([("s", "m")])) == {}
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=6)


async def test_a_deadline_bounds_a_long_poll(worker):
    # LeaseTasks' default deadline covers its wait_ms; an explicit one wins.
    assert await worker.lease_tasks("i", "p", wait_ms=50) == []
    with pytest.raises(DeadlineExceededError):
        await worker.lease_tasks("i", "p", wait_ms=5_000, timeout=0.2)
