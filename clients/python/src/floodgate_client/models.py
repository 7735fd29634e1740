"""Typed values of floodgate's API: enums, results and errors.

The enums mirror ``floodgate.v1`` (``common.proto``) value for value, so
``UserType.REGISTERED == 2 == USER_TYPE_REGISTERED``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

__all__ = [
    "AdmissionResult",
    "CapacityCalculation",
    "Decision",
    "DeadlineExceededError",
    "EnqueueResult",
    "FailedPreconditionError",
    "FloodgateError",
    "HeartbeatResult",
    "Identity",
    "InvalidArgumentError",
    "LeasedTask",
    "PermissionDeniedError",
    "ProcessStatus",
    "Transport",
    "UnauthenticatedError",
    "UnavailableError",
    "UserType",
    "retry_after_seconds",
]


class UserType(enum.IntEnum):
    """Who the chat request is for; decides thresholds and rate limits."""

    UNSPECIFIED = 0
    ANONYMOUS = 1
    REGISTERED = 2
    PRIVILEGED = 3


class Transport(enum.IntEnum):
    """Which frontend entry point asked (analytics only; protection is equal)."""

    UNSPECIFIED = 0
    REST = 1
    WEBSOCKET = 2


class Decision(enum.IntEnum):
    """The answer to an admission question."""

    UNSPECIFIED = 0
    ADMIT = 1
    RATE_LIMITED = 2
    BACKPRESSURE = 3
    CIRCUIT_OPEN = 4


class ProcessStatus(enum.IntEnum):
    """A worker process's self-reported health."""

    UNSPECIFIED = 0
    HEALTHY = 1
    DEGRADED = 2
    UNHEALTHY = 3


_E = TypeVar("_E", bound=enum.IntEnum)


def _enum(kind: type[_E], raw: int) -> _E:
    """``kind(raw)``, or its UNSPECIFIED member for a value this client does not know."""
    try:
        return kind(raw)
    except ValueError:
        return kind(0)


def retry_after_seconds(retry_after_ms: int) -> int:
    """An HTTP ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(retry_after_ms / 1000))


# HTTP status a frontend sends for each refusal, used when an answer carries
# no http_status of its own.
_DEFAULT_STATUS = {
    Decision.ADMIT: 200,
    Decision.RATE_LIMITED: 429,
    Decision.BACKPRESSURE: 503,
    Decision.CIRCUIT_OPEN: 503,
}


@dataclass(frozen=True)
class Identity:
    """Who a frontend request is for, as the integrations pass it to floodgate.

    ``subject`` is what is rate-limited: the user id, or a session id / IP
    address for anonymous users.
    """

    user_type: UserType
    subject: str
    session_id: str = ""


@dataclass(frozen=True)
class AdmissionResult:
    """floodgate's answer to ``CheckCapacity`` (Level 1)."""

    decision: Decision
    http_status: int
    retry_after_ms: int
    reason: str
    pressure_ratio: float

    @property
    def admitted(self) -> bool:
        return self.decision == Decision.ADMIT

    @property
    def retry_after_seconds(self) -> int:
        """``Retry-After`` for a refusal (seconds, rounded up, at least 1); 0 when admitted."""
        return 0 if self.admitted else retry_after_seconds(self.retry_after_ms)

    @property
    def status(self) -> int:
        """The HTTP status to answer: the server's, or 200/429/503 by decision."""
        return self.http_status or _DEFAULT_STATUS.get(self.decision, 503)

    def error_payload(self) -> dict[str, Any]:
        """A JSON-able description of a refusal (for HTTP bodies and socket.io events)."""
        return {
            "decision": self.decision.name,
            "http_status": self.status,
            "reason": self.reason,
            "retry_after_ms": self.retry_after_ms,
        }


@dataclass(frozen=True)
class EnqueueResult(AdmissionResult):
    """floodgate's answer to ``EnqueueAtomic`` (Level 2)."""

    task_id: str | None = None
    # 1-based position in the task's priority queue when it was enqueued.
    queue_position: int = 0
    # The idempotency key the request carried (generated or the caller's).
    idempotency_key: str | None = None


@dataclass(frozen=True)
class HeartbeatResult:
    """floodgate's answer to ``Heartbeat``."""

    # The health floodgate now records for the process (HEALTHY, DEGRADED, UNHEALTHY).
    health: str
    # The interval at which floodgate expects heartbeats.
    heartbeat_interval_ms: int
    # System capacity T after this heartbeat.
    system_capacity: int


@dataclass(frozen=True)
class LeasedTask:
    """A chat task leased to this worker by ``LeaseTasks``."""

    task_id: str
    lease_id: str
    payload: bytes
    user_type: UserType
    enqueued_at_ms: int
    delivery_count: int
    lease_expires_at_ms: int


@dataclass(frozen=True)
class CapacityCalculation:
    """The seed's eight-step capacity breakdown (``Admin.GetCapacityCalculation``)."""

    concurrent_per_process: int
    processes_per_instance: int
    capacity_buffer: float
    queue_multiplier: int
    instances_found: tuple[str, ...]
    # step_1_config ... step_8_system_total, as floodgate words them.
    breakdown: dict[str, str]
    healthy_chat_rest_processes: int
    total_concurrent: int
    effective: int
    queue_capacity: int
    total_per_instance: tuple[int, ...]
    instances: int
    system_total: int
    anonymous_limit: int
    registered_limit: int
    privileged_limit: int
    # The message as received, for fields this dataclass does not lift out.
    raw: Any = field(default=None, repr=False, compare=False)


class FloodgateError(Exception):
    """A call to floodgate failed (not a refusal: refusals are results)."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        self.code = code
        self.details = details
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {details}")


class UnauthenticatedError(FloodgateError):
    """Missing or unknown caller token."""


class PermissionDeniedError(FloodgateError):
    """The caller's token does not carry the role this call needs."""


class InvalidArgumentError(FloodgateError):
    """floodgate rejected the request's fields (the message names the field)."""


class FailedPreconditionError(FloodgateError):
    """E.g. completing or extending a lease that is no longer held."""


class UnavailableError(FloodgateError):
    """floodgate (or its store) cannot be reached; retried where safe."""


class DeadlineExceededError(FloodgateError):
    """The call's deadline passed."""


_ERRORS: dict[grpc.StatusCode, type[FloodgateError]] = {
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def error_for(code: grpc.StatusCode, details: str, method: str = "") -> FloodgateError:
    """The most specific FloodgateError for a gRPC status."""
    return _ERRORS.get(code, FloodgateError)(code, details, method)
