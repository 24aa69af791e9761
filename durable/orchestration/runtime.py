"""The replay engine: history + new events -> decision. Pure: no I/O, no clock.

An :class:`OrchestrationRuntime` holds one live orchestration (its generator and its tasks). It
is built once per instance, fed the stored history with :meth:`~OrchestrationRuntime.replay`
(cold start), and then fed only *new* events, one episode at a time, with
:meth:`~OrchestrationRuntime.run_episode`. Workers cache runtimes between episodes, so the cost
of an episode is proportional to its new events, and a cold replay is one linear pass.

:func:`execute` is the same thing as a single pure function, for tests and tools.
"""

from __future__ import annotations

import contextlib
import inspect
import traceback
from collections.abc import Callable, Generator, Iterable
from typing import Any

from durable import serialization
from durable.errors import (
    DeserializationError,
    FailureDetails,
    NonDeterminismError,
    SerializationError,
)
from durable.history import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.orchestration.actions import (
    Action,
    ContinueAsNewRequest,
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)
from durable.orchestration.context import DurableOrchestrationContext, NameResolver
from durable.orchestration.entity_ids import RELEASE_EVENT
from durable.orchestration.replay_state import ReplayState
from durable.orchestration.tasks import TaskBase
from durable.status import OrchestrationRuntimeStatus as Status

OrchestratorFunction = Callable[[DurableOrchestrationContext], Any]

# Which action a scheduling event in history must match, and how to describe both.
_SCHEDULING_EVENTS: dict[type[HistoryEvent], type[Action]] = {
    TaskScheduled: ScheduleActivity,
    TimerCreated: ScheduleTimer,
    SubOrchestrationInstanceCreated: StartSubOrchestration,
    EventSent: SendEvent,
}


def describe_action(action: Action) -> str:
    if isinstance(action, ScheduleActivity):
        return f"call_activity('{action.name}')"
    if isinstance(action, StartSubOrchestration):
        return f"call_sub_orchestrator('{action.name}')"
    if isinstance(action, SendEvent):
        return f"a message '{action.name}' to '{action.instance_id}'"
    return "create_timer"


def describe_event(event: HistoryEvent) -> str:
    if isinstance(event, TaskScheduled):
        return f"call_activity('{event.name}')"
    if isinstance(event, SubOrchestrationInstanceCreated):
        return f"call_sub_orchestrator('{event.name}')"
    if isinstance(event, TimerCreated):
        return "create_timer"
    if isinstance(event, EventSent):
        return f"a message '{event.name}' to '{event.instance_id}'"
    return type(event).__name__


def _same_name(a: str | None, b: str | None) -> bool:
    """Function names match ignoring case, as Durable Functions matches them."""
    return a == b or (a is not None and b is not None and a.casefold() == b.casefold())


