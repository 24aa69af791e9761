"""Instances to look at again at a given wall-clock time.

Durable timers of instances the worker committed (their TimerFired messages become visible
then), and the retries of instances backing off after a failure (durable/worker/poison.py).
One heap and one loop; at the due time the instance is hinted, which leases and runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable

from durable.clock import SYSTEM_CLOCK, Clock


class TimerQueue:
    """A heap of ``(due time, instance ID)``; :meth:`run` hints each when it is due."""

    def __init__(self, hint: Callable[[str], None], clock: Clock = SYSTEM_CLOCK) -> None:
        self._hint = hint
        self._clock = clock
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()
        clock.on_jump(self._wake.set)  # a virtual clock moved: look at the heap again

    def add(self, due: float, instance_id: str) -> None:
        heapq.heappush(self._heap, (due, instance_id))
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._heap:
                await self._wake.wait()
                self._wake.clear()
                continue
            delay = self._heap[0][0] - self._clock.now()
            if delay > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that arrives just as the event is set, and stop() then waits forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(delay, 3600)):
                        await self._wake.wait()
                self._wake.clear()
                continue
            now = self._clock.now()
            while self._heap and self._heap[0][0] <= now:
                _, instance_id = heapq.heappop(self._heap)
                self._hint(instance_id)
