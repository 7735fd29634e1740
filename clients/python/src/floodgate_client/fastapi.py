"""FastAPI integration: Level 1 as a route dependency, Level 2 as a helper.

::

    from fastapi import Depends, FastAPI
    from floodgate_client import FloodgateClient, Identity, UserType
    from floodgate_client.fastapi import enqueue_or_raise, require_capacity

    floodgate = FloodgateClient("127.0.0.1:50051", token="frontend-token")
    app = FastAPI()

    def who(request) -> Identity:            # your authentication decides this
        return Identity(UserType.REGISTERED, subject=request.headers["x-user-id"])

    @app.post("/landing/chat")
    async def chat(body: dict, admitted=Depends(require_capacity(floodgate, who))):
        task_id = await enqueue_or_raise(floodgate, admitted.identity, body["text"].encode())
        return {"task_id": task_id}

Refusals become ``HTTPException`` 429 (rate limited) or 503 (backpressure,
circuit open) with a ``Retry-After`` header in whole seconds (rounded up)
and a JSON ``detail`` carrying ``decision``, ``reason`` and
``retry_after_ms``. When floodgate itself cannot be reached (UNAVAILABLE or
deadline exceeded) the dependency answers 503 with ``Retry-After: 1`` (fail
closed), or admits the request when made with ``fail_open=True`` (Level 1
only: Level 2 always fails closed, as it cannot enqueue what it cannot
store). INVALID_ARGUMENT (e.g. a payload over ``max_payload_bytes``) becomes
400; any other failure (e.g. a wrong frontend token) 503.
"""

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Union

from fastapi import HTTPException, Request

from floodgate_client.client import FloodgateClient
from floodgate_client.models import (
    AdmissionResult,
    DeadlineExceededError,
    Decision,
    FloodgateError,
    Identity,
    InvalidArgumentError,
    Transport,
    UnavailableError,
    UserType,
    retry_after_seconds,
)

__all__ = [
    "Admitted",
    "anonymous_by_ip",
    "check_or_raise",
    "enqueue_or_raise",
    "refusal_exception",
    "require_capacity",
]

ClientSource = Union[FloodgateClient, Callable[[Request], FloodgateClient]]
Identify = Callable[[Request], Union[Identity, Awaitable[Identity]]]

# Retry-After (ms) suggested when floodgate cannot be reached.
UNREACHABLE_RETRY_AFTER_MS = 1000


@dataclass(frozen=True)
class Admitted:
    """What :func:`require_capacity` hands the route: the identity and floodgate's answer."""

    identity: Identity
    result: AdmissionResult


def anonymous_by_ip(request: Request) -> Identity:
    """The default identity: an anonymous user rate-limited by client address."""
    host = request.client.host if request.client else "unknown"
    return Identity(UserType.ANONYMOUS, subject=f"ip:{host}")


def refusal_exception(result: AdmissionResult) -> HTTPException:
    """The HTTPException (429/503 with ``Retry-After``) for a refused answer."""
    return HTTPException(
        status_code=result.status,
        detail=result.error_payload(),
        headers={"Retry-After": str(result.retry_after_seconds)},
    )


def _failure(e: FloodgateError) -> HTTPException:
    """The HTTPException for a failed call: 400 for bad input, else 503 (fail closed)."""
    if isinstance(e, InvalidArgumentError):
        return HTTPException(status_code=400, detail={"reason": e.details})
    return HTTPException(
        status_code=503,
        detail={
            "decision": "UNAVAILABLE",
            "http_status": 503,
            "reason": f"admission control unavailable: {e.code.name}",
            "retry_after_ms": UNREACHABLE_RETRY_AFTER_MS,
        },
        headers={"Retry-After": str(retry_after_seconds(UNREACHABLE_RETRY_AFTER_MS))},
    )


def _client(source: ClientSource, request: Request) -> FloodgateClient:
    return source if isinstance(source, FloodgateClient) else source(request)


async def check_or_raise(
    client: FloodgateClient,
    identity: Identity,
    *,
    route: str = "",
    transport: Transport = Transport.REST,
    request_id: str = "",
    fail_open: bool = False,
    timeout: float | None = None,
) -> AdmissionResult:
    """Level 1 for one request; raises the 429/503 HTTPException on refusal."""
    try:
        result = await client.check_capacity(
            identity.user_type,
            identity.subject,
            session_id=identity.session_id,
            transport=transport,
            route=route,
            request_id=request_id,
            timeout=timeout,
        )
    except FloodgateError as e:
        if fail_open and isinstance(e, (UnavailableError, DeadlineExceededError)):
            return AdmissionResult(Decision.ADMIT, 200, 0, f"admitted without admission control ({e.code.name})", 0.0)
        raise _failure(e) from e
    if not result.admitted:
        raise refusal_exception(result)
    return result


def require_capacity(
    client: ClientSource,
    identify: Identify = anonymous_by_ip,
    *,
    route: str | None = None,
    transport: Transport = Transport.REST,
    fail_open: bool = False,
    timeout: float | None = None,
) -> Callable[[Request], Awaitable[Admitted]]:
    """A FastAPI dependency running Level 1 (``CheckCapacity``) for a route.

    ``client`` is a FloodgateClient or a callable taking the Request (e.g.
    ``lambda r: r.app.state.floodgate``). ``identify`` (sync or async) maps
    the Request to an :class:`Identity`. ``route`` defaults to the request
    path. The request's ``X-Request-Id`` header is passed on. The dependency
    returns :class:`Admitted` and also stores it as ``request.state.floodgate``.
    """

    async def floodgate_level1(request: Request) -> Admitted:
        identity = identify(request)
        if inspect.isawaitable(identity):
            identity = await identity
        result = await check_or_raise(
            _client(client, request),
            identity,
            route=route if route is not None else request.url.path,
            transport=transport,
            request_id=request.headers.get("x-request-id", ""),
            fail_open=fail_open,
            timeout=timeout,
        )
        admitted = Admitted(identity, result)
        request.state.floodgate = admitted
        return admitted

    return floodgate_level1


async def enqueue_or_raise(
    client: FloodgateClient,
    identity: Identity,
    payload: bytes,
    *,
    route: str = "",
    transport: Transport = Transport.REST,
    request_id: str = "",
    idempotency_key: str | None = None,
    generate_idempotency_key: bool = True,
    timeout: float | None = None,
) -> str:
    """Level 2 (``EnqueueAtomic``): enqueues the chat task and returns its task id.

    A refusal raises the same 429/503 HTTPException as Level 1; an
    unreachable floodgate raises 503 (Level 2 fails closed). By default a
    random idempotency key is generated so the call can be retried safely
    on UNAVAILABLE; pass your own (e.g. the client's message id) to make
    retries by *your* caller safe too.
    """
    try:
        result = await client.enqueue_atomic(
            identity.user_type,
            identity.subject,
            payload,
            session_id=identity.session_id,
            transport=transport,
            route=route,
            request_id=request_id,
            idempotency_key=idempotency_key,
            generate_idempotency_key=generate_idempotency_key,
            timeout=timeout,
        )
    except FloodgateError as e:
        raise _failure(e) from e
    if not result.admitted or not result.task_id:
        raise refusal_exception(result)
    return result.task_id
