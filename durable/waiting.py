"""Waiting for many instances at once from a process that runs no worker.

A front end (``durable run --no-worker``, a script holding only a client) that waits for a
thousand instances used to read one status per waiter per poll: a thousand round trips each
time. :class:`Completions` keeps one table of what is awaited per backend and one poller for
all of it: each poll is ONE read of every awaited instance (``Backend.get_instances``), and
between polls the poller sleeps until the database says an instance finished
(``Backend.wait_for_completions``: PostgreSQL LISTEN on the hub's completion channel) or the
poll interval passes, so polling is only the fallback for a lost notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durable.storage.base import Backend, InstanceRecord

_FIRST_DELAY = 0.01
_MIN_GAP = 0.005  # between polls woken by notifications: completions come in bursts
_MAX_BATCH = 5000  # instances read per statement


class Completions:
    """Futures of awaited instances, resolved with the instance's row once it is terminal
    (or with ``None`` if it does not exist)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._waiting: dict[str, list[asyncio.Future[InstanceRecord | None]]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.poll_interval = 0.5

    def watch(self, instance_id: str) -> asyncio.Future[InstanceRecord | None]:
        future: asyncio.Future[InstanceRecord | None] = (
            asyncio.get_running_loop().create_future())
        self._waiting.setdefault(instance_id, []).append(future)
        self._changed.set()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="durable-completions")
        return future

    def unwatch(self, instance_id: str, future: asyncio.Future[InstanceRecord | None]) -> None:
        futures = self._waiting.get(instance_id)
        if futures is not None:
            with contextlib.suppress(ValueError):
                futures.remove(future)
            if not futures:
                del self._waiting[instance_id]

    async def _poll(self) -> None:
        delay = _FIRST_DELAY
        while self._waiting:
            self._changed.clear()
            ids = list(self._waiting)
            try:
                records: dict[str, InstanceRecord] = {}
                for start in range(0, len(ids), _MAX_BATCH):
                    for record in await self._backend.get_instances(ids[start:start + _MAX_BATCH]):
                        records[record.instance_id] = record
            except Exception as exc:  # storage down: every waiter hears it
                for futures in self._waiting.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                self._waiting.clear()
                return
            resolved = False
            for instance_id in ids:
                found = records.get(instance_id)
                if found is not None and not found.status.is_terminal:
                    continue
                for future in self._waiting.pop(instance_id, []):
                    if not future.done():
                        future.set_result(found)
                resolved = True
            if not self._waiting:
                return
            delay = _FIRST_DELAY if resolved else min(delay * 2, self.poll_interval)
            # New waiters are read at once; otherwise wait for the database to say something
            # finished (or the delay, the fallback for a notification that got lost).
            waits = [asyncio.ensure_future(self._backend.wait_for_completions(delay)),
                     asyncio.ensure_future(self._changed.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            await asyncio.sleep(_MIN_GAP)


_BY_BACKEND: weakref.WeakKeyDictionary[Backend, Completions] = weakref.WeakKeyDictionary()


def completions_of(backend: Backend) -> Completions:
    """The one table of awaited instances for ``backend`` (shared by its clients)."""
    found = _BY_BACKEND.get(backend)
    if found is None:
        found = _BY_BACKEND[backend] = Completions(backend)
    return found
