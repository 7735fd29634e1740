"""The asyncio (grpc.aio) client of floodgate's Admission, Workers and Admin services."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
import grpc.aio

from floodgate_client import __version__
from floodgate_client._proto.floodgate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    admission_pb2,
    admission_pb2_grpc,
    common_pb2,
    workers_pb2,
    workers_pb2_grpc,
)
from floodgate_client.models import (
    AdmissionResult,
    CapacityCalculation,
    Decision,
    EnqueueResult,
    HeartbeatResult,
    LeasedTask,
    ProcessStatus,
    Transport,
    UserType,
    _enum,
    error_for,
)

__all__ = ["DEFAULT_TARGET", "FloodgateClient", "RetryPolicy"]

DEFAULT_TARGET = "127.0.0.1:50051"

# What a tonic server answers (as CANCELLED) when the call's grpc-timeout expires.
_TONIC_TIMEOUT = "Timeout expired"


# What each retrying channel may retry on UNAVAILABLE: calls that are safe to
# repeat. EnqueueAtomic is retried only on the channel used for requests that
# carry an idempotency key.
_RETRIED = [
    ("floodgate.v1.Admission", "CheckCapacity"),
    ("floodgate.v1.Workers", "Heartbeat"),
    ("floodgate.v1.Admin", "GetSystemStatus"),
    ("floodgate.v1.Admin", "GetCapacityCalculation"),
    ("floodgate.v1.Admin", "ListCircuitBreakers"),
    ("floodgate.v1.Admin", "GetThrottlingStats"),
    ("floodgate.v1.Admin", "ListAlerts"),
    ("floodgate.v1.Admin", "GetEnvironment"),
]
_RETRIED_WITH_KEY = [("floodgate.v1.Admission", "EnqueueAtomic")]

# gRPC caps maxAttempts at 5 (larger values are lowered to 5).
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class RetryPolicy:
    """How calls that are safe to repeat are retried on ``UNAVAILABLE``.

    The retries are gRPC's own (the channel's service config ``retryPolicy``,
    with gRPC's jittered exponential backoff), inside the call's deadline.
    Only ``CheckCapacity`` (reserves nothing), ``Heartbeat`` (an upsert), the
    admin reads, and ``EnqueueAtomic`` *with* an idempotency key (floodgate
    answers a repeated key with the first answer and enqueues nothing) are
    retried. ``max_attempts=1`` turns retries off; gRPC allows at most 5.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS} (gRPC's limit)")
        if self.initial_backoff <= 0 or self.max_backoff <= 0 or self.multiplier <= 0:
            raise ValueError("backoffs and multiplier must be positive")

    def service_config(self, methods: Sequence[tuple[str, str]]) -> str:
        """The channel's ``grpc.service_config`` JSON retrying ``methods`` on UNAVAILABLE."""
        if self.max_attempts == 1 or not methods:
            return json.dumps({})
        retry_policy = {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff:.6f}s",
            "maxBackoff": f"{self.max_backoff:.6f}s",
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        names = [{"service": service, "method": method} for service, method in methods]
        return json.dumps({"methodConfig": [{"name": names, "retryPolicy": retry_policy}]})


def _admission_fields(
    user_type: UserType | int, subject: str, session_id: str, transport: Transport | int, route: str, request_id: str
) -> dict[str, Any]:
    """The request fields both admission levels share (``AdmissionRequest`` on the server)."""
    return {
        "user_type": cast("common_pb2.UserType", int(user_type)),
        "subject": subject,
        "session_id": session_id,
        "transport": cast("common_pb2.Transport", int(transport)),
        "route": route,
        "request_id": request_id,
    }


def _decision_fields(r: Any) -> dict[str, Any]:
    """The answer fields both admission levels share (the server's ``Verdict``)."""
    return {
        "decision": _enum(Decision, r.decision),
        "http_status": r.http_status,
        "retry_after_ms": r.retry_after_ms,
        "reason": r.reason,
        "pressure_ratio": r.pressure_ratio,
    }


class FloodgateClient:
    """An asyncio client of floodgate.

    ``target`` is ``host:port`` of floodgate's gRPC address. ``token`` is sent
    as ``authorization: Bearer <token>`` on every call: a frontend token for
    :meth:`check_capacity` / :meth:`enqueue_atomic`, a worker token for the
    worker calls, an admin token for everything. ``timeout`` (seconds) is the
    default deadline of a call, retries included; every method takes its own
    ``timeout`` too.

    The gRPC channel is opened lazily inside the running event loop, so a
    client may be created at import time (e.g. as a module global of a
    FastAPI app). Close it with :meth:`close` or ``async with``.

    Refusals (429/503 decisions) are results, not exceptions; failures of the
    call itself raise :class:`~floodgate_client.FloodgateError` subclasses.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        timeout: float = 2.0,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.target = target
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._metadata: tuple[tuple[str, str], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token else None
        )
        self._credentials = credentials
        self._options = [("grpc.primary_user_agent", f"floodgate-client-python/{__version__}"), *channel_options]
        self._interceptors = list(interceptors)
        self._channel: grpc.aio.Channel | None = None
        self._keyed_channel: grpc.aio.Channel | None = None
        self._keyed_admission: admission_pb2_grpc.AdmissionStub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admission: admission_pb2_grpc.AdmissionStub | None = None
        self._workers: workers_pb2_grpc.WorkersStub | None = None
        self._admin: admin_pb2_grpc.AdminStub | None = None

    def __repr__(self) -> str:
        return f"FloodgateClient(target={self.target!r}, timeout={self.timeout!r})"

    # ---- channel ----------------------------------------------------------

    def _open(self, retried: Sequence[tuple[str, str]]) -> grpc.aio.Channel:
        options = [
            *self._options,
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self.retry.service_config(retried)),
        ]
        if self._credentials is None:
            return grpc.aio.insecure_channel(self.target, options=options, interceptors=self._interceptors)
        return grpc.aio.secure_channel(self.target, self._credentials, options=options, interceptors=self._interceptors)

    def _ensure_channel(self) -> None:
        loop = asyncio.get_running_loop()
        if self._channel is not None and self._loop is loop:
            return
        # First use, or first use in a new event loop (a channel belongs to the
        # loop it was made in; the old loop's channel cannot be awaited here).
        channel = self._open(_RETRIED)
        self._channel, self._loop, self._keyed_channel = channel, loop, None
        self._admission = admission_pb2_grpc.AdmissionStub(channel)  # type: ignore[no-untyped-call]
        self._workers = workers_pb2_grpc.WorkersStub(channel)  # type: ignore[no-untyped-call]
        self._admin = admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]

    def _keyed_stub(self) -> admission_pb2_grpc.AdmissionStub:
        """The Admission stub whose channel also retries EnqueueAtomic (for keyed requests only)."""
        self._ensure_channel()
        if self._keyed_channel is None:
            self._keyed_channel = self._open([*_RETRIED, *_RETRIED_WITH_KEY])
            self._keyed_admission = admission_pb2_grpc.AdmissionStub(self._keyed_channel)  # type: ignore[no-untyped-call]
        assert self._keyed_admission is not None
        return self._keyed_admission

    async def close(self) -> None:
        """Closes the channel (a later call opens a new one)."""
        channels, loop = (self._channel, self._keyed_channel), self._loop
        self._channel = self._keyed_channel = None
        self._loop = None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is a coroutine
            running = None
        for channel in channels:
            if channel is not None and running is loop:
                await channel.close()

    async def __aenter__(self) -> FloodgateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(
        self, service: str, method: str, request: Any, *, timeout: float | None, keyed: bool = False
    ) -> Any:
        """One call with its deadline; the channel's service config retries what is safe to retry."""
        if keyed:
            stub: Any = self._keyed_stub()
        else:
            self._ensure_channel()
            stub = {"admission": self._admission, "workers": self._workers, "admin": self._admin}[service]
        rpc = getattr(stub, method)
        budget = self.timeout if timeout is None else timeout
        try:
            return await rpc(request, timeout=budget, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            code, details = e.code(), e.details() or ""
            if code == grpc.StatusCode.CANCELLED and details == _TONIC_TIMEOUT:
                # The server enforced the deadline we sent (grpc-timeout)
                # a moment before our own timer fired.
                code = grpc.StatusCode.DEADLINE_EXCEEDED
            raise error_for(code, details, method) from e

    # ---- Admission (frontend token) ----------------------------------------

    async def check_capacity(
        self,
        user_type: UserType | int,
        subject: str,
        *,
        session_id: str = "",
        transport: Transport | int = Transport.REST,
        route: str = "",
        request_id: str = "",
        timeout: float | None = None,
    ) -> AdmissionResult:
        """Level 1: rate limit, then immediate backpressure. Reserves nothing; retried on UNAVAILABLE."""
        request = admission_pb2.CheckCapacityRequest(
            **_admission_fields(user_type, subject, session_id, transport, route, request_id)
        )
        r = await self._call("admission", "CheckCapacity", request, timeout=timeout)
        return AdmissionResult(**_decision_fields(r))

    async def enqueue_atomic(
        self,
        user_type: UserType | int,
        subject: str,
        payload: bytes = b"",
        *,
        session_id: str = "",
        transport: Transport | int = Transport.REST,
        route: str = "",
        request_id: str = "",
        idempotency_key: str | None = None,
        generate_idempotency_key: bool = False,
        timeout: float | None = None,
    ) -> EnqueueResult:
        """Level 2: atomically re-check the live load and enqueue the chat task.

        Retried on UNAVAILABLE only when the request carries an idempotency key
        (pass one, or ``generate_idempotency_key=True`` for a random one, which
        the result reports): without a key a retry could enqueue twice.
        """
        if idempotency_key is None and generate_idempotency_key:
            idempotency_key = uuid.uuid4().hex
        request = admission_pb2.EnqueueAtomicRequest(
            **_admission_fields(user_type, subject, session_id, transport, route, request_id),
            payload=payload,
            idempotency_key=idempotency_key or "",
        )
        r = await self._call("admission", "EnqueueAtomic", request, timeout=timeout, keyed=bool(idempotency_key))
        return EnqueueResult(
            **_decision_fields(r),
            task_id=r.task_id or None,
            queue_position=r.queue_position,
            idempotency_key=idempotency_key or None,
        )

    # ---- Workers (worker token) ---------------------------------------------

    async def heartbeat(
        self,
        instance_id: str,
        process_id: str,
        *,
        capacity: int,
        load: int = 0,
        status: ProcessStatus | int = ProcessStatus.HEALTHY,
        service_type: str = "chat",
        service_name: str = "rest",
        timeout: float | None = None,
    ) -> HeartbeatResult:
        """Reports one process's health, load and capacity (an upsert; retried on UNAVAILABLE)."""
        request = workers_pb2.HeartbeatRequest(
            instance_id=instance_id,
            process_id=process_id,
            service_type=service_type,
            service_name=service_name,
            load=load,
            capacity=capacity,
            status=cast("common_pb2.ProcessStatus", int(status)),
        )
        r = await self._call("workers", "Heartbeat", request, timeout=timeout)
        return HeartbeatResult(
            health=r.health, heartbeat_interval_ms=r.heartbeat_interval_ms, system_capacity=r.system_capacity
        )

    async def lease_tasks(
        self,
        instance_id: str,
        process_id: str,
        *,
        max_tasks: int = 1,
        lease_ms: int = 30_000,
        wait_ms: int = 0,
        timeout: float | None = None,
    ) -> list[LeasedTask]:
        """Leases up to ``max_tasks`` tasks, privileged first, long-polling up to ``wait_ms``.

        The default deadline is the client's timeout plus ``wait_ms``. Not
        retried: a lost answer would leave tasks leased to nobody until their
        lease expires.
        """
        request = workers_pb2.LeaseTasksRequest(
            instance_id=instance_id, process_id=process_id, max_tasks=max_tasks, lease_ms=lease_ms, wait_ms=wait_ms
        )
        if timeout is None:
            timeout = self.timeout + wait_ms / 1000
        r = await self._call("workers", "LeaseTasks", request, timeout=timeout)
        return [
            LeasedTask(
                task_id=t.task_id,
                lease_id=t.lease_id,
                payload=t.payload,
                user_type=_enum(UserType, t.user_type),
                enqueued_at_ms=t.enqueued_at_ms,
                delivery_count=t.delivery_count,
                lease_expires_at_ms=t.lease_expires_at_ms,
            )
            for t in r.tasks
        ]

    async def complete_task(self, task_id: str, lease_id: str, *, timeout: float | None = None) -> None:
        """Completes a leased task, freeing its capacity (FailedPreconditionError if the lease is gone)."""
        request = workers_pb2.CompleteTaskRequest(task_id=task_id, lease_id=lease_id)
        await self._call("workers", "CompleteTask", request, timeout=timeout)

    async def extend_lease(self, task_id: str, lease_id: str, lease_ms: int, *, timeout: float | None = None) -> int:
        """Extends a held lease to ``lease_ms`` from now; answers the new expiry (Unix ms)."""
        request = workers_pb2.ExtendLeaseRequest(task_id=task_id, lease_id=lease_id, lease_ms=lease_ms)
        r = await self._call("workers", "ExtendLease", request, timeout=timeout)
        return int(r.lease_expires_at_ms)

    # ---- Admin (admin token) ------------------------------------------------

    async def capacity_calculation(self, *, timeout: float | None = None) -> CapacityCalculation:
        """The seed's eight-step capacity calculation, from a fresh snapshot."""
        r = await self._call(
            "admin", "GetCapacityCalculation", admin_pb2.GetCapacityCalculationRequest(), timeout=timeout
        )
        b, t, c = r.calculations_breakdown, r.totals, r.configuration
        return CapacityCalculation(
            concurrent_per_process=c.concurrent_per_process,
            processes_per_instance=c.processes_per_instance,
            capacity_buffer=c.capacity_buffer,
            queue_multiplier=c.queue_multiplier,
            instances_found=tuple(r.actual_processes.instances_found),
            breakdown={f.name: getattr(b, f.name) for f in b.DESCRIPTOR.fields},
            healthy_chat_rest_processes=t.healthy_chat_rest_processes,
            total_concurrent=t.total_concurrent,
            effective=t.effective,
            queue_capacity=t.queue_capacity,
            total_per_instance=tuple(t.total_per_instance),
            instances=t.instances,
            system_total=t.system_total,
            anonymous_limit=t.anonymous_limit,
            registered_limit=t.registered_limit,
            privileged_limit=t.privileged_limit,
            raw=r,
        )
