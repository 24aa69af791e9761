"""An instance's history as timeline rows (a Gantt chart): pure, no I/O, no HTML.

Each activity, timer and sub-orchestration becomes a bar from its scheduling to its result (or
to ``now`` while it is still open); external events, suspensions and the like become points.
The first row is the orchestration itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable.history import (
    ContinueAsNew,
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)


@dataclass(slots=True)
class Row:
    kind: str  # orchestration | activity | timer | sub-orchestration | event | marker
    label: str
    start: float
    end: float | None  # None: still open (drawn to "now")
    outcome: str  # completed | failed | running | point
    detail: str = ""
    link: str | None = None  # a sub-orchestration's instance ID

    @property
    def is_point(self) -> bool:
        return self.outcome == "point"


@dataclass(slots=True)
class Timeline:
    rows: list[Row]
    start: float
    end: float

    @property
    def span(self) -> float:
        return max(self.end - self.start, 1e-6)

    def position(self, row: Row) -> tuple[float, float]:
        """Left offset and width of ``row`` in percent of the chart."""
        left = (row.start - self.start) / self.span * 100
        end = row.end if row.end is not None else self.end
        width = max((end - row.start) / self.span * 100, 0.0)
        return max(0.0, min(left, 100.0)), min(width, 100.0 - max(0.0, min(left, 100.0)))


def build_timeline(events: list[HistoryEvent], now: float) -> Timeline:
    rows: list[Row] = []
    open_rows: dict[int, Row] = {}
    orchestration: Row | None = None
    for event in events:
        if isinstance(event, ExecutionStarted):
            orchestration = Row("orchestration", event.name, event.timestamp, None, "running")
            rows.append(orchestration)
        elif isinstance(event, TaskScheduled):
            row = Row("activity", event.name, event.timestamp, None, "running")
            open_rows[event.event_id] = row
            rows.append(row)
        elif isinstance(event, TimerCreated):
            row = Row("timer", "timer", event.timestamp, None, "running",
                      detail=f"fires at {event.fire_at:.3f}")
            open_rows[event.event_id] = row
            rows.append(row)
        elif isinstance(event, SubOrchestrationInstanceCreated):
            row = Row("sub-orchestration", event.name, event.timestamp, None, "running",
                      link=event.instance_id)
            open_rows[event.event_id] = row
            rows.append(row)
        elif isinstance(event, (TaskCompleted, SubOrchestrationInstanceCompleted)):
            _close(open_rows, event.task_scheduled_id, event.timestamp, "completed")
        elif isinstance(event, (TaskFailed, SubOrchestrationInstanceFailed)):
            _close(open_rows, event.task_scheduled_id, event.timestamp, "failed",
                   f"{event.failure.error_type}: {event.failure.message}")
        elif isinstance(event, TimerFired):
            _close(open_rows, event.timer_id, event.timestamp, "completed")
        elif isinstance(event, EventRaised):
            rows.append(Row("event", event.name, event.timestamp, event.timestamp, "point"))
        elif isinstance(event, (ExecutionSuspended, ExecutionResumed, ExecutionTerminated)):
            label = type(event).__name__.removeprefix("Execution").lower()
            rows.append(Row("marker", label, event.timestamp, event.timestamp, "point",
                            detail=event.reason or ""))
        elif isinstance(event, (ExecutionCompleted, ContinueAsNew)) and orchestration:
            orchestration.end = event.timestamp
            status = event.status if isinstance(event, ExecutionCompleted) else "ContinuedAsNew"
            orchestration.outcome = "failed" if status == "Failed" else "completed"
            orchestration.detail = status
    start = min((row.start for row in rows), default=now)
    ends = [row.end for row in rows if row.end is not None]
    still_open = any(row.end is None for row in rows)
    end = max([*ends, now] if still_open else ends or [start])
    return Timeline(rows, start, end)


def _close(open_rows: dict[int, Row], task_id: int, at: float, outcome: str,
           detail: str = "") -> None:
    row = open_rows.pop(task_id, None)
    if row is None:
        return
    row.end = at
    row.outcome = outcome
    if detail:
        row.detail = detail
