"""Chat-worker helpers: the heartbeat loop and the lease → handle → complete loop.

Typical worker::

    client = FloodgateClient(target, token=worker_token)
    worker = TaskWorker(client, handle, instance_id="home-instance-1", process_id="p1", concurrency=5)
    beat = HeartbeatLoop(client, "home-instance-1", "p1", capacity=5, load=lambda: worker.active)
    async with beat, worker:
        await stop_event.wait()
    # leaving the block stops leasing, drains in-flight tasks, and sends a
    # final UNHEALTHY heartbeat so the process leaves the capacity at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Self, Union

from floodgate_client.client import FloodgateClient
from floodgate_client.models import (
    FailedPreconditionError,
    FloodgateError,
    HeartbeatResult,
    LeasedTask,
    ProcessStatus,
)

__all__ = ["HeartbeatLoop", "TaskWorker"]

log = logging.getLogger("floodgate_client.worker")

# A number, or a (sync or async) callable answering one.
IntSource = Union[int, Callable[[], Union[int, Awaitable[int]]]]
StatusSource = Union[ProcessStatus, Callable[[], Union[ProcessStatus, Awaitable[ProcessStatus]]]]


async def _value(source: Any) -> Any:
    """``source``, or what calling (and awaiting) it answers."""
    value = source() if callable(source) else source
    if inspect.isawaitable(value):
        value = await value
    return value


class _ProcessLoop:
    """A background loop on behalf of one worker process: who it is, and
    ``async with`` running it (:meth:`start` on entry, :meth:`stop` on exit)."""

    def __init__(self, client: FloodgateClient, instance_id: str, process_id: str) -> None:
        self.client = client
        self.instance_id = instance_id
        self.process_id = process_id

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class HeartbeatLoop(_ProcessLoop):
    """Sends ``Heartbeat`` for one worker process from a background task.

    ``capacity``, ``load`` and ``status`` are numbers or callables (sync or
    async) read before every heartbeat. The interval is ``interval`` seconds,
    or else the ``heartbeat_interval_ms`` floodgate answers (5 s by default),
    each wait jittered by ±``jitter`` (a fraction) so a fleet does not beat
    in step. A failed heartbeat is logged and the loop goes on.

    :meth:`start` sends the first heartbeat before it returns, so the process
    counts in the capacity right away; :meth:`stop` ends the loop and sends a
    final ``PROCESS_STATUS_UNHEALTHY`` heartbeat, so the process leaves the
    capacity at once instead of after ``stale_after``.
    """

    def __init__(
        self,
        client: FloodgateClient,
        instance_id: str,
        process_id: str,
        *,
        capacity: IntSource,
        load: IntSource = 0,
        status: StatusSource = ProcessStatus.HEALTHY,
        interval: float | None = None,
        jitter: float = 0.1,
        service_type: str = "chat",
        service_name: str = "rest",
        on_result: Callable[[HeartbeatResult], object] | None = None,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        super().__init__(client, instance_id, process_id)
        self.service_type = service_type
        self.service_name = service_name
        self._capacity = capacity
        self._load = load
        self._status = status
        self._interval = interval
        self.jitter = jitter
        self._on_result = on_result
        self._task: asyncio.Task[None] | None = None
        #: Heartbeats acknowledged by floodgate, and heartbeats that failed.
        self.sent = 0
        self.failures = 0
        #: floodgate's last answer.
        self.last: HeartbeatResult | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def next_delay(self) -> float:
        """Seconds until the next heartbeat: the interval, jittered."""
        if self._interval is not None:
            base = self._interval
        elif self.last is not None and self.last.heartbeat_interval_ms > 0:
            base = self.last.heartbeat_interval_ms / 1000
        else:
            base = 5.0
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)

    async def beat(self, status: ProcessStatus | None = None) -> HeartbeatResult:
        """Sends one heartbeat now (``status`` overrides the status source)."""
        capacity = int(await _value(self._capacity))
        load = int(await _value(self._load))
        if status is None:
            status = ProcessStatus(await _value(self._status))
        result = await self.client.heartbeat(
            self.instance_id,
            self.process_id,
            capacity=capacity,
            load=load,
            status=status,
            service_type=self.service_type,
            service_name=self.service_name,
        )
        self.last = result
        self.sent += 1
        if self._on_result is not None:
            await _value(lambda: self._on_result(result))
        return result

    async def _beat_logged(self) -> None:
        try:
            await self.beat()
        except FloodgateError as e:
            self.failures += 1
            log.warning("heartbeat of %s/%s failed: %s", self.instance_id, self.process_id, e)
        except Exception:
            self.failures += 1
            log.exception("heartbeat of %s/%s failed", self.instance_id, self.process_id)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay())
            await self._beat_logged()

    async def start(self) -> None:
        """Sends the first heartbeat, then keeps beating in the background."""
        if self.running:
            return
        await self._beat_logged()
        self._task = asyncio.create_task(self._run(), name=f"floodgate-heartbeat-{self.process_id}")

    async def stop(self, *, final_status: ProcessStatus | None = ProcessStatus.UNHEALTHY) -> None:
        """Ends the loop and sends a final heartbeat with ``final_status`` (None: send none).

        Does nothing when the loop is not running.
        """
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if final_status is not None:
            try:
                await self.beat(final_status)
            except FloodgateError as e:
                log.warning("final heartbeat of %s/%s failed: %s", self.instance_id, self.process_id, e)


Handler = Callable[[LeasedTask], Awaitable[object]]


class TaskWorker(_ProcessLoop):
    """Leases chat tasks, runs ``handler`` on each, and completes them.

    Up to ``concurrency`` tasks run at once; the worker leases only as many
    as it has free slots, long-polling ``wait_ms`` for work. While a handler
    runs, its lease is extended every ``extend_every`` seconds (default a
    third of ``lease_ms``), so long tasks are not redelivered. When the
    handler returns, the task is completed (freeing its capacity). When the
    handler raises, the task is *not* completed: its lease expires and
    floodgate delivers it again, up to ``max_deliveries``, then dead-letters
    it.

    ``active`` is the number of tasks in hand: feed it to
    :class:`HeartbeatLoop` as ``load``.
    """

    def __init__(
        self,
        client: FloodgateClient,
        handler: Handler,
        *,
        instance_id: str,
        process_id: str,
        concurrency: int = 1,
        lease_ms: int = 30_000,
        wait_ms: int = 2_000,
        extend_every: float | None = None,
        error_backoff: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        super().__init__(client, instance_id, process_id)
        self.handler = handler
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.wait_ms = wait_ms
        self.extend_every = extend_every if extend_every is not None else lease_ms / 3000
        self.error_backoff = error_backoff
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        #: Counters: tasks completed, handler failures, lease extensions, leases lost.
        self.completed = 0
        self.failed = 0
        self.extensions = 0
        self.leases_lost = 0

    @property
    def active(self) -> int:
        """Tasks leased and not yet finished."""
        return len(self._inflight)

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def run(self) -> None:
        """Leases and handles tasks until :meth:`stop`; then waits for the tasks in hand."""
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._inflight)
                if free <= 0:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    tasks = await self.client.lease_tasks(
                        self.instance_id,
                        self.process_id,
                        max_tasks=free,
                        lease_ms=self.lease_ms,
                        wait_ms=self.wait_ms,
                    )
                except FloodgateError as e:
                    log.warning("LeaseTasks failed: %s", e)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.error_backoff)
                    continue
                for task in tasks:
                    t = asyncio.create_task(self._handle(task), name=f"floodgate-task-{task.task_id}")
                    self._inflight.add(t)
                    t.add_done_callback(self._inflight.discard)
        finally:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _handle(self, task: LeasedTask) -> None:
        extender = asyncio.create_task(self._keep_leased(task))
        try:
            await self.handler(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failed += 1
            log.exception("handler failed on task %s; its lease will expire and it will be redelivered", task.task_id)
            return
        finally:
            extender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await extender
        try:
            await self.client.complete_task(task.task_id, task.lease_id)
            self.completed += 1
        except FloodgateError as e:
            log.warning("CompleteTask %s failed: %s", task.task_id, e)

    async def _keep_leased(self, task: LeasedTask) -> None:
        while True:
            await asyncio.sleep(self.extend_every)
            try:
                await self.client.extend_lease(task.task_id, task.lease_id, self.lease_ms)
                self.extensions += 1
            except FailedPreconditionError as e:
                self.leases_lost += 1
                log.warning("lease of task %s is lost; it may be delivered again: %s", task.task_id, e)
                return
            except FloodgateError as e:
                log.warning("ExtendLease %s failed (will retry): %s", task.task_id, e)

    async def start(self) -> None:
        """Runs :meth:`run` in a background task."""
        if not self.running:
            self._stopping.clear()
            self._runner = asyncio.create_task(self.run(), name=f"floodgate-worker-{self.process_id}")

    async def stop(self, timeout: float | None = None) -> None:
        """Stops leasing and waits for the current poll and the tasks in hand.

        With ``timeout`` (seconds), whatever is still running then is
        cancelled; those tasks are not completed and will be redelivered.
        """
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(runner), timeout)
        except asyncio.TimeoutError:
            runner.cancel()
            for t in list(self._inflight):
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
