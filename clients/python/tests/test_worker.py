"""The worker helpers (HeartbeatLoop, TaskWorker) against the real floodgate."""

from __future__ import annotations

import asyncio

from floodgate_client import Decision, HeartbeatLoop, LeasedTask, ProcessStatus, TaskWorker, UserType
from support import one_chat_process, wait_until

# Fast heartbeats so that staleness shows within a test: a process that
# stops beating leaves the capacity 300 ms after its last heartbeat.
FAST_HEARTBEATS = {"heartbeat_interval_ms": 50, "stale_after_ms": 300}


async def test_heartbeats_make_capacity_appear_and_stopping_makes_it_leave(floodgate_factory):
    fg = floodgate_factory(FAST_HEARTBEATS)
    load = {"value": 0}
    async with fg.client("worker") as worker, fg.client("admin") as admin, fg.client("frontend") as frontend:
        beat = HeartbeatLoop(worker, "home-instance-1", "p1", capacity=lambda: 5, load=lambda: load["value"])
        assert (await admin.capacity_calculation()).system_total == 0

        await beat.start()
        # start() returns after the first heartbeat: the capacity is there.
        assert beat.sent == 1 and beat.last.system_capacity == 14
        assert beat.last.heartbeat_interval_ms == 50  # the loop beats at floodgate's interval
        assert (await admin.capacity_calculation()).system_total == 14
        assert (await frontend.check_capacity(UserType.REGISTERED, "u1")).admitted

        # The loop keeps the process fresh well past stale_after (300 ms) ...
        await wait_until(lambda: beat.sent >= 15, what="15 heartbeats")
        assert beat.running and beat.failures == 0
        assert (await admin.capacity_calculation()).system_total == 14
        # ... and reads load and capacity on every beat: load = capacity is DEGRADED (still counted).
        load["value"] = 5
        await wait_until(lambda: beat.last.health == "degraded", what="a DEGRADED heartbeat")
        assert (await admin.capacity_calculation()).system_total == 14
        load["value"] = 1
        await wait_until(lambda: beat.last.health == "healthy", what="a HEALTHY heartbeat")

        # Stopping sends a final UNHEALTHY heartbeat: the process leaves at once.
        await beat.stop()
        assert not beat.running
        assert beat.last.health == "unhealthy" and beat.last.system_capacity == 0
        assert (await admin.capacity_calculation()).system_total == 0
        refused = await frontend.check_capacity(UserType.REGISTERED, "u1")
        assert (refused.decision, refused.reason) == (Decision.BACKPRESSURE, "no healthy chat REST processes")

        # Nothing beats after stop.
        sent = beat.sent
        await asyncio.sleep(0.3)
        assert beat.sent == sent


