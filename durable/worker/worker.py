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
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from durable.app import FunctionInfo, Registry
from durable.errors import FailureDetails, FunctionNotFoundError, StorageError
from durable.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TimerFired,
)
from durable.ids import new_execution_id
from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    StartSubOrchestration,
)
from durable.orchestration.runtime import OrchestrationRuntime
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage.base import (
    DEFAULT_LEASE_SECONDS,
    ActivityResult,
    ActivityWorkItem,
    Backend,
    CommitOutcome,
    ContinueAsNewPlan,
    Message,
    NewInstance,
    NewTask,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable.worker.activities import ActivityExecutor

log = logging.getLogger("durable.worker")

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_MAX_CACHED = 10_000
MAX_RETRY_DELAY = 30.0  # longest back-off between attempts while storage is down


@dataclass(slots=True)
class WorkerOptions:
    """Tuning knobs; every default is safe for one process on a laptop."""

    max_concurrent_activities: int = 16  # sync activities: thread pool size
    max_concurrent_async_activities: int = 1000
    max_concurrent_orchestrations: int = 1000  # instances in an episode at once
    max_cached_orchestrations: int = DEFAULT_MAX_CACHED
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL
    # Instances or activities leased per poll. Small enough that idle workers woken together
    # share a burst of new work instead of the first one to poll taking it all.
    lease_batch: int = 50
    # Activities a worker keeps for itself (running or queued); default 4x the thread pool.
    # Activities its orchestrations schedule beyond this are left unclaimed for any worker to
    # take, so a fan-out spreads over every worker instead of queueing behind one.
    activity_backlog: int | None = None

    def __post_init__(self) -> None:
        if self.activity_backlog is None:
            self.activity_backlog = 4 * self.max_concurrent_activities
    shutdown_timeout: float = 30.0


@dataclass(slots=True, eq=False)
class _Owned:
    """An instance this worker leases and caches."""

    instance_id: str
    execution_id: str
    revision: int
    runtime: OrchestrationRuntime
    busy: bool = False
    local: list[ActivityResult] = field(default_factory=list)
    previous_execution_id: str | None = None  # before the last continue_as_new


@dataclass(slots=True)
class _Episode:
    owned: _Owned
    decision: Decision
    commit: OrchestrationCommit
    delivered: list[ActivityResult]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
    ) -> None:
        self.registry = registry
        self.backend = backend
        self.options = options or WorkerOptions()
        self.id = worker_id or new_worker_id()
        self._cache: OrderedDict[str, _Owned] = OrderedDict()
        self._revisions: dict[str, int] = {}
        self._dropped: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._claims_planned = 0  # activities claimed by commits still in flight
        self._backlog = self.options.activity_backlog or 4 * self.options.max_concurrent_activities
        self._left_unclaimed = False  # our commits left activities for anyone to take
        self._poll_soon = asyncio.Event()
        self._accepted: list[OrchestrationWorkItem] = []
        self._hinted: set[str] = set()
        self._with_local: set[str] = set()
        self._to_inbox: list[ActivityResult] = []
        self._busy_count = 0
        self._wake = asyncio.Event()
        self._timers: list[tuple[float, str]] = []
        self._timer_wake = asyncio.Event()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
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
        self.stats = {"episodes": 0, "commits": 0, "activities": 0, "lease_lost": 0}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await self._reclaim_dead_owners()  # may fail (storage down): then nothing started yet
        self._started = True
        self.executor.start()
        for body in (self._dispatch_loop, self._poll_loop, self._renew_loop, self._timer_loop):
            self._loops.append(asyncio.get_running_loop().create_task(body()))

    async def _reclaim_dead_owners(self) -> None:
        """Release leases of crashed workers of this machine at once instead of waiting for
        them to expire, so a restarted single-machine app resumes immediately.

        Only for single-host backends (SQLite): there a worker ID's host part is this machine
        and a missing process ID proves its owner dead. Elsewhere leases simply expire.
        """
        if not getattr(self.backend, "single_host", False):
            return
        host = socket.gethostname()
        for owner in await self.backend.lease_owners():
            owner_host, _, rest = owner.partition(":")
            pid_text = rest.partition(":")[0]
            if owner_host != host or not pid_text.isdigit() or _process_alive(int(pid_text)):
                continue
            log.info("releasing the leases of %s: its process is gone", owner)
            await self.backend.release_all(owner)

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
        self._revisions.clear()

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
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(instance_id, []).append(future)
        return future

    def unwatch(self, instance_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(instance_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[instance_id]

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
            wanted = [i for i in self._hinted if not self._is_busy(i)][: self.options.lease_batch]
            if wanted:
                self._hinted.difference_update(wanted)
                self._spawn(self._lease(wanted))
        episodes: list[_Episode] = []
        if self._accepted:
            items, self._accepted = self._accepted, []
            for item in items:
                owned = self._cache.get(item.instance_id)
                if owned is not None and owned.busy:
                    self._accepted.append(item)  # wait for the episode in flight
                    continue
                episode = self._guarded(item.instance_id, self._episode_from_item, item)
                if episode is not None:
                    episodes.append(episode)
        if self._with_local:
            ready = [i for i in self._with_local if not self._is_busy(i)]
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
        """Run one instance's episode; a bug there must not stop the others."""
        try:
            return step(*args)
        except Exception:
            log.exception("episode of %s failed inside durable; it will be retried from storage",
                          instance_id)
            owned = self._cache.get(instance_id)
            if owned is not None:
                self._to_inbox.extend(owned.local)
                owned.local = []
            self._forget(instance_id)
            return None

    def _in_hand(self) -> list[str]:
        """Instances whose messages this worker already holds (an episode in flight, or a
        leased item waiting for one): a poll need not lease and read them again."""
        held = [item.instance_id for item in self._accepted]
        if self._busy_count:
            held.extend(i for i, owned in self._cache.items() if owned.busy)
        return held

    def _is_busy(self, instance_id: str) -> bool:
        owned = self._cache.get(instance_id)
        return owned is not None and owned.busy

    async def _lease(self, instance_ids: list[str]) -> None:
        try:
            items = await self.backend.lease_orchestrations(
                self.id,
                limit=len(instance_ids),
                lease_seconds=self.options.lease_seconds,
                instance_ids=instance_ids,
                cached_revisions=self._revisions,
            )
        except Exception:
            log.exception("leasing orchestrations failed; will retry on the next poll")
            return
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
                cached_revisions=self._revisions,
                exclude=self._in_hand(),
            )
            for item in items:
                self.accept(item)
            found += len(items)
        room = self._backlog - self.executor.running - self._claims_planned
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

    async def _timer_loop(self) -> None:
        while True:
            if not self._timers:
                await self._timer_wake.wait()
                self._timer_wake.clear()
                continue
            delay = self._timers[0][0] - time.time()
            if delay > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that arrives just as the event is set, and stop() then waits forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(delay, 3600)):
                        await self._timer_wake.wait()
                self._timer_wake.clear()
                continue
            now = time.time()
            while self._timers and self._timers[0][0] <= now:
                _, instance_id = heapq.heappop(self._timers)
                self.hint(instance_id)

    # -- episodes -----------------------------------------------------------------------------

    def _new_runtime(self, name: str) -> OrchestrationRuntime | None:
        info = self.registry.orchestrators.get(name)
        if info is None:
            return None
        return OrchestrationRuntime(
            info.fn,
            activity_exists=self._activity_exists,
            orchestrator_exists=self.registry.has_orchestrator,
        )

    def _activity_exists(self, name: str) -> bool:
        return self.registry.has_activity(name) or name in (self.executor._builtins or {})

    def _episode_from_item(self, item: OrchestrationWorkItem) -> _Episode | None:
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
            last = self._dropped.get(item.instance_id)
            if last is not None and last[0] == item.execution_id and item.revision < last[1]:
                # Read before a commit of ours that since finished or evicted the instance:
                # running it would only repeat that episode and fail the fence. Look again.
                self.hint(item.instance_id)
                return None
            if item.history is None:
                # We believed we had this revision cached but no longer do; read it again.
                self.hint(item.instance_id)
                return None
            runtime = self._new_runtime(item.name)
            if runtime is None:
                return self._unknown_orchestrator(item)
            runtime.replay(item.history)
            owned = _Owned(item.instance_id, item.execution_id, item.revision, runtime)
            self._remember(owned)
        consumed = [m.message_id for m in item.messages]
        events = [
            m.event
            for m in item.messages
            if m.execution_id is None or m.execution_id == owned.execution_id
        ]
        return self._run(owned, events, consumed)

    def _unknown_orchestrator(self, item: OrchestrationWorkItem) -> _Episode | None:
        """Fail an instance whose orchestrator is not registered in this app."""
        runtime = OrchestrationRuntime(_missing_orchestrator(item.name))
        owned = _Owned(item.instance_id, item.execution_id, item.revision, runtime)
        self._remember(owned)
        runtime.replay(item.history or [])
        events = [m.event for m in item.messages]
        return self._run(owned, events, [m.message_id for m in item.messages])

    def _run(
        self, owned: _Owned, events: list[HistoryEvent], consumed: list[int]
    ) -> _Episode | None:
        delivered, owned.local = owned.local, []
        for result in delivered:
            events.append(result.event)
        now = time.time()
        decision = owned.runtime.run_episode(events, now)
        self.stats["episodes"] += 1
        commit = self._commit_for(owned, decision, consumed, delivered, now)
        owned.busy = True
        self._busy_count += 1
        self._cache.move_to_end(owned.instance_id)
        return _Episode(owned, decision, commit, delivered)

    def _commit_for(
        self,
        owned: _Owned,
        decision: Decision,
        consumed: list[int],
        delivered: list[ActivityResult],
        now: float,
    ) -> OrchestrationCommit:
        instance_id = owned.instance_id
        execution_id = owned.execution_id
        commit = OrchestrationCommit(
            instance_id=instance_id,
            execution_id=execution_id,
            revision=owned.revision,
            lease_owner=self.id,
            history=decision.history,
            status=decision.status,
            consumed_messages=consumed,
            delivered_tasks=[r.task.task_id for r in delivered
                             if r.task.execution_id == execution_id],
            output=decision.output,
            custom_status=decision.custom_status,
            failure=decision.failure,
            release=decision.status.is_terminal,
        )
        for action in decision.actions:
            if isinstance(action, ScheduleActivity):
                claim = self.executor.running + self._claims_planned < self._backlog
                self._claims_planned += claim
                commit.new_tasks.append(
                    NewTask(action.task_id, action.name, action.input, claimed=claim)
                )
            elif isinstance(action, ScheduleTimer):
                fired = TimerFired(timestamp=action.fire_at, timer_id=action.timer_id,
                                   fire_at=action.fire_at)
                commit.messages.append(
                    Message(instance_id, fired, execution_id, visible_at=action.fire_at)
                )
            elif isinstance(action, StartSubOrchestration):
                commit.new_instances.append(
                    NewInstance(
                        instance_id=action.instance_id,
                        name=action.name,
                        execution_id=new_execution_id(),
                        input=action.input,
                        created_at=now,
                        version=action.version,
                        parent_instance_id=instance_id,
                        parent_execution_id=execution_id,
                        parent_task_id=action.task_id,
                    )
                )
        started = owned.runtime.started
        if decision.status.is_terminal and started is not None and started.parent_instance_id:
            commit.messages.append(self._report_to_parent(started, decision, now))
        if decision.continue_as_new is not None:
            request = decision.continue_as_new
            new_execution = new_execution_id()
            commit.continue_as_new = ContinueAsNewPlan(new_execution, request.input)
            restart = ExecutionStarted(
                timestamp=now,
                name=started.name if started else "",
                instance_id=instance_id,
                execution_id=new_execution,
                input=request.input,
                version=started.version if started else None,
                parent_instance_id=started.parent_instance_id if started else None,
                parent_execution_id=started.parent_execution_id if started else None,
                parent_task_id=started.parent_task_id if started else None,
            )
            commit.messages.append(Message(instance_id, restart, new_execution))
            for carried in request.carried_events:
                commit.messages.append(Message(instance_id, _copy_event(carried), None))
        return commit

    @staticmethod
    def _report_to_parent(
        started: ExecutionStarted, decision: Decision, now: float
    ) -> Message:
        parent_task = started.parent_task_id if started.parent_task_id is not None else -1
        event: HistoryEvent
        if decision.status is Status.Completed:
            event = SubOrchestrationInstanceCompleted(
                timestamp=now, task_scheduled_id=parent_task, result=decision.output
            )
        else:
            failure = decision.failure or FailureDetails(
                "Terminated",
                f"Sub-orchestration '{started.instance_id}' was terminated: {decision.output}",
            )
            event = SubOrchestrationInstanceFailed(
                timestamp=now, task_scheduled_id=parent_task, failure=failure
            )
        assert started.parent_instance_id is not None
        return Message(started.parent_instance_id, event, started.parent_execution_id)

    async def _commit(self, episodes: list[_Episode]) -> None:
        self._claims_planned -= sum(
            task.claimed for episode in episodes for task in episode.commit.new_tasks
        )
        try:
            outcomes = await self.backend.commit_orchestrations(
                [e.commit for e in episodes], lease_seconds=self.options.lease_seconds
            )
        except Exception as exc:
            log.error("committing %d episodes failed: %s", len(episodes), exc)
            outcomes = [CommitOutcome(False)] * len(episodes)
            await self._unclaim([e.commit for e in episodes])
        self.stats["commits"] += 1
        claimed: list[ActivityWorkItem] = []
        for episode, outcome in zip(episodes, outcomes, strict=True):
            owned = episode.owned
            owned.busy = False
            self._busy_count -= 1
            if not outcome.ok:
                self._lease_lost(episode)
                continue
            self._after_commit(episode, outcome, claimed)
        if claimed:
            self.stats["activities"] += len(claimed)
            self.executor.submit(claimed)
        self._evict_if_needed()
        self._wake.set()

    async def _unclaim(self, commits: list[OrchestrationCommit]) -> None:
        """After a commit failed with an error, give back the activities it claimed.

        The error may have hidden a COMMIT that did land (the connection died while the
        server committed). Its claimed tasks would then be leased to this worker, renewed by
        it, and never run. Abandoning them is harmless if the commit did not land (no rows).
        The episodes stay busy until this is done, so a re-run cannot claim them first.
        """
        tasks = [
            ActivityWorkItem(c.instance_id, c.execution_id, t.task_id, t.name, t.input)
            for c in commits for t in c.new_tasks if t.claimed
        ]
        delay = self.options.poll_interval
        while tasks:
            try:
                await self.backend.abandon_activities(self.id, tasks)
                return
            except Exception as exc:
                if self._stopping:
                    return
                log.warning("giving back %d claimed activities failed: %s; retrying in %.1fs",
                            len(tasks), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    def _after_commit(
        self, episode: _Episode, outcome: CommitOutcome, claimed: list[ActivityWorkItem]
    ) -> None:
        owned, decision, commit = episode.owned, episode.decision, episode.commit
        owned.revision = outcome.revision
        self._revisions[owned.instance_id] = outcome.revision
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
                heapq.heappush(self._timers, (message.visible_at, message.instance_id))
                self._timer_wake.set()
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
            self._notify_finished(owned.instance_id)
        if owned.local:
            self._with_local.add(owned.instance_id)

    def _lease_lost(self, episode: _Episode) -> None:
        """The fence failed: drop our copy and re-deliver finished activities via the inbox."""
        self.stats["lease_lost"] += 1
        owned = episode.owned
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

    def _remember(self, owned: _Owned) -> None:
        self._cache[owned.instance_id] = owned
        self._revisions[owned.instance_id] = owned.revision

    def _forget(self, instance_id: str) -> None:
        owned = self._cache.pop(instance_id, None)
        self._revisions.pop(instance_id, None)
        self._with_local.discard(instance_id)
        if owned is not None:
            # Remember the last revision we saw, never more than storage has, so stale work
            # items for it can be told apart from new ones (see _episode_from_item).
            self._dropped[instance_id] = (owned.execution_id, owned.revision)
            self._dropped.move_to_end(instance_id)
            if len(self._dropped) > max(1000, self.options.max_cached_orchestrations):
                self._dropped.popitem(last=False)

    def _evict_if_needed(self) -> None:
        excess = len(self._cache) - self.options.max_cached_orchestrations
        if excess <= 0:
            return
        evicted = []
        for instance_id, owned in list(self._cache.items()):
            if excess <= 0:
                break
            if owned.busy or owned.local:
                continue
            self._forget(instance_id)
            evicted.append(instance_id)
            excess -= 1
        if evicted:
            self._spawn(self.backend.release_orchestrations(self.id, evicted))

    def _notify_finished(self, instance_id: str) -> None:
        for future in self._waiters.pop(instance_id, []):
            if not future.done():
                future.set_result(None)

    @property
    def cached_instances(self) -> int:
        return len(self._cache)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy_event(event: EventRaised) -> EventRaised:
    return EventRaised(timestamp=event.timestamp, name=event.name, input=event.input)


def _missing_orchestrator(name: str) -> Callable[[Any], Any]:
    def fail(context: Any) -> Any:
        raise FunctionNotFoundError("orchestrator", name)

    return fail
