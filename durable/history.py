"""Typed history events, mirroring the Durable Task Framework's event types and fields.

An orchestration's history is the list of these events; replaying it through the orchestrator
function rebuilds the orchestration's state. Events are also the messages that reach an
instance's inbox (ExecutionStarted, TaskCompleted, EventRaised, ExecutionTerminated, ...).

Timestamps are UTC epoch seconds as floats: cheap to store and compare, converted to ``datetime``
only where a person or the orchestrator looks at them. Payloads (``input``, ``result``) are JSON
text, so copying a value from one event to another never re-encodes it.

The storage codec (:func:`encode_events` / :func:`decode_events`) writes one JSON object per event
with a ``type`` tag and camelCase keys, omitting ``None`` fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, ClassVar

from durable.errors import FailureDetails
from durable.serialization import compact_json


class EventType(IntEnum):
    """DTFx ``EventType`` numbers (append-only; the HTTP API shows the names)."""

    ExecutionStarted = 0
    ExecutionCompleted = 1
    ExecutionFailed = 2
    ExecutionTerminated = 3
    TaskScheduled = 4
    TaskCompleted = 5
    TaskFailed = 6
    SubOrchestrationInstanceCreated = 7
    SubOrchestrationInstanceCompleted = 8
    SubOrchestrationInstanceFailed = 9
    TimerCreated = 10
    TimerFired = 11
    OrchestratorStarted = 12
    OrchestratorCompleted = 13
    EventSent = 14
    EventRaised = 15
    ContinueAsNew = 16
    GenericEvent = 17
    HistoryState = 18
    ExecutionSuspended = 19
    ExecutionResumed = 20
    ExecutionRewound = 21


@dataclass(slots=True, kw_only=True)
class HistoryEvent:
    """Base of every event. ``timestamp`` is when the event was recorded (epoch seconds)."""

    event_type: ClassVar[EventType]
    timestamp: float = 0.0


@dataclass(slots=True, kw_only=True)
class ExecutionStarted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ExecutionStarted
    name: str
    instance_id: str
    execution_id: str
    input: str | None = None
    version: str | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    scheduled_start_time: float | None = None
    # W3C traceparent of the span that started this execution (OpenTelemetry; docs/operations.md)
    trace_context: str | None = None


@dataclass(slots=True, kw_only=True)
class ExecutionCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ExecutionCompleted
    status: str
    result: str | None = None
    failure: FailureDetails | None = None


@dataclass(slots=True, kw_only=True)
class ExecutionTerminated(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ExecutionTerminated
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class TaskScheduled(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TaskScheduled
    event_id: int
    name: str
    input: str | None = None


@dataclass(slots=True, kw_only=True)
class TaskCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TaskCompleted
    task_scheduled_id: int
    result: str | None = None


@dataclass(slots=True, kw_only=True)
class TaskFailed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TaskFailed
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(slots=True, kw_only=True)
class SubOrchestrationInstanceCreated(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.SubOrchestrationInstanceCreated
    event_id: int
    name: str
    instance_id: str
    input: str | None = None


@dataclass(slots=True, kw_only=True)
class SubOrchestrationInstanceCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.SubOrchestrationInstanceCompleted
    task_scheduled_id: int
    result: str | None = None


@dataclass(slots=True, kw_only=True)
class SubOrchestrationInstanceFailed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.SubOrchestrationInstanceFailed
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(slots=True, kw_only=True)
class TimerCreated(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TimerCreated
    event_id: int
    fire_at: float


@dataclass(slots=True, kw_only=True)
class TimerFired(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.TimerFired
    timer_id: int
    fire_at: float


@dataclass(slots=True, kw_only=True)
class OrchestratorStarted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.OrchestratorStarted


@dataclass(slots=True, kw_only=True)
class OrchestratorCompleted(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.OrchestratorCompleted


@dataclass(slots=True, kw_only=True)
class EventSent(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EventSent
    event_id: int
    instance_id: str
    name: str
    input: str | None = None


@dataclass(slots=True, kw_only=True)
class EventRaised(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.EventRaised
    name: str
    input: str | None = None


@dataclass(slots=True, kw_only=True)
class ContinueAsNew(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ContinueAsNew
    input: str | None = None


@dataclass(slots=True, kw_only=True)
class ExecutionSuspended(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ExecutionSuspended
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class ExecutionResumed(HistoryEvent):
    event_type: ClassVar[EventType] = EventType.ExecutionResumed
    reason: str | None = None


@dataclass(slots=True, kw_only=True)
class ExecutionRewound(HistoryEvent):
    """A failed instance was rewound: its failed tasks run again (see orchestration/rewind)."""

    event_type: ClassVar[EventType] = EventType.ExecutionRewound
    reason: str | None = None


EVENT_CLASSES: dict[str, type[HistoryEvent]] = {
    cls.__name__: cls
    for cls in (
        ExecutionStarted, ExecutionCompleted, ExecutionTerminated, TaskScheduled, TaskCompleted,
        TaskFailed, SubOrchestrationInstanceCreated, SubOrchestrationInstanceCompleted,
        SubOrchestrationInstanceFailed, TimerCreated, TimerFired, OrchestratorStarted,
        OrchestratorCompleted, EventSent, EventRaised, ContinueAsNew, ExecutionSuspended,
        ExecutionResumed, ExecutionRewound,
    )
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# (attribute, json key, is_failure) per class, computed once.
_CODEC: dict[type[HistoryEvent], tuple[tuple[str, str, bool], ...]] = {
    cls: tuple((f.name, _camel(f.name), f.name == "failure") for f in fields(cls))
    for cls in EVENT_CLASSES.values()
}


def event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    cls = type(event)
    out: dict[str, Any] = {"type": cls.__name__}
    for attr, key, is_failure in _CODEC[cls]:
        value = getattr(event, attr)
        if value is not None:
            out[key] = value.to_json() if is_failure else value
    return out


def event_from_dict(data: dict[str, Any]) -> HistoryEvent:
    cls = EVENT_CLASSES[data["type"]]
    kwargs: dict[str, Any] = {}
    for attr, key, is_failure in _CODEC[cls]:
        if key in data:
            value = data[key]
            kwargs[attr] = FailureDetails.from_json(value) if is_failure else value
    return cls(**kwargs)


def encode_event(event: HistoryEvent) -> str:
    return compact_json(event_to_dict(event))


def decode_event(text: str) -> HistoryEvent:
    return event_from_dict(json.loads(text))


def encode_events(events: list[HistoryEvent]) -> str:
    return compact_json([event_to_dict(e) for e in events])


def decode_events(text: str) -> list[HistoryEvent]:
    return [event_from_dict(d) for d in json.loads(text)]


def to_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def to_timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
