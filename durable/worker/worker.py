"""The worker: leases orchestrations and activities, runs them, and commits the results.

Design (see docs/architecture.md):

- **Ownership.** A worker keeps the lease of every instance it has in its cache and renews all
  its leases with one statement. Only the owner runs an instance's episodes, so the cached
  runtime is always the latest state and an episode costs only its new events.
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
from dataclasses import dataclass
from typing import Any

from durable.app import FunctionInfo, Registry
from durable.errors import FailureDetails, InvalidInputError, StorageError
from durable.history import HistoryEvent
from durable.orchestration.actions import Decision
from durable.orchestration.runtime import OrchestrationRuntime
from durable.storage.base import (
    ActivityResult,
    ActivityWorkItem,
    Backend,
    CommitOutcome,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable.telemetry import Observer, observe_commit
from durable.worker.activities import ActivityExecutor
from durable.worker.cache import InstanceCache, OwnedInstance, Runtime
from durable.worker.commits import commit_for, give_back_claims
from durable.worker.options import (
    DEFAULT_MAX_CACHED,
    DEFAULT_POLL_INTERVAL,
    MAX_RETRY_DELAY,
    WorkerOptions,
    new_worker_id,
    reclaim_dead_owners,
)
from durable.worker.poison import (
    Strikes,
    describe_events,
    failure_of,
    park_commit,
    terminating,
)
from durable.worker.rewinds import apply_rewind, rewind_of
from durable.worker.runtimes import entity_runtime, failing_runtime, orchestration_runtime
from durable.worker.timers import TimerQueue
from durable.worker.waiters import FinishWaiters

log = logging.getLogger("durable.worker")

__all__ = [
    "DEFAULT_MAX_CACHED", "DEFAULT_POLL_INTERVAL", "Worker", "WorkerOptions", "new_worker_id",
]


@dataclass(slots=True)
class _Episode:
    owned: OwnedInstance
    decision: Decision
    commit: OrchestrationCommit
    delivered: list[ActivityResult]
    parked: bool = False  # the commit parks the instance (durable/worker/poison.py)


class Worker:
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
        self.options = options or WorkerOptions()
        self.id = worker_id or new_worker_id()
        self._cache = InstanceCache(self.options.max_cached_orchestrations)
        self._claims_planned = 0  # activities claimed by commits still in flight
        self._left_unclaimed = False  # our commits left activities for anyone to take
        self._poll_soon = asyncio.Event()
        self._accepted: list[OrchestrationWorkItem] = []
        self._hinted: set[str] = set()
        self._leasing: set[str] = set()  # instances with a lease read in flight
        self._with_local: set[str] = set()
        self._to_inbox: list[ActivityResult] = []
        self._busy_count = 0
        self._wake = asyncio.Event()
        self._timers = TimerQueue(self.hint)
        self._strikes = Strikes(self.options.poison_attempts, self.options.poison_retry_delay,
                                MAX_RETRY_DELAY)
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
            builtins=builtin_activities,
        )
        self.stats = {"episodes": 0, "commits": 0, "activities": 0, "lease_lost": 0,
                      "strikes": 0, "parked": 0}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await reclaim_dead_owners(self.backend)  # may fail (storage down): nothing started yet
        self._started = True
        self.executor.start()
        for body in (self._dispatch_loop, self._poll_loop, self._renew_loop, self._timers.run):
            self._loops.append(asyncio.get_running_loop().create_task(body()))

    async def stop(self) -> None:
        """Finish in-flight work (up to ``shutdown_timeout``), then hand every lease back."""
        if not self._started or self._stopping:
            return
        self._stopping = True
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
            await asyncio.wait(list(self._tasks), timeout=max(0.1, deadline - time.monotonic()))
        try:
            await self.backend.release_all(self.id)
        except Exception:
            log.exception("could not release leases at shutdown; they expire on their own")
        self._cache.clear()

    # -- inputs -------------------------------------------------------------------------------

    def accept(self, item: OrchestrationWorkItem) -> None:
        """Take a work item this worker already leases (e.g. a just-created instance)."""
        self._accepted.append(item)
        self._wake.set()

    def hint(self, instance_id: str) -> None:
        """Something new may be in this instance's inbox; lease and look soon."""
        self._hinted.add(instance_id)
        self._wake.set()

    def watch(self, instance_id: str) -> asyncio.Future[None]:
        """A future resolved when this worker commits a terminal state for ``instance_id``.

        Register it *before* reading the status, so a finish in between is not missed; call
        :meth:`unwatch` when done waiting.
        """
        return self._finish_waiters.watch(instance_id)

    def unwatch(self, instance_id: str, future: asyncio.Future[None]) -> None:
        self._finish_waiters.unwatch(instance_id, future)

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
            # One lease read per instance at a time: a burst of messages to one instance (a
            # hot entity) must not start a read of its whole inbox per message.
            wanted = [i for i in self._hinted
                      if not self._cache.is_busy(i) and i not in self._leasing]
            if self._strikes:
                # Backing off: its retry is on the timer queue.
                waiting = [i for i in wanted if self._strikes.is_backing_off(i)]
                self._hinted.difference_update(waiting)
                wanted = [i for i in wanted if i not in waiting]
            wanted = wanted[: self.options.lease_batch]
            if wanted:
                self._hinted.difference_update(wanted)
                self._spawn(self._lease(wanted))
        episodes: list[_Episode] = []
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
                self._with_local.discard(instance_id)
                owned = self._cache.get(instance_id)
                if owned is None or not owned.local:
                    continue
                episode = self._guarded(instance_id, self._run, owned, [], [])
                if episode is not None:
                    episodes.append(episode)
        if episodes:
            self._spawn(self._commit(episodes))

    def _guarded(self, instance_id: str, step: Callable[..., _Episode | None], *args: Any
                 ) -> _Episode | None:
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
        if self._busy_count:
            held.extend(owned.instance_id for owned in self._cache if owned.busy)
        if self._strikes:
            held.extend(self._strikes.backing_off())
        return held

    async def _lease(self, instance_ids: list[str]) -> None:
        self._leasing.update(instance_ids)
        try:
            items = await self.backend.lease_orchestrations(
                self.id,
                limit=len(instance_ids),
                lease_seconds=self.options.lease_seconds,
                instance_ids=instance_ids,
                cached_revisions=self._cache.revisions,
            )
        except Exception:
            log.exception("leasing orchestrations failed; will retry on the next poll")
            return
        finally:
            self._leasing.difference_update(instance_ids)
            if self._hinted:
                self._wake.set()  # hints that waited for this read
        for item in items:
            self.accept(item)

    async def _poll_loop(self) -> None:
        interval = self.options.poll_interval
        failures = 0
        while True:
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
            if tasks:
                self.stats["activities"] += len(tasks)
                self.executor.submit(tasks)
            else:
                self._left_unclaimed = False
            found += len(tasks)
        return found

    async def _renew_loop(self) -> None:
        period = self.options.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self.backend.renew_leases(self.id, self.options.lease_seconds)
            except StorageError as exc:
                log.warning("renewing leases failed: %s; retrying in %.1fs", exc, period)
            except Exception:
                log.exception("renewing leases failed; retrying in %.1fs", period)

    # -- episodes -----------------------------------------------------------------------------

    def _new_runtime(self, name: str) -> OrchestrationRuntime | None:
        return orchestration_runtime(self.registry, self.executor.resolve, name)

    def _episode_from_item(self, item: OrchestrationWorkItem) -> _Episode | None:
        if self._strikes or item.damage is not None:
            strike = self._strikes.get(item.instance_id)
            if item.damage is not None or (strike is not None and strike.park) or (
                strike is not None and terminating(item)
            ):
                return self._park(item)
        owned = self._cache.get(item.instance_id)
        if owned is not None:
            if item.revision < owned.revision and item.execution_id in (
                owned.execution_id, owned.previous_execution_id
            ):
                # Read before our own last commit landed: look again. (Another execution ID
                # with a lower revision is a new instance under a purged instance's ID.)
                self.hint(item.instance_id)
                return None
            if item.revision > owned.revision or item.execution_id != owned.execution_id:
                self._forget(item.instance_id)  # someone else moved it on
                owned = None
        if owned is None:
            if self._cache.was_dropped_after(item):
                self.hint(item.instance_id)  # look again
                return None
            if item.history is None:
                # We believed we had this revision cached but no longer do; read it again.
                self.hint(item.instance_id)
                return None
            runtime: Runtime | None
            if item.is_entity:
                runtime = entity_runtime(self.registry, item)
            else:
                runtime = self._new_runtime(item.name)
            if runtime is None:
                return self._unknown_orchestrator(item)
            rewind = rewind_of(item)
            history = rewind[1].history if rewind else item.history
            self._doing = f"replaying its history ({len(history)} events)"
            runtime.replay(history)
            owned = OwnedInstance(item.instance_id, item.execution_id, item.revision, runtime)
            self._cache.remember(owned)
        else:
            rewind = None
        consumed = [m.message_id for m in item.messages]
        events = [
            m.event
            for m in item.messages
            if (m.execution_id is None or m.execution_id == owned.execution_id)
            and (rewind is None or m is not rewind[0])
        ]
        episode = self._run(owned, events, consumed)
        if episode is not None and rewind is not None:
            apply_rewind(episode.commit, rewind[1], time.time(), self._claim)
        return episode

    def _unknown_orchestrator(self, item: OrchestrationWorkItem) -> _Episode | None:
        """Fail an instance whose orchestrator is not registered in this app."""
        runtime = failing_runtime(item.name)
        owned = OwnedInstance(item.instance_id, item.execution_id, item.revision, runtime)
        self._cache.remember(owned)
        runtime.replay(item.history or [])
        events = [m.event for m in item.messages]
        return self._run(owned, events, [m.message_id for m in item.messages])

    def _run(
        self, owned: OwnedInstance, events: list[HistoryEvent], consumed: list[int]
    ) -> _Episode | None:
        delivered, owned.local = owned.local, []
        for result in delivered:
            events.append(result.event)
        now = time.time()
        claims = self._claims_planned
        decision: Decision | None = None
        try:
            decision = owned.runtime.run_episode(events, now)
            commit = commit_for(owned, decision, lease_owner=self.id, consumed=consumed,
                                delivered=delivered, now=now, claim=self._claim)
        except Exception:
            # Say what the episode was doing; its results are re-delivered via the inbox.
            self._doing = (f"running an episode with {describe_events(events)}"
                           if decision is None else "building the commit of an episode")
            self._claims_planned = claims
            owned.local = delivered + owned.local
            raise
        self.stats["episodes"] += 1
        owned.busy = True
        self._busy_count += 1
        self._cache.touch(owned.instance_id)
        return _Episode(owned, decision, commit, delivered)

    def _park(self, item: OrchestrationWorkItem) -> _Episode | None:
        """Commit ``item``'s instance as Failed (or Terminated, if asked to) without running it."""
        self._forget(item.instance_id)
        if item.history is None:
            self.hint(item.instance_id)  # read it again, with its history
            return None
        strike = self._strikes.get(item.instance_id)
        if item.damage is not None:
            cause = FailureDetails("durable.errors.StorageCorruptError",
                                   f"reading it from storage: {item.damage}")
            attempts = 1
        elif strike is not None:
            cause, attempts = strike.cause, strike.attempts
        else:  # pragma: no cover - callers check
            return None
        commit, decision = park_commit(item, self.id, cause, attempts, time.time())
        owned = OwnedInstance(item.instance_id, item.execution_id, item.revision,
                              failing_runtime(item.name))
        self._cache.remember(owned)
        owned.busy = True
        self._busy_count += 1
        return _Episode(owned, decision, commit, [], parked=True)

    def _claim(self) -> bool:
        """Keep a newly scheduled activity for this worker, if its backlog has room."""
        if self.executor.running + self._claims_planned >= self.options.backlog:
            return False
        self._claims_planned += 1
        return True

    async def _commit(self, episodes: list[_Episode]) -> None:
        self._claims_planned -= sum(
            task.claimed for episode in episodes for task in episode.commit.new_tasks
        )
        began = time.perf_counter()
        outcomes = await self._commit_batch(episodes)
        if self.observer is not None:
            observe_commit(self.observer, episodes, outcomes, time.perf_counter() - began)
        self.stats["commits"] += 1
        claimed: list[ActivityWorkItem] = []
        for episode, outcome in zip(episodes, outcomes, strict=True):
            owned = episode.owned
            owned.busy = False
            self._busy_count -= 1
            if outcome.error is not None:
                self._refused(episode, outcome.error)
                continue
            if not outcome.ok:
                self._lease_lost(episode)
                continue
            if self._strikes:
                self._strikes.clear(owned.instance_id)
            self.stats["parked"] += episode.parked
            self._after_commit(episode, outcome, claimed)
        if claimed:
            self.stats["activities"] += len(claimed)
            self.executor.submit(claimed)
        self._evict_if_needed()
        self._wake.set()

    async def _commit_batch(self, episodes: list[_Episode]) -> list[CommitOutcome]:
        """Commit ``episodes`` together; if the batch raises for a reason other than an
        outage, nothing of it was written, and each episode is committed on its own so that
        one bad commit cannot hold back the others."""
        commits = [e.commit for e in episodes]
        try:
            return await self.backend.commit_orchestrations(
                commits, lease_seconds=self.options.lease_seconds
            )
        except StorageError as exc:
            log.error("committing %d episodes failed: %s", len(episodes), exc)
            failed = [CommitOutcome(False)] * len(episodes)
        except Exception as exc:
            if len(episodes) > 1:
                log.warning("a batch of %d commits failed (%s: %s); committing them one by "
                            "one", len(episodes), type(exc).__name__, exc)
                parts = await asyncio.gather(*(self._commit_batch([e]) for e in episodes))
                return [outcome for part in parts for outcome in part]
            self._struck(episodes[0].owned.instance_id,
                         failure_of(exc, "committing an episode"), deterministic=False,
                         exc=exc)
            failed = [CommitOutcome(False)]
        await give_back_claims(self.backend, self.id, commits, self.options.poll_interval,
                               lambda: self._stopping)
        return failed

    def _refused(self, episode: _Episode, error: str) -> None:
        """Storage refused this commit's values: fail the instance (nothing was written)."""
        self._lease_lost(episode, quiet=True)
        cause = FailureDetails("durable.errors.SerializationError",
                               f"committing an episode: {error}")
        self._struck(episode.owned.instance_id, cause, deterministic=True)

    def _after_commit(
        self, episode: _Episode, outcome: CommitOutcome, claimed: list[ActivityWorkItem]
    ) -> None:
        owned, decision, commit = episode.owned, episode.decision, episode.commit
        self._cache.committed(owned, outcome.revision)
        for task in commit.new_tasks:
            if task.claimed:
                claimed.append(
                    ActivityWorkItem(owned.instance_id, owned.execution_id, task.task_id,
                                     task.name, task.input)
                )
            elif not self._left_unclaimed:
                self._left_unclaimed = True  # poll for them as soon as there is room
                self._poll_soon.set()
        for message in commit.messages:
            if message.visible_at is not None:
                self._timers.add(message.visible_at, message.instance_id)
            elif message.instance_id != owned.instance_id:
                self.hint(message.instance_id)
        for child in commit.new_instances:
            self.hint(child.instance_id)
        if decision.continue_as_new is not None and commit.continue_as_new is not None:
            fresh = self._new_runtime(owned.runtime.started.name if owned.runtime.started else "")
            if fresh is None:
                self._forget(owned.instance_id)
            else:
                owned.runtime = fresh
                owned.previous_execution_id = owned.execution_id
                owned.execution_id = commit.continue_as_new.execution_id
            self.hint(owned.instance_id)
        elif decision.status.is_terminal:
            self._forget(owned.instance_id)
            self._finish_waiters.finished(owned.instance_id)
        if owned.local:
            self._with_local.add(owned.instance_id)

    def _lease_lost(self, episode: _Episode, quiet: bool = False) -> None:
        """The fence failed: drop our copy and re-deliver finished activities via the inbox."""
        owned = episode.owned
        if not quiet:
            self.stats["lease_lost"] += 1
            log.warning("lost the lease of %s; discarding its cached state", owned.instance_id)
        pending = episode.delivered + owned.local
        owned.local = []
        self._forget(owned.instance_id)
        if pending:
            self._to_inbox.extend(pending)
            self._wake.set()

    def _on_activity_results(self, results: list[ActivityResult]) -> None:
        for result in results:
            owned = self._cache.get(result.task.instance_id)
            if owned is not None and owned.execution_id == result.task.execution_id:
                owned.local.append(result)
                self._with_local.add(owned.instance_id)
            else:
                self._to_inbox.append(result)
        if self._left_unclaimed:
            self._poll_soon.set()  # room again for activities we left unclaimed
        self._wake.set()

    async def _deliver_to_inbox(self, results: list[ActivityResult]) -> None:
        try:
            await self.backend.complete_activities(self.id, results)
        except Exception as exc:
            # Keep them: this worker still leases the tasks (and renews those leases), so
            # nobody else would ever run them again.
            log.warning("delivering %d activity results failed (%s); retrying in %.1fs",
                        len(results), exc, self.options.poll_interval)
            await asyncio.sleep(self.options.poll_interval)
            self._to_inbox.extend(results)
            self._wake.set()
            return
        for result in results:
            self.hint(result.task.instance_id)

    # -- cache --------------------------------------------------------------------------------

    def _forget(self, instance_id: str) -> None:
        self._cache.forget(instance_id)
        self._with_local.discard(instance_id)

    def _evict_if_needed(self) -> None:
        evicted = self._cache.evictable()
        for instance_id in evicted:
            self._forget(instance_id)
        if evicted:
            self._spawn(self.backend.release_orchestrations(self.id, evicted))

    @property
    def cached_instances(self) -> int:
        return len(self._cache)
