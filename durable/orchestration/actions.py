"""What one orchestration episode decided: new history, outbound work and the new status.

The replay engine returns a :class:`Decision`; the worker turns it into one storage commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from durable.errors import FailureDetails
from durable.history import EventRaised, HistoryEvent
from durable.status import OrchestrationRuntimeStatus


@dataclass(slots=True)
class ScheduleActivity:
    task_id: int
    name: str
    input: str | None


@dataclass(slots=True)
class ScheduleTimer:
    timer_id: int
    fire_at: float


@dataclass(slots=True)
class StartSubOrchestration:
    task_id: int
    name: str
    instance_id: str
    input: str | None
    version: str | None = None


@dataclass(slots=True)
class SendEvent:
    """A message to another instance: an entity request, signal, lock release or response.

    ``task_id`` is the sequence number its ``EventSent`` holds in history (None for messages
    the engine adds itself, such as the releases of a finished orchestration's locks).
    ``execution_id`` pins it to one execution of the target; ``visible_at`` delays it.
    """

    task_id: int | None
    instance_id: str
    name: str
    input: str | None
    execution_id: str | None = None
    visible_at: float | None = None


Action = ScheduleActivity | ScheduleTimer | StartSubOrchestration | SendEvent


@dataclass(slots=True)
class ContinueAsNewRequest:
    input: str | None
    carried_events: list[EventRaised] = field(default_factory=list)


@dataclass(slots=True)
class Decision:
    """The outcome of one episode.

    ``history`` is everything to append to the instance's history for this episode (starting
    with its OrchestratorStarted). ``actions`` is the outbound work, in scheduling order.
    ``output`` and ``custom_status`` are JSON text. ``continue_as_new`` is set when the
    orchestration restarts itself with fresh history.
    """

    history: list[HistoryEvent]
    actions: list[Action]
    status: OrchestrationRuntimeStatus
    output: str | None = None
    failure: FailureDetails | None = None
    custom_status: str | None = None
    continue_as_new: ContinueAsNewRequest | None = None
    entity_state: str | None = None  # an entity's new scheduler state (entities only)

    @property
    def is_done(self) -> bool:
        return self.status.is_terminal or self.continue_as_new is not None
