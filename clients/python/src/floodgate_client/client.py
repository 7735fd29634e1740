"""The asyncio (grpc.aio) client of floodgate's Admission, Workers and Admin services."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from floodgate_client import __version__
from floodgate_client._proto.floodgate.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    admission_pb2,
    admission_pb2_grpc,
    workers_pb2,
    workers_pb2_grpc,
)
from floodgate_client.models import (
    AdmissionResult,
    CapacityCalculation,
    Decision,
    DeadlineExceededError,
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


@dataclass(frozen=True)
class RetryPolicy:
    """How calls that are safe to repeat are retried on ``UNAVAILABLE``.

    Only ``CheckCapacity`` (reserves nothing), ``Heartbeat`` (an upsert) and
    ``EnqueueAtomic`` *with* an idempotency key (floodgate answers a repeated
    key with the first answer and enqueues nothing) are retried. Every retry
    stays inside the call's deadline. ``max_attempts=1`` turns retries off.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with full jitter."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admission: admission_pb2_grpc.AdmissionStub | None = None
        self._workers: workers_pb2_grpc.WorkersStub | None = None
        self._admin: admin_pb2_grpc.AdminStub | None = None

    def __repr__(self) -> str:
        return f"FloodgateClient(target={self.target!r}, timeout={self.timeout!r})"

    # ---- channel ----------------------------------------------------------

    def _ensure_channel(self) -> None:
        loop = asyncio.get_running_loop()
        if self._channel is not None and self._loop is loop:
            return
        # First use, or first use in a new event loop (a channel belongs to the
        # loop it was made in; the old loop's channel cannot be awaited here).
        if self._credentials is None:
            channel = grpc.aio.insecure_channel(self.target, options=self._options, interceptors=self._interceptors)
        else:
            channel = grpc.aio.secure_channel(
                self.target, self._credentials, options=self._options, interceptors=self._interceptors
            )
        self._channel, self._loop = channel, loop
        self._admission = admission_pb2_grpc.AdmissionStub(channel)
        self._workers = workers_pb2_grpc.WorkersStub(channel)
        self._admin = admin_pb2_grpc.AdminStub(channel)

    async def close(self) -> None:
        """Closes the channel (a later call opens a new one)."""
        channel, loop = self._channel, self._loop
        self._channel = self._loop = None
        if channel is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:  # pragma: no cover - close() is a coroutine
                running = None
            if running is loop:
                await channel.close()

    async def __aenter__(self) -> FloodgateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, service: str, method: str, request: Any, *, timeout: float | None, retry: bool) -> Any:
        self._ensure_channel()
        stub = {"admission": self._admission, "workers": self._workers, "admin": self._admin}[service]
        rpc = getattr(stub, method)
        loop = asyncio.get_running_loop()
        budget = self.timeout if timeout is None else timeout
        deadline = loop.time() + budget
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no time left after {attempt - 1} attempts", method)
            try:
                return await rpc(request, timeout=remaining, metadata=self._metadata)
            except grpc.aio.AioRpcError as e:
                code = e.code()
                if retry and code == grpc.StatusCode.UNAVAILABLE and attempt < self.retry.max_attempts:
                    pause = self.retry.backoff(attempt)
                    if loop.time() + pause < deadline:
                        await asyncio.sleep(pause)
                        continue
                details = e.details() or ""
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
            user_type=int(user_type),
            subject=subject,
            session_id=session_id,
            transport=int(transport),
            route=route,
            request_id=request_id,
        )
        r = await self._call("admission", "CheckCapacity", request, timeout=timeout, retry=True)
        return AdmissionResult(
            decision=_enum(Decision, r.decision),
            http_status=r.http_status,
            retry_after_ms=r.retry_after_ms,
            reason=r.reason,
            pressure_ratio=r.pressure_ratio,
        )

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
            user_type=int(user_type),
            subject=subject,
            session_id=session_id,
            transport=int(transport),
            route=route,
            request_id=request_id,
            payload=payload,
            idempotency_key=idempotency_key or "",
        )
        r = await self._call("admission", "EnqueueAtomic", request, timeout=timeout, retry=bool(idempotency_key))
        return EnqueueResult(
            decision=_enum(Decision, r.decision),
            http_status=r.http_status,
            retry_after_ms=r.retry_after_ms,
            reason=r.reason,
            pressure_ratio=r.pressure_ratio,
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
            status=int(status),
        )
        r = await self._call("workers", "Heartbeat", request, timeout=timeout, retry=True)
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
        r = await self._call("workers", "LeaseTasks", request, timeout=timeout, retry=False)
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
        await self._call("workers", "CompleteTask", request, timeout=timeout, retry=False)

    async def extend_lease(self, task_id: str, lease_id: str, lease_ms: int, *, timeout: float | None = None) -> int:
        """Extends a held lease to ``lease_ms`` from now; answers the new expiry (Unix ms)."""
        request = workers_pb2.ExtendLeaseRequest(task_id=task_id, lease_id=lease_id, lease_ms=lease_ms)
        r = await self._call("workers", "ExtendLease", request, timeout=timeout, retry=False)
        return r.lease_expires_at_ms

    # ---- Admin (admin token) ------------------------------------------------

    async def capacity_calculation(self, *, timeout: float | None = None) -> CapacityCalculation:
        """The seed's eight-step capacity calculation, from a fresh snapshot."""
        r = await self._call(
            "admin", "GetCapacityCalculation", admin_pb2.GetCapacityCalculationRequest(), timeout=timeout, retry=True
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