class OrchestrationRuntime:
    """One live orchestration execution, advanced episode by episode."""

    def __init__(
        self,
        orchestrator: OrchestratorFunction,
        *,
        resolve_activity: NameResolver | None = None,
        resolve_orchestrator: NameResolver | None = None,
    ) -> None:
        self._orchestrator = orchestrator
        self._resolve_activity = resolve_activity
        self._resolve_orchestrator = resolve_orchestrator
        self.context: DurableOrchestrationContext | None = None
        self.state: ReplayState | None = None
        self.started: ExecutionStarted | None = None
        self._generator: Generator[Any, Any, Any] | None = None
        self._awaited: TaskBase | None = None
        self._suspended = False
        self._held: list[HistoryEvent] = []
        self._outcome: Status | None = None
        self._output: str | None = None
        self._failure: FailureDetails | None = None
        self._error: BaseException | None = None
        # Work the code created is sent even in the episode that finishes the orchestration,
        # unless the code is out of step with history or was stopped from outside.
        self._drop_work = False
        self._continue_as_new: ContinueAsNewRequest | None = None
        self._preserve_events = False
        self._replaying = False
        self._first_episode_at = 0.0

    @property
    def is_done(self) -> bool:
        return self._outcome is not None

    @property
    def output(self) -> str | None:
        """The output (JSON text) once done; for a failure, the failure message."""
        return self._output

    @property
    def failure(self) -> FailureDetails | None:
        return self._failure

    @property
    def last_error(self) -> BaseException | None:
        """The exception that failed this execution (a NonDeterminismError for code that no
        longer matches its history), if it failed."""
        return self._error

    # -- public API ---------------------------------------------------------------------------

    def replay(self, history: Iterable[HistoryEvent]) -> None:
        """Re-run the orchestrator over stored history (a cold start). No new work results."""
        for event in history:
            if self._outcome is None:
                self._apply(event, replaying=True)
            elif type(event) in _SCHEDULING_EVENTS and self._outcome is not Status.Failed:
                self._match_late(event)

    def _match_late(self, event: HistoryEvent) -> None:
        """A scheduling event recorded after the code's outcome was decided: work created in
        the finishing episode (history keeps it) must match what the code creates now."""
        state = self._require_state()
        event_id: int = event.event_id  # type: ignore[attr-defined]
        if not state.is_scheduled(event_id):
            self._fail(
                NonDeterminismError(
                    "Non-deterministic orchestrator: history has "
                    f"{describe_event(event)} after the point where the code now returns.",
                    expected=describe_event(event),
                ),
                with_traceback=False,
            )
            return
        try:
            self._on_scheduled(event)
        except NonDeterminismError as exc:
            self._fail(exc, with_traceback=False)

    def run_episode(self, new_events: Iterable[HistoryEvent], now: float) -> Decision:
        """Apply new events at time ``now`` and return what to record and do."""
        started = OrchestratorStarted(timestamp=now)
        appended: list[HistoryEvent] = [started]
        self._apply(started, replaying=False)
        carried: list[EventRaised] = []
        for event in new_events:
            if self._outcome is not None:
                if isinstance(event, EventRaised):
                    carried.append(event)
                continue
            if self._apply(event, replaying=False):
                appended.append(event)
        return self._decide(appended, now, carried)

    # -- event application --------------------------------------------------------------------

    def _apply(self, event: HistoryEvent, replaying: bool) -> bool:
        """Apply one event; return False if it is a stale duplicate that history should skip."""
        self._replaying = replaying
        if self.state is not None:
            self.state.is_replaying = replaying
        try:
            if self._suspended and not isinstance(
                event,
                (ExecutionResumed, ExecutionSuspended, ExecutionTerminated, OrchestratorStarted),
            ) and type(event) not in _SCHEDULING_EVENTS:
                self._held.append(event)
                return True
            handler = _HANDLERS.get(type(event))
            if handler is None:
                return True
            return handler(self, event)
        except (NonDeterminismError, DeserializationError) as exc:
            self._fail(exc, with_traceback=False)
            return True

    def _on_orchestrator_started(self, event: OrchestratorStarted) -> bool:
        if self.state is not None:
            self.state.advance_clock(event.timestamp)
        else:
            self._first_episode_at = event.timestamp
        return True

    def _on_execution_started(self, event: ExecutionStarted) -> bool:
        if self.started is not None:
            return False
        self.started = event
        state = ReplayState(event.instance_id, event.execution_id)
        context = DurableOrchestrationContext(
            name=event.name,
            instance_id=event.instance_id,
            execution_id=event.execution_id,
            input_=event.input,
            parent_instance_id=event.parent_instance_id,
            version=event.version,
            resolve_activity=self._resolve_activity,
            resolve_orchestrator=self._resolve_orchestrator,
            state=state,
        )
        state.advance_clock(max(self._first_episode_at, event.timestamp))
        state.is_replaying = self._replaying
        self.state = state
        self.context = context
        self._start()
        return True

    def _on_scheduled(self, event: HistoryEvent) -> bool:
        event_id: int = event.event_id  # type: ignore[attr-defined]
        expected = describe_event(event)
        entry = self._require_state().take_scheduled(event_id)
        if entry is None:
            raise NonDeterminismError(
                f"Non-deterministic orchestrator: history has {expected} as task #{event_id}, "
                "but the code no longer schedules it.",
                expected=expected,
                actual=None,
            )
        action = entry[0]
        if not isinstance(action, _SCHEDULING_EVENTS[type(event)]) or not _same_name(
            getattr(action, "name", None), getattr(event, "name", None)
        ) or getattr(action, "instance_id", None) != getattr(event, "instance_id", None):
            actual = describe_action(action)
            raise NonDeterminismError(
                f"Non-deterministic orchestrator: task #{event_id} was {expected} in history, "
                f"but the code now calls {actual}.",
                expected=expected,
                actual=actual,
            )
        return True

    def _on_task_completed(self, event: TaskCompleted | SubOrchestrationInstanceCompleted) -> bool:
        if not self._require_state().complete_task(event.task_scheduled_id, event.result):
            return False
        self._resume()
        return True

    def _on_task_failed(self, event: TaskFailed | SubOrchestrationInstanceFailed) -> bool:
        if not self._require_state().fail_task(event.task_scheduled_id, event.failure):
            return False
        self._resume()
        return True

    def _on_timer_fired(self, event: TimerFired) -> bool:
        if not self._require_state().complete_task(event.timer_id, None):
            return False
        self._resume()
        return True

    def _on_event_raised(self, event: EventRaised) -> bool:
        self._require_state().deliver_event(event.name, event.input)
        self._resume()
        return True

    def _on_terminated(self, event: ExecutionTerminated) -> bool:
        self._close_generator()
        self._drop_work = True
        self._outcome = Status.Terminated
        self._output = serialization.dumps(event.reason)
        return True

    def _on_suspended(self, event: ExecutionSuspended) -> bool:
        self._suspended = True
        return True

    def _on_resumed(self, event: ExecutionResumed) -> bool:
        if not self._suspended:
            return True
        self._suspended = False
        held, self._held = self._held, []
        for queued in held:
            if self._outcome is not None:
                break
            self._apply(queued, replaying=self._require_state().is_replaying)
        return True

    def _on_execution_completed(self, event: ExecutionCompleted) -> bool:
        self._outcome = Status(event.status)
        return True

    # -- running user code --------------------------------------------------------------------

    def _start(self) -> None:
        context = self._require_context()
        try:
            result = self._orchestrator(context)
        except Exception as exc:  # user code failed before its first yield
            self._fail(exc)
            return
        if inspect.isgenerator(result):
            self._generator = result
            self._step(result, None, None)
            self._resume()  # the first task yielded may already be complete
        elif inspect.iscoroutine(result):
            result.close()
            self._fail(
                TypeError("Orchestrator functions must be generators (use yield, not async def).")
            )
        else:
            self._finish(result)

    def _resume(self) -> None:
        while self._outcome is None:
            task = self._awaited
            if task is None or not task.is_completed:
                return
            generator = self._generator
            if generator is None:
                return
            if task.is_faulted:
                self._step(generator, None, task.result)
            else:
                self._step(generator, task.result, None)

    def _step(
        self, generator: Generator[Any, Any, Any], value: Any, error: BaseException | None
    ) -> None:
        """Advance the generator one yield, handling completion, failure and continue-as-new."""
        try:
            yielded = generator.throw(error) if error is not None else generator.send(value)
        except StopIteration as stop:
            self._finish(stop.value)
            return
        except Exception as exc:
            self._fail(exc)
            return
        if self._require_state().continue_as_new is not None:
            self._finish_continue_as_new()
            return
        if not isinstance(yielded, TaskBase):
            self._fail(
                TypeError(
                    "Orchestrators must yield durable tasks (call_activity, create_timer, "
                    f"task_all, ...), not {type(yielded).__name__}."
                )
            )
            return
        self._awaited = yielded
        misuse = self._require_state().yielded(yielded)
        if misuse is not None:
            self._step(generator, None, misuse)

    def _finish(self, value: Any) -> None:
        if self._require_state().continue_as_new is not None:
            self._finish_continue_as_new()
            return
        try:
            self._output = serialization.dumps(value, "orchestration output")
        except SerializationError as exc:
            self._fail(exc, with_traceback=False)
            return
        self._outcome = Status.Completed

    def _finish_continue_as_new(self) -> None:
        state = self._require_state()
        assert state.continue_as_new is not None
        payload, preserve = state.continue_as_new
        carried = (
            [EventRaised(timestamp=state.now, name=name, input=data)
             for name, data in state.events.unconsumed()]
            if preserve
            else []
        )
        self._continue_as_new = ContinueAsNewRequest(payload, carried)
        self._preserve_events = preserve
        self._outcome = Status.ContinuedAsNew
        self._close_generator()

    def _fail(self, exc: BaseException, with_traceback: bool = True) -> None:
        # Code out of step with history (or history it cannot read) creates no trustworthy work.
        if isinstance(exc, NonDeterminismError | DeserializationError):
            self._drop_work = True
        self._error = exc
        details = (
            "".join(traceback.format_exception(exc)) if with_traceback else None
        )
        self._failure = FailureDetails.from_exception(exc, details)
        name = self.started.name if self.started else "?"
        self._output = serialization.dumps(f"Orchestrator function '{name}' failed: {exc}")
        self._outcome = Status.Failed
        self._close_generator()

    def _close_generator(self) -> None:
        generator, self._generator = self._generator, None
        if generator is not None:
            with contextlib.suppress(Exception):
                generator.close()

    def _require_state(self) -> ReplayState:
        self._require_context()
        assert self.state is not None
        return self.state

    def _require_context(self) -> DurableOrchestrationContext:
        if self.context is None:
            raise NonDeterminismError(
                "History does not start with ExecutionStarted; the instance's history is corrupt."
            )
        return self.context

    # -- decision -----------------------------------------------------------------------------

    def _decide(
        self, appended: list[HistoryEvent], now: float, late_events: list[EventRaised]
    ) -> Decision:
        state = self._require_state()
        try:
            custom = state.custom_status_json()
        except SerializationError as exc:
            # The value was checked when set, but may have been mutated since.
            state.custom_status_set = False
            custom = None
            if self._outcome is None or self._outcome is Status.Completed:
                self._fail(exc, with_traceback=False)
        actions: list[Action] = []
        finished = self._outcome is not None
        work = state.take_new_work()
        if not (finished and self._drop_work):
            for action, event in work:
                event.timestamp = now
                appended.append(event)
                # A finished orchestration would discard its timers' firing: record, don't send.
                if not (finished and isinstance(action, ScheduleTimer)):
                    actions.append(action)
        else:
            # Terminated (or out of step with history): no new work, but the lock releases
            # of a critical section closed on the way out still go.
            actions.extend(action for action, _ in work
                           if isinstance(action, SendEvent) and action.name == RELEASE_EVENT)
        if finished:
            actions.extend(state.end_messages())  # never leave entities locked
        outcome = self._outcome
        if outcome is None:
            status = Status.Suspended if self._suspended else Status.Running
            decision = Decision(appended, actions, status, custom_status=custom)
        elif outcome is Status.ContinuedAsNew:
            request = self._continue_as_new
            assert request is not None
            if self._preserve_events:
                request.carried_events.extend(late_events)
            appended.append(ContinueAsNew(timestamp=now, input=request.input))
            decision = Decision(
                appended, actions, outcome, custom_status=custom, continue_as_new=request
            )
        else:
            appended.append(
                ExecutionCompleted(
                    timestamp=now, status=outcome.value, result=self._output,
                    failure=self._failure,
                )
            )
            decision = Decision(
                appended, actions, outcome, output=self._output, failure=self._failure,
                custom_status=custom,
            )
        return decision


