"""Durable tasks: what an orchestrator yields and what history events complete.

A task is created by a context method (``call_activity``, ``create_timer``, ...). Atomic tasks
are completed by one history event; compound tasks (``task_all``, ``task_any``, retries) complete
from their children. Completing a task notifies its parents, so a ``task_all`` of a thousand
activities costs O(1) per completion, not a rescan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from durable.errors import EventTimeoutError

if TYPE_CHECKING:
    from durable.orchestration.replay_state import ReplayState
    from durable.orchestration.retry import RetryOptions


class TaskState(IntEnum):
    RUNNING = 0
    SUCCEEDED = 1
    FAILED = 2


class TaskBase:
    """A unit of durable work. ``result`` is the value, or the exception if the task failed."""

    __slots__ = ("_parents", "id", "result", "state")

    def __init__(self, task_id: int | str | None = None) -> None:
        self.id = task_id
        self.state = TaskState.RUNNING
        self.result: Any = None
        self._parents: list[CompoundTask] | None = None

    @property
    def is_completed(self) -> bool:
        return self.state != TaskState.RUNNING

    @property
    def is_faulted(self) -> bool:
        return self.state == TaskState.FAILED

    @property
    def exception(self) -> BaseException | None:
        return self.result if self.state == TaskState.FAILED else None

    def _add_parent(self, parent: CompoundTask) -> None:
        if self._parents is None:
            self._parents = [parent]
        else:
            self._parents.append(parent)

    def _set_value(self, value: Any) -> None:
        if self.state != TaskState.RUNNING:
            return
        self.state = TaskState.SUCCEEDED
        self.result = value
        self._notify()

    def _set_exception(self, exc: BaseException) -> None:
        if self.state != TaskState.RUNNING:
            return
        self.state = TaskState.FAILED
        self.result = exc
        self._notify()

    def _notify(self) -> None:
        if self._parents:
            for parent in self._parents:
                parent._on_child_done(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id!r} state={self.state.name}>"


class AtomicTask(TaskBase):
    """A task completed by exactly one history event (activity, timer, event, sub-orchestration)."""

    __slots__ = ("description",)

    def __init__(self, task_id: int | str | None, description: str) -> None:
        super().__init__(task_id)
        self.description = description


class ActivityTask(AtomicTask):
    __slots__ = ()


class SubOrchestrationTask(AtomicTask):
    __slots__ = ()


class ExternalEventTask(AtomicTask):
    """Completed by the next event of its name that reaches it while it is *live*.

    A waiter is live while something could still want its value: it was never put in a
    ``task_any``/``task_all``, the orchestrator is yielding it, or one of the compound tasks
    holding it is itself live. A waiter whose every ``task_any`` was won by another task is
    abandoned, and an event skips it (see ``DurableOrchestrationContext._deliver_event``).
    Putting it in a new compound task, or yielding it, makes it live again (``_revive``).
    """

    __slots__ = ("_revive", "name", "registered")

    def __init__(self, name: str, revive: Callable[[ExternalEventTask], None]) -> None:
        super().__init__(name, f"wait_for_external_event('{name}')")
        self.name = name
        self.registered = False  # in the context's queue of waiters for this name
        self._revive = revive

    def _add_parent(self, parent: CompoundTask) -> None:
        super()._add_parent(parent)
        if not self.registered and not self.is_completed:
            self._revive(self)


class TimerTask(AtomicTask):
    """A durable timer. ``cancel()`` stops waiting for it; its later firing is ignored."""

    __slots__ = ("_cancelled", "fire_at")

    def __init__(self, task_id: int, fire_at: float) -> None:
        super().__init__(task_id, "create_timer")
        self.fire_at = fire_at
        self._cancelled = False

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        if self.is_completed:
            raise ValueError("Cannot cancel a timer that has already fired.")
        self._cancelled = True


class CompoundTask(TaskBase):
    """A task made of child tasks."""

    __slots__ = ("children",)

    def __init__(self, children: Sequence[TaskBase]) -> None:
        super().__init__(None)
        for child in children:
            if not isinstance(child, TaskBase):
                raise TypeError(
                    f"task_all/task_any take durable tasks, not {type(child).__name__}"
                )
        self.children = list(children)

    def _attach(self) -> None:
        for child in self.children:
            child._add_parent(self)
        for child in self.children:
            if self.is_completed:
                break
            if child.is_completed:
                self._on_child_done(child)

    def _on_child_done(self, child: TaskBase) -> None:
        raise NotImplementedError


class WhenAllTask(CompoundTask):
    """Completes with the children's results in order, or fails with the first failure."""

    __slots__ = ("_remaining",)

    def __init__(self, children: Sequence[TaskBase]) -> None:
        super().__init__(children)
        self._remaining = len(self.children)
        if not self.children:
            self._set_value([])
        else:
            self._attach()

    @property
    def pending_tasks(self) -> list[TaskBase]:
        return [c for c in self.children if not c.is_completed]

    @property
    def completed_tasks(self) -> list[TaskBase]:
        return [c for c in self.children if c.is_completed]

    def _on_child_done(self, child: TaskBase) -> None:
        if self.is_completed:
            return
        if child.state == TaskState.FAILED:
            self._set_exception(child.result)
            return
        self._remaining -= 1
        if self._remaining == 0:
            self._set_value([c.result for c in self.children])


