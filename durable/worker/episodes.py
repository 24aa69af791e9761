"""Episode assembly: from a leased work item to the commit that records one episode.

Part of :class:`durable.worker.Worker` (a mixin over its state): which runtime an instance
needs (an orchestration's replay engine, an entity's executor, or a failing stand-in for an
unknown orchestrator or a version this worker does not run), replaying its history once,
running the episode on the new messages and on activity results handed over in memory, and
turning the decision into an :class:`~durable.storage.base.OrchestrationCommit`. No I/O: the
commit itself is :mod:`durable.worker.committing`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from durable.errors import FailureDetails, FunctionNotFoundError
from durable.history import HistoryEvent
from durable.orchestration.actions import Decision
from durable.storage.base import (
    EVERY_MESSAGE,
    ActivityResult,
    InboxEntry,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable.versioning import VersionFailure
from durable.worker.cache import OwnedInstance, Runtime
from durable.worker.commits import commit_for
from durable.worker.poison import describe_events, park_commit, terminating
from durable.worker.rewinds import apply_rewind, rewind_of
from durable.worker.runtimes import entity_runtime, failing_runtime, orchestration_runtime
from durable.worker.state import WorkerState

log = logging.getLogger("durable.worker")


@dataclass(slots=True)
class Episode:
    """One episode, run and waiting for its commit."""

    owned: OwnedInstance
    decision: Decision
    commit: OrchestrationCommit
    delivered: list[ActivityResult]
    parked: bool = False  # the commit parks the instance (durable/worker/poison.py)
    more_messages: bool = False  # its lease left messages in the inbox: lease again after


def _with_handed_over(leased: list[InboxEntry], owned: OwnedInstance
                      ) -> tuple[list[InboxEntry], int | None]:
    """The leased messages, then those handed over in memory that the lease did not return
    (sent after it read the inbox), each once; and the newest handed-over one consumed, for
    the commit's order check (``OrchestrationCommit.handed_up_to``)."""
    if not owned.inbox:
        return leased, None
    seen = {m.message_id for m in leased}
    extra = [entry for entry in owned.inbox if entry.message_id not in seen]
    owned.inbox = []
    if not extra:
        return leased, None
    return [*leased, *extra], max(entry.message_id for entry in extra)


class EpisodeAssembly(WorkerState):
    """The episode half of the worker."""

    def _new_runtime(self, name: str) -> Runtime | None:
        return orchestration_runtime(self.registry, self.executor.resolve, name)

    def _episode_from_item(self, item: OrchestrationWorkItem) -> Episode | None:
        if self._strikes or item.damage is not None:
            strike = self._strikes.get(item.instance_id)
            if item.damage is not None or (strike is not None and strike.park) or (
                strike is not None and terminating(item)
            ):
                return self._park(item)
        if not self._versions.runs(item):
            return self._wrong_version(item)
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
        messages, handed = _with_handed_over(item.messages, owned)
        owned.inbox_behind = item.more_messages
        consumed = [m.message_id for m in messages]
        events = [
            m.event
            for m in messages
            if (m.execution_id is None or m.execution_id == owned.execution_id)
            and (rewind is None or m is not rewind[0])
        ]
        # Activity results in hand wait while the inbox holds more than this lease read: they
        # come after every message stored before them (see EVERY_MESSAGE).
        episode = self._run(owned, events, consumed, handed,
                            take_local=not item.more_messages)
        if episode is not None:
            episode.more_messages = item.more_messages
            if rewind is not None:
                apply_rewind(episode.commit, rewind[1], self.clock.now(), self._claim)
        return episode

    def _wrong_version(self, item: OrchestrationWorkItem) -> Episode | None:
        """An instance of a version this worker does not run: leave it, or fail it."""
        self._forget(item.instance_id)
        if self._versions.failure is VersionFailure.FAIL:
            if item.history is None:
                self.hint(item.instance_id)  # read it again, with its history
                return None
            return self._fail_instance(item, self._versions.mismatch(item))
        self._versions.reject(item)
        self._spawn(self.backend.release_orchestrations(self.id, [item.instance_id]))
        return None

    def _unknown_orchestrator(self, item: OrchestrationWorkItem) -> Episode | None:
        """Fail an instance whose orchestrator is not registered in this app."""
        return self._fail_instance(item, FunctionNotFoundError("orchestrator", item.name))

    def _fail_instance(self, item: OrchestrationWorkItem, error: BaseException
                       ) -> Episode | None:
        """Commit ``item``'s instance as Failed with ``error``, running none of its code."""
        runtime = failing_runtime(error)
        owned = OwnedInstance(item.instance_id, item.execution_id, item.revision, runtime)
        self._cache.remember(owned)
        runtime.replay(item.history or [])
        events = [m.event for m in item.messages]
        return self._run(owned, events, [m.message_id for m in item.messages],
                         take_local=False)

    def _run(
        self, owned: OwnedInstance, events: list[HistoryEvent], consumed: list[int],
        handed_up_to: int | None = None, *, take_local: bool = True,
    ) -> Episode | None:
        """Run one episode on ``events`` and, after them, the activity results in hand
        (unless ``take_local`` is off). ``handed_up_to``: the newest message consumed that was
        handed over in memory (``OrchestrationCommit.handed_up_to``)."""
        delivered: list[ActivityResult] = []
        if take_local:
            delivered, owned.local = owned.local, []
        for result in delivered:
            events.append(result.event)
        now = self.clock.now()
        claims = self._claims_planned
        decision: Decision | None = None
        try:
            decision = owned.runtime.run_episode(events, now)
            commit = commit_for(owned, decision, lease_owner=self.id, consumed=consumed,
                                delivered=delivered, now=now, claim=self._claim,
                                default_version=self.options.version)
        except Exception:
            # Say what the episode was doing; its results are re-delivered via the inbox.
            self._doing = (f"running an episode with {describe_events(events)}"
                           if decision is None else "building the commit of an episode")
            self._claims_planned = claims
            owned.local = delivered + owned.local
            raise
        commit.handed_up_to = EVERY_MESSAGE if delivered else handed_up_to
        self.stats["episodes"] += 1
        owned.busy = True
        self._busy_count += 1
        self._cache.touch(owned.instance_id)
        return Episode(owned, decision, commit, delivered)

    def _park(self, item: OrchestrationWorkItem) -> Episode | None:
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
        commit, decision = park_commit(item, self.id, cause, attempts, self.clock.now())
        owned = OwnedInstance(item.instance_id, item.execution_id, item.revision,
                              failing_runtime(FunctionNotFoundError("orchestrator", item.name)))
        self._cache.remember(owned)
        owned.busy = True
        self._busy_count += 1
        return Episode(owned, decision, commit, [], parked=True)

    def _claim(self) -> bool:
        """Keep a newly scheduled activity for this worker, if its backlog has room."""
        if self.executor.running + self._claims_planned >= self.options.backlog:
            return False
        self._claims_planned += 1
        return True
