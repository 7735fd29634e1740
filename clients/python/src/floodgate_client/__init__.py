"""Python client of floodgate, the admission-control service of the chat platform.

- :class:`FloodgateClient`: the asyncio (grpc.aio) client.
- :mod:`floodgate_client.fastapi`: Level 1 as a FastAPI dependency, Level 2 as a helper
  (``pip install 'floodgate-client[fastapi]'``).
- :mod:`floodgate_client.socketio`: connect and per-message guards for python-socketio
  (``pip install 'floodgate-client[socketio]'``).
- :mod:`floodgate_client.worker`: the heartbeat loop and the lease → handle → complete loop.
"""

__version__ = "0.1.0"

# Each module's __all__ is the one list of what it exports; the package
# re-exports all of them.
from floodgate_client import client, models, worker  # noqa: E402
from floodgate_client.client import *  # noqa: E402, F403
from floodgate_client.models import *  # noqa: E402, F403
from floodgate_client.worker import *  # noqa: E402, F403

__all__ = ["__version__"]
__all__ += client.__all__
__all__ += models.__all__
__all__ += worker.__all__
