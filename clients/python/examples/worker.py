"""A chat worker: heartbeats, and leases → handles → completes chat tasks.

It reports one chat REST process (``service_type`` chat, ``service_name``
rest) of capacity ``WORKER_CAPACITY`` with its current load, handles up to
that many tasks at once (printing ``handled task <id> ...``), and on SIGINT /
SIGTERM stops leasing, finishes the tasks in hand and sends a final
UNHEALTHY heartbeat so floodgate drops it from the capacity at once.

Run (floodgate on 127.0.0.1:50051)::

    FLOODGATE_TOKEN=<worker token> python examples/worker.py

Environment: FLOODGATE_TARGET (default 127.0.0.1:50051), FLOODGATE_TOKEN
(default none), WORKER_INSTANCE_ID (default home-instance-1),
WORKER_PROCESS_ID (default pid-<pid>), WORKER_CAPACITY (5),
WORKER_SECONDS_PER_TASK (0.1).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

from floodgate_client import DEFAULT_TARGET, FloodgateClient, HeartbeatLoop, LeasedTask, TaskWorker

SECONDS_PER_TASK = float(os.environ.get("WORKER_SECONDS_PER_TASK", "0.1"))


async def handle(task: LeasedTask) -> None:
    """Pretend to answer the chat message."""
    try:
        message = json.loads(task.payload)
    except ValueError:
        message = {"text": task.payload.decode(errors="replace")}
    await asyncio.sleep(SECONDS_PER_TASK)
    print(
        f"handled task {task.task_id} ({task.user_type.name.lower()}, delivery {task.delivery_count}):"
        f" {message.get('text')!r} from {message.get('user', '?')} via {message.get('transport', '?')}",
        flush=True,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    target = os.environ.get("FLOODGATE_TARGET", DEFAULT_TARGET)
    instance_id = os.environ.get("WORKER_INSTANCE_ID", "home-instance-1")
    process_id = os.environ.get("WORKER_PROCESS_ID", f"pid-{os.getpid()}")
    capacity = int(os.environ.get("WORKER_CAPACITY", "5"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with FloodgateClient(target, token=os.environ.get("FLOODGATE_TOKEN") or None) as client:
        tasks = TaskWorker(client, handle, instance_id=instance_id, process_id=process_id, concurrency=capacity)
        beat = HeartbeatLoop(client, instance_id, process_id, capacity=capacity, load=lambda: tasks.active)
        # Leaving the block stops the worker first (drains), then the heartbeats (final UNHEALTHY).
        async with beat, tasks:
            capacity_now = beat.last.system_capacity if beat.last else "unknown"
            print(f"worker ready: {instance_id}/{process_id} capacity {capacity}, system capacity {capacity_now}", flush=True)
            await stop.wait()
            print("worker stopping", flush=True)
    print(f"worker stopped after {tasks.completed} tasks", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
