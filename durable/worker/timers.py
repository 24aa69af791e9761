"""Instances to look at again at a given wall-clock time.

Durable timers of instances the worker committed (their TimerFired messages become visible
then), and the retries of instances backing off after a failure (durable/worker/poison.py).
One heap and one loop; at the due time the instance is hinted, which leases and runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable


class TimerQueue:
    """A heap of ``(due time, instance ID)``; :meth:`run` hints each when it is due."""

    def __init__(self, hint: Callable[[str], None]) -> None:
        self._hint = hint
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()

    def add(self, due: float, instance_id: str) -> None:
        heapq.heappush(self._heap, (due, instance_id))
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._heap:
                await self._wake.wait()
                self._wake.clear()
                continue
            delay = self._heap[0][0] - time.time()
            if delay > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that arrives just as the event is set, and stop() then waits forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(delay, 3600)):
                        await self._wake.wait()
                self._wake.clear()
                continue
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                _, instance_id = heapq.heappop(self._heap)
                self._hint(instance_id)
