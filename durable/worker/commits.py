"""Turning an episode's decision into the storage commit that records it.

Pure translation, no I/O: activities become task rows (claimed by this worker or left for
anyone), timers become delayed messages to the instance itself, sub-orchestrations become new
instances, a finished child reports to its parent, and continue-as-new starts a new execution.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from durable.errors import FailureDetails
from durable.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TimerFired,
)
from durable.ids import new_execution_id
from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage.base import (
    ActivityResult,
    ActivityWorkItem,
    Backend,
    ContinueAsNewPlan,
    Message,
    NewInstance,
    NewTask,
    OrchestrationCommit,
)
from durable.worker.cache import OwnedInstance
from durable.worker.options import MAX_RETRY_DELAY

log = logging.getLogger("durable.worker")


def commit_for(
    owned: OwnedInstance,
    decision: Decision,
    *,
    lease_owner: str,
    consumed: list[int],
    delivered: list[ActivityResult],
    now: float,
    claim: Callable[[], bool],
) -> OrchestrationCommit:
    """The commit for ``decision``; ``claim()`` says whether to keep each new activity."""
    instance_id = owned.instance_id
    execution_id = owned.execution_id
    commit = OrchestrationCommit(
        instance_id=instance_id,
        execution_id=execution_id,
        revision=owned.revision,
        lease_owner=lease_owner,
        history=decision.history,
        status=decision.status,
        consumed_messages=consumed,
        delivered_tasks=[r.task.task_id for r in delivered
                         if r.task.execution_id == execution_id],
        output=decision.output,
        custom_status=decision.custom_status,
        failure=decision.failure,
        release=decision.status.is_terminal,
        entity_state=decision.entity_state,
    )
    started = owned.runtime.started
    trace = started.trace_context if started is not None else None  # children join the trace
    for action in decision.actions:
        if isinstance(action, ScheduleActivity):
            commit.new_tasks.append(
                NewTask(action.task_id, action.name, action.input, claimed=claim())
            )
        elif isinstance(action, ScheduleTimer):
            fired = TimerFired(timestamp=action.fire_at, timer_id=action.timer_id,
                               fire_at=action.fire_at)
            commit.messages.append(
                Message(instance_id, fired, execution_id, visible_at=action.fire_at)
            )
        elif isinstance(action, SendEvent):
            sent = EventRaised(timestamp=now, name=action.name, input=action.input)
            commit.messages.append(Message(action.instance_id, sent, action.execution_id,
                                           visible_at=action.visible_at))
        elif isinstance(action, StartSubOrchestration):
            commit.new_instances.append(
                NewInstance(
                    instance_id=action.instance_id,
                    name=action.name,
                    execution_id=new_execution_id(),
                    input=action.input,
                    created_at=now,
                    version=action.version,
                    parent_instance_id=instance_id,
                    parent_execution_id=execution_id,
                    parent_task_id=action.task_id,
                    trace_context=trace,
                )
            )
    if started is not None and decision.status.is_terminal and started.parent_instance_id:
        commit.messages.append(report_to_parent(started, decision, now))
    if started is not None and decision.continue_as_new is not None:
        request = decision.continue_as_new
        new_execution = new_execution_id()
        commit.continue_as_new = ContinueAsNewPlan(new_execution, request.input)
        restart = ExecutionStarted(
            timestamp=now,
            name=started.name,
            instance_id=instance_id,
            execution_id=new_execution,
            input=request.input,
            version=started.version,
            parent_instance_id=started.parent_instance_id,
            parent_execution_id=started.parent_execution_id,
            parent_task_id=started.parent_task_id,
            trace_context=trace,
        )
        commit.messages.append(Message(instance_id, restart, new_execution))
        for carried in request.carried_events:
            copy = EventRaised(timestamp=carried.timestamp, name=carried.name,
                               input=carried.input)
            commit.messages.append(Message(instance_id, copy, None))
    return commit


def report_to_parent(started: ExecutionStarted, decision: Decision, now: float) -> Message:
    """The message telling a sub-orchestration's parent how it ended."""
    parent_task = started.parent_task_id if started.parent_task_id is not None else -1
    event: HistoryEvent
    if decision.status is Status.Completed:
        event = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=parent_task, result=decision.output
        )
    else:
        failure = decision.failure or FailureDetails(
            "Terminated",
            f"Sub-orchestration '{started.instance_id}' was terminated: {decision.output}",
        )
        event = SubOrchestrationInstanceFailed(
            timestamp=now, task_scheduled_id=parent_task, failure=failure
        )
    return Message(started.parent_instance_id or "", event, started.parent_execution_id)


async def give_back_claims(
    backend: Backend,
    owner: str,
    commits: list[OrchestrationCommit],
    first_delay: float,
    stopping: Callable[[], bool],
) -> None:
    """After a commit failed with an error, give back the activities it claimed.

    The error may have hidden a COMMIT that did land (the connection died while the server
    committed). Its claimed tasks would then be leased to this worker, renewed by it, and never
    run. Abandoning them is harmless if the commit did not land (no rows). The caller keeps the
    episodes busy until this is done, so a re-run cannot claim them first.
    """
    tasks = [
        ActivityWorkItem(c.instance_id, c.execution_id, t.task_id, t.name, t.input)
        for c in commits for t in c.new_tasks if t.claimed
    ]
    delay = first_delay
    while tasks:
        try:
            await backend.abandon_activities(owner, tasks)
            return
        except Exception as exc:
            if stopping():
                return
            log.warning("giving back %d claimed activities failed: %s; retrying in %.1fs",
                        len(tasks), exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
