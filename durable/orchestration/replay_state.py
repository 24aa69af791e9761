"""What the replay engine tracks for one execution, behind one public interface.

:class:`ReplayState` is the engine's side of an orchestration: the replay clock, the sequence
numbers, the work the code scheduled that history has not matched yet, the tasks waiting for
an answer, the external events and their waiters, the entity calls and locks, and the custom
status and continue-as-new request. The user-facing
:class:`~durable.orchestration.context.DurableOrchestrationContext` is a thin façade that turns
API calls into tasks and records them here; the runtime
(:mod:`durable.orchestration.runtime`) matches history against it and feeds it answers.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any, cast

from durable import serialization
from durable.errors import FailureDetails, InvalidInputError, NonDeterminismError, TaskFailedError
from durable.history import HistoryEvent, TimerCreated, to_datetime
from durable.orchestration.actions import Action, ScheduleTimer, SendEvent
from durable.orchestration.decoding import decode_payload
from durable.orchestration.entity_calls import EntityCallState
from durable.orchestration.tasks import AtomicTask, ExternalEventTask, TaskBase, TimerTask


class ExternalEvents:
    """Waiters per event name (casefolded, oldest first) and the events no live waiter took.

    An event goes to the oldest *live* waiter (see :class:`ExternalEventTask`); abandoned
    waiters are passed over and leave the queue, and rejoin it if they are revived.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, deque[ExternalEventTask]] = {}
        self._buffer: dict[str, deque[str | None]] = {}
        self._names: dict[str, str] = {}
        self._buffered = 0
        self.awaited: TaskBase | None = None  # what the orchestrator yields now

    def wait(self, name: str) -> ExternalEventTask:
        """A new waiter for ``name``: it takes the oldest buffered event at once, if any."""
        task = ExternalEventTask(name, self.register)
        buffered = self._buffer.get(name.casefold())
        if buffered:
            self._take_buffered(task, buffered)
        else:
            self.register(task)
        return task

    def register(self, task: ExternalEventTask) -> None:
        waiters = self._waiters.setdefault(task.name.casefold(), deque())
        # Drop abandoned waiters at the head, so a loop that re-arms its wait every round
        # (and never gets an event) does not grow the queue without bound.
        while waiters and not self._is_live(waiters[0]):
            waiters.popleft().registered = False
        task.registered = True
        waiters.append(task)

    def deliver(self, name: str, payload: str | None) -> None:
        key = name.casefold()
        waiters = self._waiters.get(key)
        while waiters:
            task = waiters.popleft()
            task.registered = False
            if self._is_live(task):
                task._set_value(decode_payload(payload, f"payload of event '{task.name}'"))
                return
        self._buffer.setdefault(key, deque()).append(payload)
        self._names.setdefault(key, name)
        self._buffered += 1

    def yielded(self, task: TaskBase) -> None:
        """The orchestrator now waits for ``task``: a revived waiter may take a buffered event."""
        self.awaited = task
        if isinstance(task, ExternalEventTask) and not task.registered and not task.is_completed:
            self.register(task)
        if not self._buffered:
            return
        for key, buffered in self._buffer.items():
            waiters = self._waiters.get(key)
            while buffered and waiters:
                waiter = waiters.popleft()
                waiter.registered = False
                if self._is_live(waiter):
                    self._take_buffered(waiter, buffered)

    def unconsumed(self) -> list[tuple[str, str | None]]:
        return [(self._names[key], payload)
                for key, queue in self._buffer.items() for payload in queue]

    def waiting(self, name: str) -> int:
        """How many waiters the queue of ``name`` holds (live or not yet found abandoned)."""
        return len(self._waiters.get(name.casefold(), ()))

    def _take_buffered(self, task: ExternalEventTask, buffered: deque[str | None]) -> None:
        self._buffered -= 1
        task._set_value(decode_payload(buffered.popleft(), f"payload of event '{task.name}'"))

    def _is_live(self, task: TaskBase) -> bool:
        """Could the orchestrator still want this task's value? (See ExternalEventTask.)"""
        if task.is_completed:
            return False
        if task is self.awaited:
            return True
        parents = task._parents
        return not parents or any(self._is_live(parent) for parent in parents)


