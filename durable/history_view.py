"""History as the Durable Functions HTTP API shows it (``historyEvents``).

Like Azure Storage's status query, the view is condensed: a task's scheduling event is folded
into its completion (``FunctionName``, ``ScheduledTime``), and the episode markers are left out.
Keys are PascalCase and ``EventType`` is the event type's name. Inputs and results appear only
with ``show_history_output``.
"""

from __future__ import annotations

from typing import Any

from durable import serialization
from durable.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionRewound,
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
    to_datetime,
)

_SCHEDULING = (TaskScheduled, SubOrchestrationInstanceCreated, TimerCreated)
_SKIPPED = (OrchestratorStarted, OrchestratorCompleted, *_SCHEDULING)


def _iso(timestamp: float) -> str:
    return to_datetime(timestamp).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _value(text: str | None) -> Any:
    try:
        return serialization.loads(text)
    except ValueError:
        return text


def render_history(events: list[HistoryEvent], show_output: bool = False) -> list[dict[str, Any]]:
    scheduled: dict[int, HistoryEvent] = {}
    for event in events:
        if isinstance(event, _SCHEDULING):
            scheduled[event.event_id] = event
    out: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, _SKIPPED):
            continue
        entry: dict[str, Any] = {
            "EventType": event.event_type.name,
            "Timestamp": _iso(event.timestamp),
        }
        if isinstance(event, ExecutionStarted):
            entry["FunctionName"] = event.name
            if show_output:
                entry["Input"] = _value(event.input)
        elif isinstance(event, ExecutionCompleted):
            entry["OrchestrationStatus"] = event.status
            if show_output:
                entry["Result"] = _value(event.result)
            if event.failure is not None:
                entry["FailureDetails"] = event.failure.to_json()
        elif isinstance(event, (TaskCompleted, SubOrchestrationInstanceCompleted)):
            _fold(entry, scheduled.get(event.task_scheduled_id))
            if show_output:
                entry["Result"] = _value(event.result)
        elif isinstance(event, (TaskFailed, SubOrchestrationInstanceFailed)):
            _fold(entry, scheduled.get(event.task_scheduled_id))
            entry["Reason"] = event.failure.message
            entry["Details"] = event.failure.details
            entry["FailureDetails"] = event.failure.to_json()
        elif isinstance(event, TimerFired):
            entry["FireAt"] = _iso(event.fire_at)
            _fold(entry, scheduled.get(event.timer_id))
        elif isinstance(event, EventRaised):
            entry["Name"] = event.name
            if show_output:
                entry["Input"] = _value(event.input)
        elif isinstance(event, (ExecutionTerminated, ExecutionSuspended, ExecutionResumed,
                                ExecutionRewound)):
            entry["Reason"] = event.reason
        out.append(entry)
    return out


def _fold(entry: dict[str, Any], scheduled: HistoryEvent | None) -> None:
    if scheduled is None:
        return
    name = getattr(scheduled, "name", None)
    if name is not None:
        entry["FunctionName"] = name
    instance_id = getattr(scheduled, "instance_id", None)
    if isinstance(scheduled, SubOrchestrationInstanceCreated) and instance_id:
        entry["InstanceId"] = instance_id
    entry["ScheduledTime"] = _iso(scheduled.timestamp)
