"""The worker: leases orchestrations and activities, runs them, and commits the results.

Design (see docs/architecture.md):

- **Ownership.** A worker keeps the lease of every instance it has in its cache and renews, by
  name, the leases it knows it holds (durable/worker/renewal.py: a lease whose grant was lost
  with its reply lapses). Only the owner runs an instance's episodes, so the cached runtime is
  always the latest state and an episode costs only its new events.
- **Local hand-off.** Activities an episode schedules are leased to this worker in the same
  commit and handed straight to the executor. When an activity of an owned instance finishes,
  its result goes straight into the instance's next episode, and that episode's commit deletes
  the task row: one transaction per step, no inbox round trip, no polling.
- **Batching.** Episodes that are ready together are committed together
  (``commit_orchestrations`` takes a list; SQLite additionally group-commits across callers).
- **Polling** only finds work from other processes (clients, workers, expired leases) and
  timers of instances this worker does not own.
- **Fencing.** A commit names the revision it read and the lease owner; if either moved on, the
  commit is void, the cached state is dropped, and finished activity results are re-delivered
  through the inbox so nothing is lost.
- **Isolation.** An instance whose episode raises inside durable, or whose commit storage
  refuses, costs only itself: it backs off and, after a few attempts (at once if the failure is
  deterministic), is parked as Failed with the cause (durable/worker/poison.py). A batch commit
  that raises is retried one commit at a time, so the others of the batch still land.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from durable.app import FunctionInfo, Registry
from durable.clock import clock_of
from durable.errors import FailureDetails, InvalidInputError, StorageError
from durable.storage.base import (
    ActivityResult,
    Backend,
    OrchestrationWorkItem,
)
from durable.telemetry import Observer
from durable.versioning import VersionFailure, VersionMatch
from durable.worker import collector
from durable.worker.activities import ActivityExecutor
from durable.worker.cache import InstanceCache
from durable.worker.committing import Committing
from durable.worker.episodes import Episode, EpisodeAssembly
from durable.worker.http_activity import builtin_activities as http_builtins
from durable.worker.options import (
    DEFAULT_MAX_CACHED,
    DEFAULT_POLL_INTERVAL,
    MAX_RETRY_DELAY,
    WorkerOptions,
    new_worker_id,
    reclaim_dead_owners,
)
from durable.worker.poison import Strikes, failure_of
from durable.worker.renewal import InFlight, Renewal
from durable.worker.timers import TimerQueue
from durable.worker.versions import REJECT_SECONDS, VersionGate
from durable.worker.waiters import FinishWaiters

log = logging.getLogger("durable.worker")

__all__ = [
    "DEFAULT_MAX_CACHED", "DEFAULT_POLL_INTERVAL", "Worker", "WorkerOptions", "new_worker_id",
]


class Worker(EpisodeAssembly, Committing, Renewal):
    """Runs an app's orchestrations and activities against a backend."""

    def __init__(
        self,
        registry: Registry,
        backend: Backend,
        options: WorkerOptions | None = None,
        *,
        worker_id: str | None = None,
        builtin_activities: dict[str, FunctionInfo] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.registry = registry
        self.observer = observer  # telemetry (durable.telemetry); None: nothing to pay
        self.backend = backend
        self.clock = clock_of(backend)  # the storage's clock: timers and leases agree
        self.options = options or WorkerOptions()
        self.id = worker_id or new_worker_id()
        self._cache = InstanceCache(self.options.max_cached_orchestrations)
        self._claims_planned = 0  # activities claimed by commits still in flight
        self._left_unclaimed = False  # our commits left activities for anyone to take
        self._poll_soon = asyncio.Event()
        self._accepted: list[OrchestrationWorkItem] = []
        # Instances to lease and look at, oldest hint first (a dict for its order: an instance
        # hinted again keeps its place, so a hot one cannot starve the others).
        self._hinted: dict[str, None] = {}
        self._leasing: set[str] = set()  # instances with a lease read in flight
        self._with_local: set[str] = set()
        self._to_inbox: list[ActivityResult] = []
        self._in_flight = InFlight()  # results in a commit or delivery awaiting its answer
        self._busy_count = 0
        self._wake = asyncio.Event()
        self._timers = TimerQueue(self.hint, self.clock)
        self._strikes = Strikes(self.options.poison_attempts, self.options.poison_retry_delay,
                                MAX_RETRY_DELAY, self.clock)
        # A virtual clock that jumps makes timers of instances we do not hold due: look now.
        self.clock.on_jump(self._poll_soon.set)
        self._versions = VersionGate(self.options.version,
                                     VersionMatch.parse(self.options.version_match),
                                     VersionFailure.parse(self.options.version_failure),
                                     self.clock)
        self._doing = ""  # what the episode being built is doing, for a failure message
        self._finish_waiters = FinishWaiters()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._started = False
        self.executor = ActivityExecutor(
            registry,
            self._on_activity_results,
            max_threads=self.options.max_concurrent_activities,
            max_async=self.options.max_concurrent_async_activities,
            # Built-in activities (call_http's request) run beside the app's own.
            builtins={**http_builtins(), **(builtin_activities or {})},
            clock=self.clock,
        )
        self.stats = {"episodes": 0, "commits": 0, "activities": 0, "lease_lost": 0,
                      "strikes": 0, "parked": 0, "handed_over": 0, "behind": 0}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, loops: bool = True) -> None:
        """Start serving. With ``loops=False`` nothing runs by itself: a test drives the worker
        with :meth:`step`, one deterministic round at a time."""
        if self._started:
            return
        await reclaim_dead_owners(self.backend)  # may fail (storage down): nothing started yet
        self._started = True
        if self.options.gc_young_threshold is not None:
            collector.hold(self.options.gc_young_threshold)
        self.executor.start()
        if not loops:
            return
        for body in (self._dispatch_loop, self._poll_loop, self._renew_loop, self._timers.run):
            self._loops.append(asyncio.get_running_loop().create_task(body()))

    async def step(self) -> int:
        """One round of work, done to the end: lease what storage has for this worker (and
        the instances hinted since the last round), run every ready episode, commit them,
        and wait for the activities they started and the delivery of their results. Returns
        the number of episodes committed. For tests of a worker started with
        ``start(loops=False)``: no background loop runs, so each round is deterministic."""
        if self._hinted:
            wanted, self._hinted = sorted(self._hinted), {}
            self._leasing.update(wanted)
            await self._lease(wanted)
        await self._poll_once()
        episodes = self._ready_episodes()
        if episodes:
            await self._commit(episodes)
        await self.executor.idle.wait()
        await asyncio.sleep(0)  # let the executor hand its last results over
        if self._to_inbox:
            batch, self._to_inbox = self._to_inbox, []
            await self._deliver_to_inbox(batch)
        return len(episodes)

    async def stop(self) -> None:
        """Finish in-flight work (up to ``shutdown_timeout``), then hand every lease back."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        try:
            deadline = time.monotonic() + self.options.shutdown_timeout
            await self.executor.stop(max(0.0, deadline - time.monotonic()))
            while (self._busy_count or self._with_local or self._to_inbox) and (
                time.monotonic() < deadline
            ):
                self._wake.set()
                await asyncio.sleep(0.01)
            for task in self._loops:
                task.cancel()
            for task in self._loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._tasks:
                await asyncio.wait(list(self._tasks),
                                   timeout=max(0.1, deadline - time.monotonic()))
            try:
                await self.backend.release_all(self.id)
            except Exception:
                log.exception("could not release leases at shutdown; they expire on their own")
            self._cache.clear()
        finally:
            if self.options.gc_young_threshold is not None:
                collector.release()

    # -- inputs -------------------------------------------------------------------------------

    def accept(self, item: OrchestrationWorkItem) -> None:
        """Take a work item this worker already leases (e.g. a just-created instance)."""
        self._accepted.append(item)
        self._wake.set()

    def hint(self, instance_id: str) -> None:
        """Something new may be in this instance's inbox; lease and look soon."""
        self._hinted[instance_id] = None
        self._wake.set()

    def watch(self, instance_id: str) -> asyncio.Future[None]:
        """A future resolved when this worker commits a terminal state for ``instance_id``.

        Register it *before* reading the status, so a finish in between is not missed; call
        :meth:`unwatch` when done waiting.
        """
        return self._finish_waiters.watch(instance_id)

    def unwatch(self, instance_id: str, future: asyncio.Future[None]) -> None:
        self._finish_waiters.unwatch(instance_id, future)

    def owns(self, instance_id: str) -> bool:
        """True while this worker holds the instance (its lease and cached state). Only the
        holder runs its episodes, so its finish resolves :meth:`watch`'s future here; when the
        worker lets it go (finished, evicted, lease lost) it wakes those futures, and a waiter
        that sees it no longer owned polls storage instead."""
        return self._cache.get(instance_id) is not None

    @property
    def is_idle(self) -> bool:
        """Nothing in hand: no episode, activity, lease read or hand-over under way (what
        a test on virtual time waits for before it moves the clock on)."""
        return not (self._busy_count or self.executor.running or self._accepted
                    or self._hinted or self._leasing or self._with_local or self._to_inbox
                    or self._claims_planned or self._tasks)

    # -- background loops ---------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker task failed", exc_info=task.exception())

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._dispatch_once()
            except Exception:
                log.exception("dispatch failed")

    def _dispatch_once(self) -> None:
        if self._to_inbox:
            batch, self._to_inbox = self._to_inbox, []
            self._spawn(self._deliver_to_inbox(batch))
        capacity = self.options.max_concurrent_orchestrations - self._busy_count
        if self._hinted and capacity > 0 and not self._stopping:
            # Never lease an instance whose messages this worker already holds: a lease read
            # in flight, a leased item waiting for its episode, an episode being committed, or
            # results in hand for its next episode. Such a read would return the same messages
            # again (they leave the inbox only when that episode commits) and its episode
            # would be stale: a hot entity re-read its whole inbox per signal. The hint stays
            # and is served when the instance is free again (every way out wakes us).
            held = {item.instance_id for item in self._accepted}
            held.update(self._with_results())
            wanted = [i for i in self._hinted
                      if i not in self._leasing and i not in held
                      and not self._cache.is_busy(i) and not self._versions.is_rejected(i)]
            if self._strikes:
                # Backing off: its retry is on the timer queue.
                waiting = [i for i in wanted if self._strikes.is_backing_off(i)]
                for instance_id in waiting:
                    del self._hinted[instance_id]
                wanted = [i for i in wanted if i not in waiting]
            wanted = wanted[: self.options.lease_batch]
            if wanted:
                for instance_id in wanted:
                    del self._hinted[instance_id]
                # Marked now, not when the task first runs: the episodes this same round
                # starts must not be leased again in between.
                self._leasing.update(wanted)
                self._spawn(self._lease(wanted))
        episodes = self._ready_episodes()
        if episodes:
            self._spawn(self._commit(episodes))

    def _ready_episodes(self) -> list[Episode]:
        """Run every episode that can run now: accepted work items, local activity results."""
        episodes: list[Episode] = []
        if self._accepted:
            items, self._accepted = self._accepted, []
            for item in items:
                if self._cache.is_busy(item.instance_id):
                    self._accepted.append(item)  # wait for the episode in flight
                    continue
                episode = self._guarded(item.instance_id, self._episode_from_item, item)
                if episode is not None:
                    episodes.append(episode)
        if self._with_local:
            ready = [i for i in self._with_local if not self._cache.is_busy(i)]
            for instance_id in ready:
                owned = self._cache.get(instance_id)
                if owned is None or not owned.has_pending:
                    self._with_local.discard(instance_id)
                    continue
                if not owned.inbox and (instance_id in self._hinted
                                        or instance_id in self._leasing):
                    # Its inbox may hold a message stored before these results: the lease
                    # reads it, and that episode applies the message, then the results.
                    continue
                self._with_local.discard(instance_id)
                # Messages our own commits sent it (see Committing._hand_over), in order.
                handed, owned.inbox = owned.inbox, []
                events = [m.event for m in handed
                          if m.execution_id is None or m.execution_id == owned.execution_id]
                episode = self._guarded(instance_id, self._run, owned, events,
                                        [m.message_id for m in handed],
                                        max((m.message_id for m in handed), default=None))
                if episode is not None:
                    episodes.append(episode)
        return episodes

    def _guarded(self, instance_id: str, step: Callable[..., Episode | None], *args: Any
                 ) -> Episode | None:
        """Run one instance's episode; whatever it raises costs that instance alone."""
        self._doing = "running an episode"
        try:
            return step(*args)
        except Exception as exc:
            owned = self._cache.get(instance_id)
            if owned is not None:
                self._to_inbox.extend(owned.local)
                owned.local = []
            self._forget(instance_id)
            self._struck(instance_id, failure_of(exc, self._doing),
                         deterministic=isinstance(exc, InvalidInputError), exc=exc)
            return None

    def _struck(self, instance_id: str, cause: FailureDetails, *, deterministic: bool,
                exc: BaseException | None = None) -> None:
        """Count a failure of ``instance_id`` inside durable; retry it later, or park it."""
        self.stats["strikes"] += 1
        retry_at = self._strikes.record(instance_id, cause, deterministic=deterministic, exc=exc)
        self._timers.add(retry_at, instance_id)  # exactly then it is no longer backing off

    def _in_hand(self) -> list[str]:
        """Instances whose messages this worker already holds (an episode in flight, or a
        leased item waiting for one), and instances backing off after a failure: a poll need
        not lease and read them again."""
        held = [item.instance_id for item in self._accepted]
        held.extend(self._leasing)
        held.extend(self._with_results())
        # Hinted ones get a targeted lease of their own (this cuts the overlap between a poll
        # and such a lease; a hint that comes while a poll is in flight can still overlap it,
        # and the later item is then simply stale: see EpisodeAssembly._episode_from_item).
        held.extend(self._hinted)
        held.extend(self._versions.skipped())
        if self._busy_count:
            held.extend(owned.instance_id for owned in self._cache if owned.busy)
        if self._strikes:
            held.extend(self._strikes.backing_off())
        return held

    def _with_results(self) -> list[str]:
        """Instances with messages handed over in memory for their next episode: a lease would
        read those messages again. (Activity results in hand do not hold a lease up: a lease
        reads what the inbox got before them, and its episode applies the results after.)"""
        held = []
        for instance_id in self._with_local:
            owned = self._cache.get(instance_id)
            if owned is not None and owned.inbox:
                held.append(instance_id)
        return held

    async def _lease(self, instance_ids: list[str]) -> None:
        """Lease ``instance_ids`` (the caller has put them in ``_leasing``)."""
        try:
            items = await self.backend.lease_orchestrations(
                self.id,
                limit=len(instance_ids),
                lease_seconds=self.options.lease_seconds,
                instance_ids=instance_ids,
                cached_revisions=self._cache.revisions,
                max_messages=self.options.max_messages_per_lease,
            )
        except Exception:
            log.exception("leasing orchestrations failed; will retry on the next poll")
            return
        finally:
            self._leasing.difference_update(instance_ids)
            if self._hinted or not self._with_local.isdisjoint(instance_ids):
                self._wake.set()  # hints, or activity results, that waited for this read
        for item in items:
            self.accept(item)

    async def _poll_loop(self) -> None:
        interval = self.options.poll_interval
        failures = 0
        # Not ``while True``: stop() cancels this loop, and on Python 3.11 a storage call can
        # swallow that cancel (psycopg_pool waits for a connection with asyncio.wait_for, which
        # returns the connection instead of raising when both happen at once). The loop then
        # ends here instead of polling on while stop() waits for it forever.
        while not self._stopping:
            found = 0
            wait = interval
            try:
                found = await self._poll_once()
                failures = 0
            except StorageError as exc:
                # An outage: one line per attempt, backing off (a backend that can tell, like
                # PostgreSQL's LISTEN connection, still wakes us as soon as it is back).
                failures += 1
                wait = min(interval * 2 ** min(failures, 5), MAX_RETRY_DELAY)
                log.warning("storage unavailable while polling: %s; retrying in %.1fs",
                            exc, wait)
            except Exception:
                log.exception("polling storage failed; retrying in %.1fs", interval)
            if not found:
                await self._idle(wait)
            else:
                await asyncio.sleep(0)

    async def _idle(self, timeout: float) -> None:
        """Wait for work from elsewhere (the backend's signal), or for our own unclaimed
        activities to fit in the backlog again, or ``timeout``."""
        if self._poll_soon.is_set():
            self._poll_soon.clear()
            return
        signal = asyncio.ensure_future(self.backend.wait_for_work(timeout))
        soon = asyncio.ensure_future(self._poll_soon.wait())
        try:
            await asyncio.wait((signal, soon), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (signal, soon):
                waiter.cancel()
            await asyncio.gather(signal, soon, return_exceptions=True)
        self._poll_soon.clear()

    async def _poll_once(self) -> int:
        if self._stopping:
            return 0
        found = 0
        capacity = self.options.max_concurrent_orchestrations - self._busy_count
        if capacity > 0:
            items = await self.backend.lease_orchestrations(
                self.id,
                limit=min(capacity, self.options.lease_batch),
                lease_seconds=self.options.lease_seconds,
                cached_revisions=self._cache.revisions,
                exclude=self._in_hand(),
                max_messages=self.options.max_messages_per_lease,
            )
            for item in items:
                self.accept(item)
            found += len(items)
        room = self.options.backlog - self.executor.running - self._claims_planned
        if room > 0:
            tasks = await self.backend.lease_activities(
                self.id, limit=min(room, self.options.lease_batch),
                lease_seconds=self.options.lease_seconds,
            )
            wrong = [t for t in tasks if not self._versions.runs_task(t)]
            if wrong:
                # Activities of an orchestration version this worker does not run: back to
                # the table, out of this worker's reach for a while, for a worker that does.
                tasks = [t for t in tasks if t not in wrong]
                await self.backend.abandon_activities(self.id, wrong,
                                                      retry_after=REJECT_SECONDS)
            if tasks:
                self.stats["activities"] += len(tasks)
                self.executor.submit(tasks)
            elif not wrong:
                self._left_unclaimed = False
            found += len(tasks)
        return found

    @property
    def cached_instances(self) -> int:
        return len(self._cache)

