"""Unit-test an orchestrator without storage or a worker: drive it with the results you choose
and check what it schedules.

    tester = OrchestratorTester(hello_sequence, input={"city": "Tokyo"})
    step = tester.start()
    assert step.activities == [Call("say_hello", "Tokyo")]
    step = tester.complete("say_hello", "Hello Tokyo!")
    ...
    assert tester.status is OrchestrationRuntimeStatus.Completed and tester.output == [...]

Every step goes through the real replay engine; ``check_replay=True`` (the default) also
replays the whole history recorded so far from scratch after each step and fails if a cold
replay would decide differently, so a test catches non-determinism too. Time is virtual: it
starts at ``start_time`` and moves only when a step says so (``advance``), so a timer of thirty
days is one call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from durable import serialization
from durable.errors import FailureDetails, InvalidInputError
from durable.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
    to_timestamp,
)
from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)
from durable.orchestration.entity_ids import EntityRequest, lock_granted_json, response_json
from durable.orchestration.runtime import OrchestrationRuntime
from durable.status import OrchestrationRuntimeStatus as Status

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Call:
    """A call the orchestrator made: its function (or entity operation) name and input."""

    name: str
    input: Any = None


@dataclass(slots=True)
class Step:
    """What one episode decided."""

    status: Status
    activities: list[Call] = field(default_factory=list)
    sub_orchestrations: list[Call] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    entity_calls: list[Call] = field(default_factory=list)  # "@name@key.operation"
    output: Any = None
    failure: FailureDetails | None = None
    custom_status: Any = None


@dataclass(slots=True)
class _Pending:
    kind: str  # activity, sub, timer, entity
    task_id: int
    name: str
    input: Any
    fire_at: float = 0.0
    request_id: str = ""


class OrchestratorTester:
    """Drives one orchestration episode by episode, like a worker, but in memory."""

    def __init__(
        self,
        orchestrator: Callable[..., Any],
        input: Any = None,
        *,
        instance_id: str = "test-instance",
        start_time: datetime = DEFAULT_START,
        check_replay: bool = True,
    ) -> None:
        self._fn = orchestrator
        self.instance_id = instance_id
        self._input = serialization.dumps(input, "orchestration input")
        self._now = to_timestamp(start_time)
        self._check_replay = check_replay
        self._runtime = OrchestrationRuntime(self._fn)
        self.history: list[HistoryEvent] = []
        self._pending: list[_Pending] = []
        self.last: Step | None = None

    # -- driving ----------------------------------------------------------------------------------

    def start(self) -> Step:
        started = ExecutionStarted(timestamp=self._now, name=getattr(self._fn, "__name__", "o"),
                                   instance_id=self.instance_id, execution_id="test-execution",
                                   input=self._input)
        return self._episode([started])

    def complete(self, name: str, result: Any = None) -> Step:
        """The oldest pending activity, sub-orchestration or entity call named ``name``
        (an entity call is named ``@entity@key.operation``) returns ``result``."""
        pending = self._take(name)
        payload = serialization.dumps(result, f"result of {name}")
        event: HistoryEvent
        if pending.kind == "activity":
            event = TaskCompleted(timestamp=self._now, task_scheduled_id=pending.task_id,
                                  result=payload)
        elif pending.kind == "sub":
            event = SubOrchestrationInstanceCompleted(
                timestamp=self._now, task_scheduled_id=pending.task_id, result=payload)
        else:
            event = EventRaised(timestamp=self._now, name=pending.request_id,
                                input=response_json(payload))
        return self._episode([event])

    def fail(self, name: str, error: BaseException | str) -> Step:
        """The oldest pending call named ``name`` fails with ``error``."""
        pending = self._take(name)
        failure = (FailureDetails.from_exception(error) if isinstance(error, BaseException)
                   else FailureDetails("Exception", str(error)))
        event: HistoryEvent
        if pending.kind == "activity":
            event = TaskFailed(timestamp=self._now, task_scheduled_id=pending.task_id,
                               failure=failure)
        elif pending.kind == "sub":
            event = SubOrchestrationInstanceFailed(
                timestamp=self._now, task_scheduled_id=pending.task_id, failure=failure)
        else:
            event = EventRaised(timestamp=self._now, name=pending.request_id,
                                input=response_json(None, failure))
        return self._episode([event])

    def grant_locks(self) -> Step:
        """The pending ``context.lock`` request gets every lock it asked for."""
        for pending in self._pending:
            if pending.kind == "lock":
                self._pending.remove(pending)
                return self._episode([EventRaised(timestamp=self._now, name=pending.request_id,
                                                  input=lock_granted_json())])
        raise InvalidInputError("No lock request is pending.")

    def raise_event(self, name: str, data: Any = None) -> Step:
        payload = serialization.dumps(data, "event data")
        return self._episode([EventRaised(timestamp=self._now, name=name, input=payload)])

    def terminate(self, reason: str | None = None) -> Step:
        return self._episode([ExecutionTerminated(timestamp=self._now, reason=reason)])

    def advance(self, delta: timedelta) -> Step:
        """Move virtual time on; every timer due by then fires, in due order, one episode."""
        self._now += delta.total_seconds()
        due = sorted((p for p in self._pending if p.kind == "timer" and p.fire_at <= self._now),
                     key=lambda p: (p.fire_at, p.task_id))
        for timer in due:
            self._pending.remove(timer)
        events = [TimerFired(timestamp=t.fire_at, timer_id=t.task_id, fire_at=t.fire_at)
                  for t in due]
        return self._episode(events)

    def advance_to_next_timer(self) -> Step:
        timers = [p.fire_at for p in self._pending if p.kind == "timer"]
        if not timers:
            raise InvalidInputError("No timer is pending.")
        return self.advance(timedelta(seconds=max(0.0, min(timers) - self._now)))

    # -- reading ----------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    @property
    def status(self) -> Status:
        return self.last.status if self.last is not None else Status.Pending

    @property
    def output(self) -> Any:
        return self.last.output if self.last is not None else None

    @property
    def pending(self) -> list[Call]:
        """Everything still waiting for an answer (timers show as ``Call("timer", due)``)."""
        return [Call("timer", datetime.fromtimestamp(p.fire_at, UTC)) if p.kind == "timer"
                else Call(p.name, p.input) for p in self._pending]

    # -- engine -----------------------------------------------------------------------------------

    def _take(self, name: str) -> _Pending:
        for pending in self._pending:
            if pending.kind not in ("timer", "lock") and (
                    pending.name.casefold() == name.casefold()):
                self._pending.remove(pending)
                return pending
        waiting = ", ".join(p.name for p in self._pending if p.kind != "timer") or "nothing"
        raise InvalidInputError(f"Nothing named {name!r} is pending (pending: {waiting}).")

    def _episode(self, events: list[HistoryEvent]) -> Step:
        if self._runtime.is_done:
            raise InvalidInputError(f"The orchestration already ended ({self.status.value}).")
        before = list(self.history)
        decision = self._runtime.run_episode(events, self._now)
        self.history.extend(decision.history)
        if self._check_replay:
            self._compare_with_cold_replay(before, events, decision)
        step = self._step_from(decision)
        self.last = step
        return step

    def _compare_with_cold_replay(self, before: list[HistoryEvent],
                                  events: list[HistoryEvent], decision: Decision) -> None:
        cold = OrchestrationRuntime(self._fn)
        cold.replay(before)
        again = cold.run_episode(events, self._now)
        if (again.status, again.output, _describe(again)) != (
                decision.status, decision.output, _describe(decision)):
            raise AssertionError(
                "The orchestrator decides differently when replayed from history: it is not "
                f"deterministic.\n  live:   {decision.status.value} {_describe(decision)}"
                f"\n  replay: {again.status.value} {_describe(again)}"
            )

    def _step_from(self, decision: Decision) -> Step:
        step = Step(status=decision.status,
                    output=serialization.loads(decision.output) if decision.output else None,
                    failure=decision.failure,
                    custom_status=(serialization.loads(decision.custom_status)
                                   if decision.custom_status is not None else None))
        for action in decision.actions:
            if isinstance(action, ScheduleActivity):
                value = serialization.loads(action.input)
                self._pending.append(_Pending("activity", action.task_id, action.name, value))
                step.activities.append(Call(action.name, value))
            elif isinstance(action, StartSubOrchestration):
                value = serialization.loads(action.input)
                self._pending.append(_Pending("sub", action.task_id, action.name, value))
                step.sub_orchestrations.append(Call(action.name, value))
            elif isinstance(action, ScheduleTimer):
                self._pending.append(_Pending("timer", action.timer_id, "timer", None,
                                              fire_at=action.fire_at))
                step.timers.append(datetime.fromtimestamp(action.fire_at, UTC))
            elif isinstance(action, SendEvent) and action.name == "op":
                request = EntityRequest.from_json(action.input)
                if request.is_lock:
                    self._pending.append(_Pending("lock", action.task_id or -1, "lock",
                                                  request.lockset, request_id=request.id))
                    continue
                value = serialization.loads(request.input) if request.input else None
                label = f"{action.instance_id}.{request.operation}"
                if not request.signal:
                    self._pending.append(_Pending("entity", action.task_id or -1, label, value,
                                                  request_id=request.id))
                step.entity_calls.append(Call(label, value))
        return step


def _describe(decision: Decision) -> str:
    parts = []
    for action in decision.actions:
        data = getattr(action, "name", type(action).__name__)
        parts.append(f"{type(action).__name__}({data})")
    return json.dumps(parts)
