"""Renewing leases: only the ones the worker knows it holds, named one by one.

A lease is granted by a transaction (a lease of instances or of activity tasks, a commit that
claims the activities it schedules, a start leased to the co-located worker). If that
transaction's COMMIT lands but its reply is lost (a network cut at that instant, a failover),
the worker holds leases it was never told of. Renewing "every lease of this owner" would keep
that work from everyone for as long as the worker lives; renewing by name lets it lapse after
``lease_seconds``, and then anyone, this worker included, takes it again. So a worker never
holds a lease it does not know of for longer than one lease.

What the worker holds is worked out from its state at each renewal, not kept in a register
of its own: a path that drops a piece of work without saying so then costs a re-run of it
(activities are at-least-once), never a lease renewed forever.

- Instances: those it caches (their episodes may be in flight), the leased work items waiting
  for an episode, and the instances backing off after a failure (durable/worker/poison.py).
- Tasks: activities queued or running in the executor, and the results not yet stored: held
  for the instance's next episode, waiting to go to the inbox, or in a commit or a delivery
  awaiting its answer (:class:`InFlight`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator, Sequence

from durable.errors import StorageError
from durable.storage.base import ActivityResult, TaskKey
from durable.worker.state import WorkerState

log = logging.getLogger("durable.worker")


class InFlight:
    """Activity results on their way into storage (a commit or a delivery awaiting its answer):
    their tasks stay leased to this worker until the answer comes, so they are renewed."""

    def __init__(self) -> None:
        self._batches: dict[int, Sequence[ActivityResult]] = {}
        self._tokens = itertools.count()

    @contextlib.contextmanager
    def holding(self, results: Sequence[ActivityResult]) -> Iterator[None]:
        if not results:
            yield
            return
        token = next(self._tokens)
        self._batches[token] = results
        try:
            yield
        finally:
            del self._batches[token]

    def tasks(self) -> Iterator[TaskKey]:
        for batch in self._batches.values():
            for result in batch:
                yield result.task.key


class Renewal(WorkerState):
    """The renewing part of the worker."""

    _in_flight: InFlight

    def _held_instances(self) -> list[str]:
        """The instances whose leases this worker knows it holds."""
        held = {owned.instance_id for owned in self._cache}
        held.update(item.instance_id for item in self._accepted)
        if self._strikes:
            held.update(self._strikes.backing_off())
        return sorted(held)

    def _held_tasks(self) -> list[TaskKey]:
        """The activity tasks whose leases this worker knows it holds."""
        keys = [item.key for item in self.executor.in_hand()]
        for owned in self._cache:
            keys.extend(result.task.key for result in owned.local)
        keys.extend(result.task.key for result in self._to_inbox)
        keys.extend(self._in_flight.tasks())
        return keys

    async def _renew_loop(self) -> None:
        period = self.options.lease_seconds / 3
        while not self._stopping:  # a cancel a storage call swallowed ends it too (_poll_loop)
            await asyncio.sleep(period)
            instances, tasks = self._held_instances(), self._held_tasks()
            if not instances and not tasks:
                continue
            try:
                await self.backend.renew_leases(self.id, self.options.lease_seconds,
                                                instance_ids=instances, tasks=tasks)
            except StorageError as exc:
                log.warning("renewing leases failed: %s; retrying in %.1fs", exc, period)
            except Exception:
                log.exception("renewing leases failed; retrying in %.1fs", period)