class WhenAnyTask(CompoundTask):
    """Completes with the first child task to complete (the task itself, even if it failed)."""

    __slots__ = ()

    def __init__(self, children: Sequence[TaskBase]) -> None:
        super().__init__(children)
        if not self.children:
            raise ValueError("task_any needs at least one task")
        self._attach()

    def _on_child_done(self, child: TaskBase) -> None:
        if not self.is_completed:
            self._set_value(child)


class TimedEventTask(CompoundTask):
    """``wait_for_external_event(name, timeout=...)``: the event's value, or
    :class:`~durable.errors.EventTimeoutError` if the timer fires first.

    Whichever loses is cancelled: a late timer is ignored, and a waiter that timed out is
    abandoned, so a later event of that name goes to the next live waiter (or the buffer).
    """

    __slots__ = ("event", "timeout", "timer")

    def __init__(self, event: ExternalEventTask, timer: TimerTask, timeout: float) -> None:
        super().__init__([event, timer])
        self.event = event
        self.timer = timer
        self.timeout = timeout
        self._attach()

    def _on_child_done(self, child: TaskBase) -> None:
        if self.is_completed:
            return
        if child is self.event:
            if not self.timer.is_completed:
                self.timer.cancel()
            self._set_value(child.result)
        elif not self.timer.is_cancelled:
            self._set_exception(EventTimeoutError(self.event.name, self.timeout))


class RetryableTask(CompoundTask):
    """Runs attempts of an activity or sub-orchestration with durable timers between them.

    Follows the Durable Task retry algorithm: the delay before retry *n* (1-based) is
    ``first_interval * backoff_coefficient ** (n - 1)`` capped at ``max_interval``; retrying stops
    after ``max_number_of_attempts`` attempts, when ``handle`` rejects the error, or when the retry
    timeout has passed since the first attempt. Every attempt and every delay is a task with its
    own ID in history, so replay follows the same path.
    """

    __slots__ = ("_attempts", "_first_attempt_at", "_options", "_start_attempt", "_state")

    def __init__(
        self,
        state: ReplayState,
        options: RetryOptions,
        start_attempt: Callable[[], TaskBase],
    ) -> None:
        super().__init__([])
        self._state = state
        self._options = options
        self._start_attempt = start_attempt
        self._first_attempt_at = state.now
        self._attempts = 0
        self._next_attempt()

    def _next_attempt(self) -> None:
        self._attempts += 1
        attempt = self._start_attempt()
        self.children.append(attempt)
        attempt._add_parent(self)
        if attempt.is_completed:
            self._on_child_done(attempt)

    def _on_child_done(self, child: TaskBase) -> None:
        if self.is_completed:
            return
        if isinstance(child, TimerTask):
            self._next_attempt()
            return
        if child.state == TaskState.SUCCEEDED:
            self._set_value(child.result)
            return
        delay = self._options.delay_before_retry(
            self._attempts, child.result, self._state.now - self._first_attempt_at
        )
        if delay is None:
            self._set_exception(child.result)
            return
        timer = self._state.schedule_timer(self._state.now + delay)
        self.children.append(timer)
        timer._add_parent(self)