class ReplayState:
    """The replay state of one execution (see the module docstring)."""

    def __init__(self, instance_id: str, execution_id: str) -> None:
        self.instance_id = instance_id
        self.execution_id = execution_id
        self.now = 0.0
        self._now_datetime: datetime | None = None
        self.is_replaying = False
        self._sequence = 0
        # Scheduled in code, not yet matched by (or written to) history: id -> (action, event).
        self._scheduled: dict[int, tuple[Action, HistoryEvent]] = {}
        # Scheduled tasks awaiting their completion event: id -> task.
        self._open: dict[int, AtomicTask] = {}
        self.events = ExternalEvents()
        self.entities = EntityCallState(self)
        self.custom_status: Any = None
        self.custom_status_set = False
        self.continue_as_new: tuple[str, bool] | None = None  # (input, preserve events)

    # -- the clock --------------------------------------------------------------------------------

    def advance_clock(self, timestamp: float) -> None:
        if timestamp > self.now:
            self.now = timestamp
            self._now_datetime = None

    @property
    def now_datetime(self) -> datetime:
        if self._now_datetime is None:
            self._now_datetime = to_datetime(self.now)
        return self._now_datetime

    # -- scheduling (the context's side) ----------------------------------------------------------

    def next_id(self) -> int:
        task_id = self._sequence
        self._sequence += 1
        return task_id

    def schedule(self, task: AtomicTask, action: Action, event: HistoryEvent) -> None:
        """Record work whose answer completes ``task`` (activity, timer, sub-orchestration)."""
        self.schedule_message(cast(int, task.id), action, event)
        self._open[cast(int, task.id)] = task

    def schedule_message(self, task_id: int, action: Action, event: HistoryEvent) -> None:
        """Record work that no history event answers by its task ID (entity messages)."""
        if self.continue_as_new is not None:
            raise InvalidInputError("No work can be scheduled after continue_as_new.")
        self._scheduled[task_id] = (action, event)

    def schedule_timer(self, fire_at: float) -> TimerTask:
        timer_id = self.next_id()
        task = TimerTask(timer_id, fire_at)
        self.schedule(task, ScheduleTimer(timer_id, fire_at),
                      TimerCreated(timestamp=self.now, event_id=timer_id, fire_at=fire_at))
        return task

    # -- matching history (the runtime's side) ----------------------------------------------------

    def is_scheduled(self, task_id: int) -> bool:
        return task_id in self._scheduled

    def take_scheduled(self, task_id: int) -> tuple[Action, HistoryEvent] | None:
        """The work history just recorded as ``task_id``, no longer new."""
        return self._scheduled.pop(task_id, None)

    def take_new_work(self) -> list[tuple[Action, HistoryEvent]]:
        """Everything scheduled and not matched by history: this episode's new work."""
        work = list(self._scheduled.values())
        self._scheduled.clear()
        return work

    def complete_task(self, task_id: int, payload: str | None) -> bool:
        """Complete an open task from its completion event; False if no such task is open."""
        if self._outcome_before_scheduling(task_id):
            return False
        task = self._open.get(task_id)
        if task is None:
            return False
        if isinstance(task, TimerTask):
            del self._open[task_id]
            if not task.is_cancelled:
                task._set_value(None)
            return True
        value = decode_payload(payload, f"result of {task.description} (task #{task_id})")
        del self._open[task_id]
        task._set_value(value)
        return True

    def fail_task(self, task_id: int, failure: FailureDetails) -> bool:
        if self._outcome_before_scheduling(task_id):
            return False
        task = self._open.pop(task_id, None)
        if task is None:
            return False
        message = f"{task.description} failed: {failure.error_type}: {failure.message}"
        task._set_exception(TaskFailedError(message, failure, task.description))
        return True

    def deliver_event(self, name: str, payload: str | None) -> None:
        """An EventRaised: an entity's answer to one of our requests, or an external event."""
        if not self.entities.answer(name, payload):
            self.events.deliver(name, payload)

    def yielded(self, task: TaskBase) -> InvalidInputError | None:
        """The orchestrator yields ``task``; returns the error to throw at it for misuse."""
        misuse = self.entities.check_yield(task)
        if misuse is None:
            self.events.yielded(task)
        return misuse

    def custom_status_json(self) -> str | None:
        """The custom status to store (None: unchanged); SerializationError if the value was
        mutated into something that is not JSON since it was set."""
        if not self.custom_status_set:
            return None
        return serialization.dumps(self.custom_status, "custom status")

    def end_messages(self) -> list[SendEvent]:
        """What the engine sends when the execution ends: the releases of its locks."""
        return self.entities.releases_at_end()

    def _outcome_before_scheduling(self, task_id: int) -> bool:
        """A completion for a task whose scheduling event history does not hold yet.

        In stored history that is corruption (or code that now schedules differently), and
        fails the instance; arriving as a new message it can only be stale, and is dropped,
        so the task is neither completed early nor scheduled twice.
        """
        if task_id not in self._scheduled:
            return False
        if self.is_replaying:
            _action, event = self._scheduled[task_id]
            raise NonDeterminismError(
                f"History has the outcome of task #{task_id} before it was scheduled "
                f"({type(event).__name__}); the history does not match the code.",
            )
        return True