_HANDLERS: dict[type[HistoryEvent], Callable[[OrchestrationRuntime, Any], bool]] = {
    OrchestratorStarted: OrchestrationRuntime._on_orchestrator_started,
    OrchestratorCompleted: lambda runtime, event: True,
    ExecutionStarted: OrchestrationRuntime._on_execution_started,
    TaskScheduled: OrchestrationRuntime._on_scheduled,
    TimerCreated: OrchestrationRuntime._on_scheduled,
    SubOrchestrationInstanceCreated: OrchestrationRuntime._on_scheduled,
    EventSent: OrchestrationRuntime._on_scheduled,
    TaskCompleted: OrchestrationRuntime._on_task_completed,
    SubOrchestrationInstanceCompleted: OrchestrationRuntime._on_task_completed,
    TaskFailed: OrchestrationRuntime._on_task_failed,
    SubOrchestrationInstanceFailed: OrchestrationRuntime._on_task_failed,
    TimerFired: OrchestrationRuntime._on_timer_fired,
    EventRaised: OrchestrationRuntime._on_event_raised,
    ExecutionTerminated: OrchestrationRuntime._on_terminated,
    ExecutionSuspended: OrchestrationRuntime._on_suspended,
    ExecutionResumed: OrchestrationRuntime._on_resumed,
    ExecutionCompleted: OrchestrationRuntime._on_execution_completed,
    ContinueAsNew: lambda runtime, event: True,
}


def execute(
    orchestrator: OrchestratorFunction,
    history: Iterable[HistoryEvent],
    new_events: Iterable[HistoryEvent],
    now: float,
    *,
    resolve_activity: NameResolver | None = None,
    resolve_orchestrator: NameResolver | None = None,
) -> Decision:
    """Pure replay: run ``orchestrator`` over ``history``, then apply ``new_events`` at ``now``."""
    runtime = OrchestrationRuntime(
        orchestrator, resolve_activity=resolve_activity, resolve_orchestrator=resolve_orchestrator
    )
    runtime.replay(history)
    return runtime.run_episode(new_events, now)


__all__ = ["OrchestrationRuntime", "describe_action", "describe_event", "execute"]
