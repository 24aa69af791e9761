"""The worker's half of rewind: the commit that puts a failed instance back to work.

The pure plan (:mod:`durable.orchestration.rewind`) says which history to keep and which work
to do again; this module turns that into the rewind episode's commit: the whole new history
(replacing the stored one), the activities to run again, the timers to set again, and the
children to rewind or restart.
"""

from __future__ import annotations

from collections.abc import Callable

from durable.history import ExecutionRewound, TimerFired
from durable.ids import new_execution_id
from durable.orchestration.rewind import RewindPlan, plan_rewind
from durable.storage.base import (
    InboxEntry,
    Message,
    NewInstance,
    NewTask,
    OrchestrationCommit,
    OrchestrationWorkItem,
)


def rewind_of(item: OrchestrationWorkItem) -> tuple[InboxEntry, RewindPlan] | None:
    """The rewind request in ``item`` and its plan, if the instance's history ended failed."""
    if item.history is None:
        return None
    for entry in item.messages:
        if isinstance(entry.event, ExecutionRewound):
            plan = plan_rewind(item.history, entry.event)
            return (entry, plan) if plan is not None else None
    return None


def apply_rewind(commit: OrchestrationCommit, plan: RewindPlan, now: float,
                 claim: Callable[[], bool]) -> None:
    """Make ``commit`` (the rewind episode's) replace the history and redo the work."""
    commit.replace_history = True
    commit.history = [*plan.history, *commit.history]
    commit.new_tasks.extend(NewTask(t.event_id, t.name, t.input, claimed=claim())
                            for t in plan.activities)
    for timer in plan.timers:
        fired = TimerFired(timestamp=timer.fire_at, timer_id=timer.event_id,
                           fire_at=timer.fire_at)
        commit.messages.append(Message(commit.instance_id, fired, commit.execution_id,
                                       visible_at=max(timer.fire_at, now)))
    commit.rewind_children.extend(
        NewInstance(instance_id=child.instance_id, name=child.name,
                    execution_id=new_execution_id(), input=child.input, created_at=now,
                    parent_instance_id=commit.instance_id,
                    parent_execution_id=commit.execution_id, parent_task_id=child.event_id)
        for child in plan.sub_orchestrations
    )
