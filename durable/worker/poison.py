"""Poison isolation: an instance that keeps failing inside durable is backed off, then parked.

A bad payload, a bug, a value storage refuses: whatever makes one instance's episode raise or
its commit fail must cost that instance alone, and must not become a hot loop. So, per instance:

- **Strikes.** Each episode that raises inside durable (anything escaping replay, the episode
  or building its commit) or whose commit fails with an error is a strike. The instance's cached
  state is dropped and the next attempt replays from storage, after a back-off that doubles
  from ``poison_retry_delay``; meanwhile polls skip it (the worker keeps its lease, so no other
  worker spins on it either).
- **Parking.** At ``poison_attempts`` strikes, or at once when the failure is deterministic (a
  value storage refuses, a stored message that cannot be decoded), the instance is committed
  as Failed, with the cause, where it struck and how often, in its failure details: visible in
  its status, and it stops retrying. Its inbox is dropped with the terminal commit; a parent
  orchestration is told, as for any failed sub-orchestration. Such an instance can be purged or
  restarted like any failed one.
- **Terminate always wins.** An instance with strikes whose inbox holds a terminate request is
  committed as Terminated without running its code again.
- **Entities** have no status to fail: parking drops the batch of messages the entity failed on
  (logged, with the cause) and keeps its state, so it serves the messages after them.

The commit built here is deliberately minimal (no user values but the terminate reason, which
storage already accepted once), so that parking cannot fail the way the episode did.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from durable import serialization
from durable.clock import SYSTEM_CLOCK, Clock
from durable.errors import FailureDetails
from durable.history import (
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
)
from durable.orchestration.actions import Decision
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage.base import OrchestrationCommit, OrchestrationWorkItem
from durable.worker.commits import report_to_parent

log = logging.getLogger("durable.worker")

STRIKE_MEMORY = 600.0  # seconds after its last retry a strike is forgotten


@dataclass(slots=True)
class Strike:
    """How often an instance failed inside durable, why, and when to try again."""

    attempts: int
    retry_at: float  # on the worker's clock, as its timer queue
    cause: FailureDetails
    park: bool = False  # the next item of the instance is parked instead of run


class Strikes:
    """Per-instance failure counts and back-off (in memory: a restart starts counting again,
    which only costs a few more attempts)."""

    def __init__(self, limit: int, first_delay: float, max_delay: float,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self.limit = max(1, limit)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._by_instance: dict[str, Strike] = {}

    def __bool__(self) -> bool:
        return bool(self._by_instance)

    def get(self, instance_id: str) -> Strike | None:
        return self._by_instance.get(instance_id)

    def record(self, instance_id: str, cause: FailureDetails, *, deterministic: bool,
               exc: BaseException | None = None) -> float:
        """Count a failure and log it; return when the instance's next attempt is due (a
        time of the worker's clock), which parks it if this strike says so."""
        strike = self._by_instance.get(instance_id)
        attempts = strike.attempts + 1 if strike is not None else 1
        park = deterministic or attempts >= self.limit
        if strike is not None and strike.park:
            delay = self.max_delay  # parking itself failed: keep trying, but slowly
        elif park:
            delay = 0.0
        else:
            delay = min(self.first_delay * 2 ** (attempts - 1), self.max_delay)
        retry_at = self._clock.now() + delay
        self._by_instance[instance_id] = Strike(attempts, retry_at, cause, park)
        if park:
            log.error("instance %s failed inside durable (%d attempt(s)): %s; failing it "
                      "(parked, see docs/reliability.md)", instance_id, attempts, cause.message)
        else:
            # The traceback once per instance, then one line per attempt: no log flood.
            log.warning("instance %s failed inside durable (attempt %d of %d): %s; retrying "
                        "in %.1fs", instance_id, attempts, self.limit, cause.message, delay,
                        exc_info=exc if attempts == 1 else None)
        return retry_at

    def clear(self, instance_id: str) -> None:
        self._by_instance.pop(instance_id, None)

    def backing_off(self) -> list[str]:
        """Instances whose next attempt is not due yet (polls skip them)."""
        if not self._by_instance:
            return []
        now = self._clock.now()
        for instance_id in [i for i, s in self._by_instance.items()
                            if s.retry_at < now - STRIKE_MEMORY]:
            del self._by_instance[instance_id]  # finished or purged elsewhere long ago
        return [i for i, s in self._by_instance.items() if s.retry_at > now]

    def is_backing_off(self, instance_id: str) -> bool:
        strike = self._by_instance.get(instance_id)
        return strike is not None and strike.retry_at > self._clock.now()


