"""Run a whole app in a test, on virtual time: real worker, real storage (in memory), no waits.

    async with durable.testing.run_app(app) as host:
        instance_id = await host.client.start_new("monthly_report")
        status = await durable.testing.run_until_done(host, instance_id)

``run_app`` starts a :class:`durable.Host` on the in-memory store (``memory://``, the SQLite
backend in memory, which passes the same storage contract as the real stores) with a
:class:`~durable.clock.VirtualClock`. ``run_until_done`` lets everything that can happen now
happen, then moves the clock straight to the next timer (a 30-day wait, a 5-minute retry
back-off, a monitor's next check), again and again, until the instance ends. The clock only
moves when the app is idle (no episode, activity or message in flight), so an activity that
finishes quickly still wins its race against a timer, as it would in real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from durable.app import DFApp
from durable.clock import VirtualClock
from durable.errors import DurableError, InstanceNotFoundError, OrchestrationTimeoutError
from durable.host import Host
from durable.status import DurableOrchestrationStatus

# Fast enough for tests: a poll every 20 ms finds work from outside the worker at once.
TEST_OPTIONS: dict[str, Any] = {"poll_interval": 0.02, "lease_seconds": 30.0,
                                "shutdown_timeout": 5.0}


@asynccontextmanager
async def run_app(app: DFApp, *, start: datetime | None = None, storage: str = "memory://",
                  **options: Any) -> AsyncIterator[Host]:
    """A started Host for ``app`` on virtual time (``host.clock``) and in-memory storage."""
    host = Host(app, storage, clock=VirtualClock(start), **{**TEST_OPTIONS, **options})
    async with host:
        yield host


def virtual_clock(host: Host) -> VirtualClock:
    clock = host.clock
    if not isinstance(clock, VirtualClock):
        raise DurableError("This host does not run on virtual time (use durable.testing."
                           "run_app, or Host(..., clock=VirtualClock())).")
    return clock


async def settle(host: Host, timeout: float = 10.0) -> None:
    """Wait (in real time) until nothing can happen without the clock moving."""
    worker = host.worker
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:  # idle on three checks in a row: nothing left in flight
        backlog = await host.backend.backlog()
        idle = (worker is None or worker.is_idle) and not backlog.messages and not (
            backlog.activities)
        quiet = quiet + 1 if idle else 0
        if time.monotonic() > deadline:
            raise OrchestrationTimeoutError(f"The app did not settle within {timeout}s.")
        await asyncio.sleep(0.005)


async def advance(host: Host, delta: timedelta | float) -> None:
    """Move the virtual clock on by ``delta`` and let what came due run."""
    await settle(host)
    virtual_clock(host).advance(delta)
    await settle(host)


async def run_until_done(host: Host, instance_id: str, *,
                         max_time: timedelta = timedelta(days=3650),
                         real_timeout: float = 30.0) -> DurableOrchestrationStatus:
    """Let the instance run to its end, jumping the clock to each next timer; return its
    final status. ``max_time`` bounds the virtual time spent, ``real_timeout`` the wall time."""
    clock = virtual_clock(host)
    limit = clock.now() + max_time.total_seconds()
    deadline = time.monotonic() + real_timeout
    while True:
        status = await _finished(host, instance_id)
        if status is not None:
            return status
        await settle(host, max(0.1, deadline - time.monotonic()))
        status = await _finished(host, instance_id)
        if status is not None:
            return status
        due = await host.backend.next_wakeup()
        if due is None:
            raise OrchestrationTimeoutError(
                f"Instance '{instance_id}' waits for something other than time (an event?).")
        if due > limit:
            raise OrchestrationTimeoutError(
                f"Instance '{instance_id}' did not finish within {max_time} of virtual time.")
        if time.monotonic() > deadline:
            raise OrchestrationTimeoutError(
                f"Instance '{instance_id}' did not finish within {real_timeout}s of real time.")
        clock.set(max(due, clock.now()))


async def _finished(host: Host, instance_id: str) -> DurableOrchestrationStatus | None:
    status = await host.client.get_status(instance_id, show_input=False)
    if not status:
        raise InstanceNotFoundError(instance_id)
    runtime = status.runtime_status
    return status if runtime is not None and runtime.is_terminal else None
