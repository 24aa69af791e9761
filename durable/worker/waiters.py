"""Futures resolved when this worker commits an instance's terminal state.

``wait_for_completion`` in the same process registers one before it reads the status, so a
finish in between is not missed, and wakes the moment the commit lands instead of polling.
"""

from __future__ import annotations

import asyncio


class FinishWaiters:
    def __init__(self) -> None:
        self._by_instance: dict[str, list[asyncio.Future[None]]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_instance)

    def watch(self, instance_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._by_instance.setdefault(instance_id, []).append(future)
        return future

    def unwatch(self, instance_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._by_instance.get(instance_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._by_instance[instance_id]

    def finished(self, instance_id: str) -> None:
        self.wake(instance_id)

    def wake(self, instance_id: str) -> None:
        """Resolve the instance's futures: it finished here, or this worker let it go (its
        waiters then read the status and fall back to polling)."""
        for future in self._by_instance.pop(instance_id, []):
            if not future.done():
                future.set_result(None)
