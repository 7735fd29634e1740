"""Python client of floodgate, the admission-control service of the chat platform.

- :class:`FloodgateClient`: the asyncio (grpc.aio) client.
- :mod:`floodgate_client.fastapi`: Level 1 as a FastAPI dependency, Level 2 as a helper
  (``pip install 'floodgate-client[fastapi]'``).
- :mod:`floodgate_client.socketio`: connect and per-message guards for python-socketio
  (``pip install 'floodgate-client[socketio]'``).
- :mod:`floodgate_client.worker`: the heartbeat loop and the lease → handle → complete loop.
"""

__version__ = "0.1.0"

from floodgate_client.client import DEFAULT_TARGET, FloodgateClient, RetryPolicy  # noqa: E402
from floodgate_client.models import (  # noqa: E402
    AdmissionResult,
    CapacityCalculation,
    DeadlineExceededError,
    Decision,
    EnqueueResult,
    FailedPreconditionError,
    FloodgateError,
    HeartbeatResult,
    Identity,
    InvalidArgumentError,
    LeasedTask,
    PermissionDeniedError,
    ProcessStatus,
    Transport,
    UnauthenticatedError,
    UnavailableError,
    UserType,
    retry_after_seconds,
)
from floodgate_client.worker import HeartbeatLoop, TaskWorker  # noqa: E402

__all__ = [
    "DEFAULT_TARGET",
    "AdmissionResult",
    "CapacityCalculation",
    "DeadlineExceededError",
    "Decision",
    "EnqueueResult",
    "FailedPreconditionError",
    "FloodgateClient",
    "FloodgateError",
    "HeartbeatLoop",
    "HeartbeatResult",
    "Identity",
    "InvalidArgumentError",
    "LeasedTask",
    "PermissionDeniedError",
    "ProcessStatus",
    "RetryPolicy",
    "TaskWorker",
    "Transport",
    "UnauthenticatedError",
    "UnavailableError",
    "UserType",
    "__version__",
    "retry_after_seconds",
]