def failure_of(exc: BaseException, where: str) -> FailureDetails:
    """The failure an exception inside durable causes, saying where it struck."""
    cause = FailureDetails.from_exception(exc, "".join(traceback.format_exception(exc)))
    return FailureDetails(cause.error_type, f"{where}: {cause.message}", cause.details)


def describe_events(events: Sequence[HistoryEvent]) -> str:
    """A short list of new events for a failure message: what the episode was applying."""
    shown = []
    for event in events[:5]:
        label = type(event).__name__
        name = getattr(event, "name", None)
        task = getattr(event, "task_scheduled_id", None)
        if isinstance(name, str):
            label += f" '{serialization.printable(name)[:60]}'"
        elif task is not None:
            label += f" #{task}"
        shown.append(label)
    more = f" and {len(events) - 5} more" if len(events) > 5 else ""
    return ", ".join(shown) + more if shown else "no new events"


def terminating(item: OrchestrationWorkItem) -> bool:
    """Whether a terminate request waits in ``item`` (it wins over retrying)."""
    return any(isinstance(m.event, ExecutionTerminated) for m in item.messages)


def _started_of(item: OrchestrationWorkItem) -> ExecutionStarted | None:
    for event in item.history or []:
        if isinstance(event, ExecutionStarted):
            return event
    for message in item.messages:
        if isinstance(message.event, ExecutionStarted) and (
            message.execution_id in (None, item.execution_id)
        ):
            return message.event
    return None


def park_commit(
    item: OrchestrationWorkItem, lease_owner: str, cause: FailureDetails, attempts: int,
    now: float,
) -> tuple[OrchestrationCommit, Decision]:
    """The commit that ends ``item``'s instance: Terminated if a terminate request is waiting,
    else Failed with ``cause``. Every message in the item is consumed.

    An entity has no status to fail: its batch of messages is dropped instead (a dead
    letter, logged with the cause) and its state is kept, so the entity serves the messages
    that come after.
    """
    if item.is_entity:
        log.error("entity %s: dropping the %d message(s) it failed on %d time(s), keeping its "
                  "state: %s", item.instance_id, len(item.messages), attempts, cause.message)
        decision = Decision([], [], Status.Running, entity_state=item.entity_state or "{}")
        return OrchestrationCommit(
            instance_id=item.instance_id, execution_id=item.execution_id,
            revision=item.revision, lease_owner=lease_owner, history=[],
            status=Status.Running, consumed_messages=[m.message_id for m in item.messages],
            entity_state=decision.entity_state,
        ), decision
    started = _started_of(item)
    name = started.name if started is not None else item.name
    history: list[HistoryEvent] = [OrchestratorStarted(timestamp=now)]
    if started is not None and item.history == []:
        history.append(started)  # its first episode: keep where it began
    terminate = next((m.event for m in item.messages
                      if isinstance(m.event, ExecutionTerminated)), None)
    failure: FailureDetails | None
    if terminate is not None:
        status = Status.Terminated
        reason = terminate.reason
        output = serialization.dumps(None if reason is None else serialization.printable(
            reason if isinstance(reason, str) else repr(reason)))
        failure = None
        history.append(terminate)
    else:
        status = Status.Failed
        tries = "once" if attempts == 1 else f"{attempts} times"
        failure = FailureDetails(
            cause.error_type,
            f"durable failed this instance after its episode failed {tries}: {cause.message}",
            cause.details,
        )
        output = serialization.dumps(serialization.printable(
            f"Orchestrator function '{name}' failed: {failure.message}"
        ))
    history.append(ExecutionCompleted(timestamp=now, status=status.value, result=output,
                                      failure=failure))
    decision = Decision(history, [], status, output=output, failure=failure)
    commit = OrchestrationCommit(
        instance_id=item.instance_id,
        execution_id=item.execution_id,
        revision=item.revision,
        lease_owner=lease_owner,
        history=history,
        status=status,
        consumed_messages=[m.message_id for m in item.messages],
        output=output,
        failure=failure,
        release=True,
    )
    if started is not None and started.parent_instance_id:
        commit.messages.append(report_to_parent(started, decision, now))
    return commit, decision