async def test_the_heartbeat_loop_jitters_its_interval(worker):
    beat = HeartbeatLoop(worker, "i", "p", capacity=5, interval=1.0, jitter=0.2)
    delays = [beat.next_delay() for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


async def test_lease_handle_complete_frees_capacity(worker, frontend):
    await one_chat_process(worker)
    # Fill the anonymous share (8), with a registered and a privileged task last.
    for i in range(6):
        assert (await frontend.enqueue_atomic(UserType.ANONYMOUS, f"a{i}", f"anonymous-{i}".encode())).admitted
    assert (await frontend.enqueue_atomic(UserType.REGISTERED, "r", b"registered")).admitted
    assert (await frontend.enqueue_atomic(UserType.PRIVILEGED, "p", b"privileged")).admitted
    assert not (await frontend.enqueue_atomic(UserType.ANONYMOUS, "late", b"late")).admitted

    handled: list[bytes] = []

    async def handle(task: LeasedTask) -> None:
        handled.append(task.payload)

    tasks = TaskWorker(worker, handle, instance_id="home-instance-1", process_id="p1", wait_ms=200)
    async with tasks:
        await wait_until(lambda: tasks.completed == 8, what="8 tasks completed")
        # Capacity is free again.
        late = await frontend.enqueue_atomic(UserType.ANONYMOUS, "late", b"late")
        assert late.admitted
        await wait_until(lambda: tasks.completed == 9, what="the late task completed")
    assert not tasks.running and tasks.active == 0 and tasks.failed == 0
    # Privileged first, then registered, then FIFO within the anonymous class.
    assert handled == [b"privileged", b"registered", *[f"anonymous-{i}".encode() for i in range(6)], b"late"]
    # Everything was completed: the whole anonymous share is free.
    for i in range(8):
        assert (await frontend.enqueue_atomic(UserType.ANONYMOUS, f"b{i}")).admitted


async def test_long_tasks_keep_their_lease(worker, frontend):
    await one_chat_process(worker)
    lease_ms = 300

    # Control: a lease nobody extends expires, and the task comes back.
    assert (await frontend.enqueue_atomic(UserType.REGISTERED, "u", b"control")).admitted
    [leased] = await worker.lease_tasks("home-instance-1", "p1", lease_ms=lease_ms)

    async def redelivered():
        tasks = await worker.lease_tasks("home-instance-1", "p1", lease_ms=60_000, wait_ms=500)
        return tasks[0] if tasks else None

    again = await wait_until(redelivered, what="the unextended task redelivered")
    assert (again.task_id, again.delivery_count) == (leased.task_id, 2)
    await worker.complete_task(again.task_id, again.lease_id)

    # The helper extends the lease while the handler runs, however long.
    assert (await frontend.enqueue_atomic(UserType.REGISTERED, "u", b"long")).admitted
    release = asyncio.Event()
    seen: list[LeasedTask] = []

    async def handle(task: LeasedTask) -> None:
        seen.append(task)
        await release.wait()

    tasks = TaskWorker(
        worker, handle, instance_id="home-instance-1", process_id="p1", concurrency=2, lease_ms=600, wait_ms=100
    )
    async with tasks:
        # Several lease periods (and housekeeping passes, about one a second)
        # go by: extensions every 200 ms keep the 600 ms lease alive.
        await wait_until(lambda: tasks.extensions >= 12, what="12 lease extensions")
        release.set()
        await wait_until(lambda: tasks.completed == 1, what="the long task completed")
    assert [t.payload for t in seen] == [b"long"]  # handled once, never redelivered
    assert seen[0].delivery_count == 1
    assert tasks.leases_lost == 0 and tasks.failed == 0


async def test_a_failing_handler_leaves_the_task_to_be_redelivered(worker, frontend):
    await one_chat_process(worker)
    assert (await frontend.enqueue_atomic(UserType.REGISTERED, "u", b"flaky")).admitted
    deliveries: list[int] = []

    async def handle(task: LeasedTask) -> None:
        deliveries.append(task.delivery_count)
        if task.delivery_count == 1:
            raise RuntimeError("first try fails")

    tasks = TaskWorker(worker, handle, instance_id="home-instance-1", process_id="p1", lease_ms=200, wait_ms=200)
    async with tasks:
        await wait_until(lambda: tasks.completed == 1, what="the retried task completed")
    assert deliveries == [1, 2]
    assert tasks.failed == 1


async def test_stopping_a_worker_finishes_the_tasks_in_hand(worker, frontend):
    await one_chat_process(worker)
    for i in range(3):
        assert (await frontend.enqueue_atomic(UserType.REGISTERED, f"u{i}", b"x")).admitted
    started = asyncio.Event()
    release = asyncio.Event()

    async def handle(task: LeasedTask) -> None:
        started.set()
        await release.wait()

    tasks = TaskWorker(worker, handle, instance_id="i", process_id="p", concurrency=3, wait_ms=100)
    await tasks.start()
    await wait_until(lambda: tasks.active == 3, what="3 tasks in hand")
    stopping = asyncio.create_task(tasks.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the handlers
    release.set()
    await stopping
    assert tasks.completed == 3 and tasks.active == 0
    # The heartbeat loop reads `active` as the load.
    beat = HeartbeatLoop(worker, "i", "p", capacity=5, load=lambda: tasks.active, status=ProcessStatus.HEALTHY)
    assert (await beat.beat()).health == "healthy"
