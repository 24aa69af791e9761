"""Rewind: turn a failed execution's history back into a running one (pure, no I/O).

A rewind keeps everything the orchestration completed and runs again only what failed it:

- the task and sub-orchestration failures recorded after the last work the orchestration
  scheduled are removed, and so is the ``ExecutionCompleted``; their ``TaskScheduled`` /
  ``SubOrchestrationInstanceCreated`` events stay, so a replay finds the same calls waiting
  for an answer;
- those activities are scheduled again, and those sub-orchestrations rewound (recursively) or
  started again;
- so is the work that was still open when the orchestration failed: activities, children and
  timers whose answer came after the failure was dropped (a finished instance takes no
  messages), so it would otherwise never come.

A failure followed by new work stays: the code saw it and went on (it caught it, or a retry
policy waited and tried again), so replay must still see it. If the orchestrator itself raised
(no such failure), the rewind simply runs it again from history, which helps once the code or
the data it depends on is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from durable.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionRewound,
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
from durable.status import OrchestrationRuntimeStatus as Status

_SCHEDULING = (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent)


@dataclass(slots=True)
class RewindPlan:
    """The rewound history and the work to do again."""

    history: list[HistoryEvent]
    activities: list[TaskScheduled] = field(default_factory=list)
    sub_orchestrations: list[SubOrchestrationInstanceCreated] = field(default_factory=list)
    timers: list[TimerCreated] = field(default_factory=list)


def is_failed(history: list[HistoryEvent]) -> bool:
    return bool(history) and isinstance(history[-1], ExecutionCompleted) and (
        history[-1].status == Status.Failed.value
    )


def plan_rewind(history: list[HistoryEvent], rewound: ExecutionRewound) -> RewindPlan | None:
    """The plan for rewinding ``history`` (None if it does not end in a failure)."""
    if not is_failed(history):
        return None
    last_work = max(
        (index for index, event in enumerate(history) if isinstance(event, _SCHEDULING)),
        default=0,
    )
    scheduled = {e.event_id: e for e in history if isinstance(e, TaskScheduled)}
    children = {e.event_id: e for e in history if isinstance(e, SubOrchestrationInstanceCreated)}
    timers = {e.event_id: e for e in history if isinstance(e, TimerCreated)}
    answered: set[int] = set()
    plan = RewindPlan(history=[])
    for index, event in enumerate(history[:-1]):  # the ExecutionCompleted goes
        if isinstance(event, TaskFailed | SubOrchestrationInstanceFailed) and index > last_work:
            continue  # what failed the orchestration: it runs again
        if isinstance(event, TaskCompleted | TaskFailed | SubOrchestrationInstanceCompleted
                      | SubOrchestrationInstanceFailed):
            answered.add(event.task_scheduled_id)
        elif isinstance(event, TimerFired):
            answered.add(event.timer_id)
        plan.history.append(event)
    plan.history.append(rewound)
    plan.activities = [e for i, e in scheduled.items() if i not in answered]
    plan.sub_orchestrations = [e for i, e in children.items() if i not in answered]
    plan.timers = [e for i, e in timers.items() if i not in answered]
    return plan
