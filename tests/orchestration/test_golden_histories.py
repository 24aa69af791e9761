"""Recorded histories replayed against today's code and today's history codec.

A failure here means either stored histories no longer decode (a storage format break) or an
orchestrator changed what it schedules (which would break its in-flight instances).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from durable.history import TaskCompleted, event_from_dict
from durable.orchestration.actions import ScheduleActivity
from durable.orchestration.context import DurableOrchestrationContext
from durable.orchestration.runtime import execute
from durable.status import OrchestrationRuntimeStatus as Status
from tests.orchestration.golden_orchestrators import approval_flow

HISTORIES = Path(__file__).parent / "histories"


def load(name: str) -> list[Any]:
    return [event_from_dict(item) for item in json.loads((HISTORIES / name).read_text())]


def test_the_recorded_approval_flow_replays_and_finishes() -> None:
    history = load("approval_flow.json")
    result = TaskCompleted(timestamp=1_750_000_003.0, task_scheduled_id=2, result="true")
    decision = execute(approval_flow, history, [result], 1_750_000_003.5)
    assert decision.status is Status.Completed
    assert json.loads(decision.output or "null") == {"ticket": "ticket-7", "paid": True}


def test_the_recorded_approval_flow_rejects_changed_code() -> None:
    def reordered(context: DurableOrchestrationContext) -> Any:
        # Starts the timer before opening the ticket: task #0 is now a timer.
        deadline = context.create_timer(timedelta(hours=24))
        ticket = yield context.call_activity("open_ticket", context.get_input()["amount"])
        yield context.task_any([deadline, context.wait_for_external_event("Approval")])
        return ticket

    decision = execute(reordered, load("approval_flow.json"), [], 1_750_000_003.5)
    assert decision.status is Status.Failed
    assert decision.failure is not None
    assert "call_activity('open_ticket')" in decision.failure.message
    assert "create_timer" in decision.failure.message


def test_the_recorded_history_resumes_where_it_stopped() -> None:
    decision = execute(approval_flow, load("approval_flow.json"), [], 1_750_000_003.5)
    assert decision.status is Status.Running
    assert decision.actions == []  # 'pay' was already scheduled in history; nothing new
    assert not any(isinstance(a, ScheduleActivity) for a in decision.actions)
