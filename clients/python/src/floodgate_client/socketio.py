"""python-socketio integration: Level 1 at ``connect`` and per message.

::

    import socketio
    from floodgate_client import FloodgateClient, Identity, UserType
    from floodgate_client.socketio import SocketIOGuard

    sio = socketio.AsyncServer(async_mode="asgi")
    floodgate = FloodgateClient("127.0.0.1:50051", token="frontend-token")

    def who(sid, environ, auth) -> Identity:     # your authentication decides this
        return Identity(UserType.REGISTERED, subject=auth["user_id"], session_id=sid)

    guard = SocketIOGuard(sio, floodgate, identify=who)

    @sio.event
    @guard.connect
    async def connect(sid, environ, auth):
        ...

    @sio.on("chat")
    @guard.message
    async def chat(sid, data):
        ...

At ``connect`` a refusal rejects the connection: the guard raises
``socketio.exceptions.ConnectionRefusedError(reason, payload)``, which a
socket.io client receives as a ``connect_error`` whose ``message`` is the
reason and whose ``data`` is ``{"decision", "http_status", "reason",
"retry_after_ms"}``. Per message, a refusal emits the error event (default
``floodgate_error``) with that payload to the sender, does not run the
handler, and answers the payload as the event's ack (if one was asked for).
:meth:`SocketIOGuard.enqueue` runs Level 2 for a message the same way.

The identity decided at ``connect`` is kept in the socket.io session (key
``floodgate_identity``) and reused for every message of that connection, so
REST and WebSocket users are rate-limited under the same subject.
"""

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Union

import socketio
from socketio.exceptions import ConnectionRefusedError

from floodgate_client.client import FloodgateClient
from floodgate_client.models import (
    AdmissionResult,
    DeadlineExceededError,
    Decision,
    EnqueueResult,
    FloodgateError,
    Identity,
    Transport,
    UnavailableError,
    UserType,
)

__all__ = ["DEFAULT_ERROR_EVENT", "SESSION_KEY", "SocketIOGuard", "anonymous_by_address"]

log = logging.getLogger("floodgate_client.socketio")

DEFAULT_ERROR_EVENT = "floodgate_error"
SESSION_KEY = "floodgate_identity"
# Retry-After (ms) suggested when floodgate cannot be reached.
UNREACHABLE_RETRY_AFTER_MS = 1000

IdentifyConnect = Callable[[str, dict[str, Any], Any], Union[Identity, Awaitable[Identity]]]


def anonymous_by_address(sid: str, environ: dict[str, Any], auth: Any) -> Identity:
    """The default identity: an anonymous user rate-limited by client address."""
    address = environ.get("REMOTE_ADDR") or environ.get("asgi.scope", {}).get("client", ("unknown",))[0]
    return Identity(UserType.ANONYMOUS, subject=f"ip:{address}", session_id=sid)


def _accepts_auth(handler: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 3


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    result = handler(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class SocketIOGuard:
    """Level 1 (``CheckCapacity``) guards for a python-socketio ``AsyncServer``.

    ``client`` is the FloodgateClient (frontend token). ``identify(sid,
    environ, auth)`` (sync or async) maps a connection to an
    :class:`Identity`. ``route`` is sent to floodgate as the request's route.
    When floodgate cannot be reached the guard refuses (fail closed) unless
    ``fail_open=True``.
    """

    def __init__(
        self,
        sio: "socketio.AsyncServer",
        client: FloodgateClient,
        *,
        identify: IdentifyConnect = anonymous_by_address,
        route: str = "/socket.io/chat",
        error_event: str = DEFAULT_ERROR_EVENT,
        fail_open: bool = False,
        namespace: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.sio = sio
        self.client = client
        self.identify = identify
        self.route = route
        self.error_event = error_event
        self.fail_open = fail_open
        self.namespace = namespace
        self.timeout = timeout

    async def check(self, identity: Identity) -> AdmissionResult:
        """Level 1 for one WebSocket connect or message (never raises FloodgateError)."""
        try:
            return await self.client.check_capacity(
                identity.user_type,
                identity.subject,
                session_id=identity.session_id,
                transport=Transport.WEBSOCKET,
                route=self.route,
                timeout=self.timeout,
            )
        except FloodgateError as e:
            log.warning("floodgate check failed: %s", e)
            if self.fail_open and isinstance(e, (UnavailableError, DeadlineExceededError)):
                return AdmissionResult(Decision.ADMIT, 200, 0, f"admitted without admission control ({e.code.name})", 0.0)
            return AdmissionResult(
                Decision.UNSPECIFIED,
                503,
                UNREACHABLE_RETRY_AFTER_MS,
                f"admission control unavailable: {e.code.name}",
                0.0,
            )

    async def identity_of(self, sid: str) -> Identity:
        """The identity stored at connect, or an anonymous one keyed by ``sid``."""
        try:
            session = await self.sio.get_session(sid, namespace=self.namespace)
        except KeyError:
            session = {}
        identity = session.get(SESSION_KEY)
        if isinstance(identity, Identity):
            return identity
        return Identity(UserType.ANONYMOUS, subject=f"sid:{sid}", session_id=sid)

    async def refuse(self, sid: str, result: AdmissionResult) -> dict[str, Any]:
        """Emits the error event for a refusal to ``sid``; answers its payload."""
        payload = result.error_payload()
        await self.sio.emit(self.error_event, payload, to=sid, namespace=self.namespace)
        return payload

    async def enqueue(
        self,
        sid: str,
        payload: bytes,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> EnqueueResult:
        """Level 2 for a message of ``sid``: enqueues the chat task under the connection's identity.

        On refusal (or when floodgate cannot be reached: Level 2 fails
        closed) the error event is emitted to ``sid`` and the result says
        ``admitted == False``; on success ``result.task_id`` is set. A random
        idempotency key is used unless one is given, so UNAVAILABLE is retried.
        """
        identity = await self.identity_of(sid)
        try:
            result = await self.client.enqueue_atomic(
                identity.user_type,
                identity.subject,
                payload,
                session_id=identity.session_id,
                transport=Transport.WEBSOCKET,
                route=self.route,
                idempotency_key=idempotency_key,
                generate_idempotency_key=True,
                timeout=timeout,
            )
        except FloodgateError as e:
            log.warning("floodgate enqueue failed: %s", e)
            result = EnqueueResult(
                Decision.UNSPECIFIED, 503, UNREACHABLE_RETRY_AFTER_MS, f"admission control unavailable: {e.code.name}", 0.0
            )
        if not result.admitted:
            await self.refuse(sid, result)
        return result

    def connect(self, handler: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """Decorates a ``connect`` handler: Level 1 first, refusing the connection on refusal."""
        with_auth = _accepts_auth(handler)

        @functools.wraps(handler)
        async def guarded_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> Any:
            identity = await _call(self.identify, sid, environ, auth)
            result = await self.check(identity)
            if not result.admitted:
                raise ConnectionRefusedError(result.reason, result.error_payload())
            async with self.sio.session(sid, namespace=self.namespace) as session:
                session[SESSION_KEY] = identity
            if with_auth:
                return await _call(handler, sid, environ, auth)
            return await _call(handler, sid, environ)

        return guarded_connect

    def message(self, handler: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """Decorates an event handler: Level 1 per message; on refusal emits the error event instead."""

        @functools.wraps(handler)
        async def guarded_message(sid: str, *args: Any) -> Any:
            identity = await self.identity_of(sid)
            result = await self.check(identity)
            if not result.admitted:
                return await self.refuse(sid, result)
            return await _call(handler, sid, *args)

        return guarded_message
