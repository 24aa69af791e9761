"""A deterministic stand-in for the worker around :class:`SdkOrchestrationRuntime`.

It keeps the instance's history as the worker would commit it, runs activities (plain Python
functions) when asked, fires timers, delivers events, and after every episode checks that a
cold replay of the stored history decides exactly what the live runtime decided. The live
runtime keeps the SDK's execution alive between episodes (durable/azure/session.py) when the
orchestrator is an ``Orchestrator.create`` handle; the cold one is always the protocol's full
replay, so every test is also a differential test of the two.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from durable.azure.runtime import SdkOrchestrationRuntime
from durable.azure.session import session_function
from durable.errors import FailureDetails
from durable.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)

T0 = 1_700_000_000.0


def sdk_input(value: Any) -> str:
    """A start input as the Azure Python client stores it (a JSON string of JSON text)."""
    return json.dumps(json.dumps(value))


class Driver:
    def __init__(
        self,
        orchestrator: Callable[..., Any],
        *,
        name: str = "orch",
        input_text: str | None = None,
        activities: dict[str, Callable[[Any], Any]] | None = None,
        instance_id: str = "inst",
        live_session: bool = True,
        compare_cold: bool = True,
        **runtime_options: Any,
    ) -> None:
        self.handle = orchestrator
        self.compare_cold = compare_cold
        self.options = runtime_options
        self.runtime = self._fresh(session_function(orchestrator) if live_session else None)
        self.activities = activities or {}
        self.now = T0
        self.history: list[HistoryEvent] = []
        self.decisions: list[Decision] = []
        self.pending: dict[int, Any] = {}
        self.started = ExecutionStarted(timestamp=T0, name=name, instance_id=instance_id,
                                        execution_id="exec", input=input_text)

    def _fresh(self, session: Any = None) -> SdkOrchestrationRuntime:
        return SdkOrchestrationRuntime(lambda payload: self.handle(payload), session=session,
                                       **self.options)

    def episode(self, events: list[HistoryEvent]) -> Decision:
        self.now += 1.0
        replica = self._fresh()
        replica.replay(list(self.history))
        decision = self.runtime.run_episode(list(events), self.now)
        cold = replica.run_episode(list(events), self.now)
        if self.compare_cold:
            assert _shape(cold) == _shape(decision), "cold replay decided differently"
        self.history.extend(decision.history)
        self.decisions.append(decision)
        for action in decision.actions:
            self.pending[_action_id(action)] = action
        return decision

    def start(self) -> Decision:
        return self.episode([self.started])

    def complete(self, task_id: int, result: Any) -> Decision:
        self.pending.pop(task_id)
        return self.episode([TaskCompleted(timestamp=self.now, task_scheduled_id=task_id,
                                           result=json.dumps(result))])

    def fail(self, task_id: int, message: str = "boom") -> Decision:
        self.pending.pop(task_id)
        failure = FailureDetails("ValueError", message, "Traceback: ...")
        return self.episode([TaskFailed(timestamp=self.now, task_scheduled_id=task_id,
                                        failure=failure)])

    def fire(self, timer_id: int) -> Decision:
        action = self.pending.pop(timer_id)
        assert isinstance(action, ScheduleTimer)
        return self.episode([TimerFired(timestamp=self.now, timer_id=timer_id,
                                        fire_at=action.fire_at)])

    def child_done(self, task_id: int, result: Any) -> Decision:
        self.pending.pop(task_id)
        return self.episode([SubOrchestrationInstanceCompleted(
            timestamp=self.now, task_scheduled_id=task_id, result=json.dumps(result))])

    def raise_event(self, name: str, stored_input: str) -> Decision:
        return self.episode([EventRaised(timestamp=self.now, name=name, input=stored_input)])

    def run_activities(self) -> Decision | None:
        """Run every pending activity (in ID order), one episode per result."""
        decision = None
        while True:
            ready = sorted(task_id for task_id, action in self.pending.items()
                           if isinstance(action, ScheduleActivity))
            if not ready:
                return decision
            task_id = ready[0]
            action = self.pending[task_id]
            value = self.activities[action.name](json.loads(action.input or "null"))
            decision = self.complete(task_id, value)


def _action_id(action: Any) -> int:
    if isinstance(action, ScheduleTimer):
        return action.timer_id
    assert isinstance(action, ScheduleActivity | StartSubOrchestration | SendEvent)
    assert action.task_id is not None
    return action.task_id


def _shape(decision: Decision) -> tuple[Any, ...]:
    return (decision.status, decision.actions, decision.output, decision.custom_status,
            decision.continue_as_new, [type(e).__name__ for e in decision.history],
            decision.failure.message if decision.failure else None)
