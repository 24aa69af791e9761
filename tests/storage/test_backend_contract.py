"""The storage contract, run against every backend (see the ``backend`` fixture)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest

from durable.errors import (
    FailureDetails,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InvalidInputError,
)
from durable.history import (
    EventRaised,
    ExecutionStarted,
    OrchestratorStarted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskScheduled,
    TimerFired,
)
from durable.status import OrchestrationRuntimeStatus as Status
from durable.status import OverridableStates
from durable.storage.base import (
    EVERY_MESSAGE,
    ActivityResult,
    Backend,
    ContinueAsNewPlan,
    InstanceQuery,
    Message,
    NewInstance,
    NewTask,
    OrchestrationCommit,
    OrchestrationWorkItem,
)

OWNER = "worker-a"
OTHER = "worker-b"


def new_instance(instance_id: str = "", name: str = "orch", data: str | None = '"in"',
                 created_at: float | None = None, **extra: object) -> NewInstance:
    return NewInstance(
        instance_id=instance_id or uuid.uuid4().hex,
        name=name,
        execution_id=uuid.uuid4().hex,
        input=data,
        created_at=created_at if created_at is not None else time.time(),
        **extra,  # type: ignore[arg-type]
    )


async def lease_one(backend: Backend, instance_id: str, owner: str = OWNER,
                    lease_seconds: float = 30.0) -> OrchestrationWorkItem:
    items = await backend.lease_orchestrations(
        owner, limit=10, instance_ids=[instance_id], lease_seconds=lease_seconds
    )
    assert len(items) == 1, items
    return items[0]


def episode_commit(item: OrchestrationWorkItem, owner: str = OWNER, **changes: object
                   ) -> OrchestrationCommit:
    fields: dict[str, object] = {
        "instance_id": item.instance_id,
        "execution_id": item.execution_id,
        "revision": item.revision,
        "lease_owner": owner,
        "history": [OrchestratorStarted(timestamp=time.time())]
        + [m.event for m in item.messages],
        "status": Status.Running,
        "consumed_messages": [m.message_id for m in item.messages],
    }
    fields.update(changes)
    return OrchestrationCommit(**fields)  # type: ignore[arg-type]


async def start_running(backend: Backend, instance_id: str = "",
                        tasks: list[NewTask] | None = None) -> OrchestrationWorkItem:
    """Create an instance, run its first episode (optionally scheduling tasks), return the item
    as it was leased (its revision is now stale)."""
    new = new_instance(instance_id)
    await backend.create_instance(new)
    item = await lease_one(backend, new.instance_id)
    [outcome] = await backend.commit_orchestrations(
        [episode_commit(item, new_tasks=tasks or [])]
    )
    assert outcome.ok
    return item


# -- creating instances ---------------------------------------------------------------------


async def test_create_then_read(backend: Backend) -> None:
    new = new_instance("order-1", data='{"n":1}')
    assert await backend.create_instance(new) is None
    record = await backend.get_instance("order-1")
    assert record is not None
    assert (record.name, record.status, record.input) == ("orch", Status.Pending, '{"n":1}')
    assert record.execution_id == new.execution_id
    assert record.created_at == pytest.approx(new.created_at)
    assert await backend.get_instance("missing") is None
    assert await backend.get_history("order-1") == []


async def test_create_existing_pending_is_refused_and_changes_nothing(backend: Backend) -> None:
    first = new_instance("dup", data='"first"')
    await backend.create_instance(first)
    with pytest.raises(InstanceAlreadyExistsError) as raised:
        await backend.create_instance(new_instance("dup", data='"second"'))
    assert raised.value.status == "Pending"
    record = await backend.get_instance("dup")
    assert record is not None and record.input == '"first"'
    item = await lease_one(backend, "dup")
    assert [type(m.event) for m in item.messages] == [ExecutionStarted]


async def test_create_replaces_a_completed_instance(backend: Backend) -> None:
    item = await start_running(backend, "again")
    record = await backend.get_instance("again")
    assert record is not None
    [done] = await backend.commit_orchestrations([
        OrchestrationCommit("again", item.execution_id, record.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time())], Status.Completed,
                            output='"out"', release=True)
    ])
    assert done.ok
    replacement = new_instance("again", data='"new"')
    await backend.create_instance(replacement)
    record = await backend.get_instance("again")
    assert record is not None
    assert (record.status, record.input, record.output) == (Status.Pending, '"new"', None)
    assert record.execution_id == replacement.execution_id
    assert await backend.get_history("again") == []


async def test_any_state_policy_replaces_a_running_instance(backend: Backend) -> None:
    await start_running(backend, "swap")
    with pytest.raises(InstanceAlreadyExistsError):
        await backend.create_instance(new_instance("swap"))
    await backend.create_instance(new_instance("swap", data='"x"'), OverridableStates.AnyState)
    record = await backend.get_instance("swap")
    assert record is not None and record.status is Status.Pending and record.input == '"x"'


async def test_concurrent_creates_of_one_id_have_one_winner(backend: Backend) -> None:
    results = await asyncio.gather(
        *(backend.create_instance(new_instance("single", data=str(i))) for i in range(40)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, InstanceAlreadyExistsError)]
    assert (len(winners), len(losers)) == (1, 39)
    item = await lease_one(backend, "single")
    assert len(item.messages) == 1


async def test_create_with_lease_returns_the_work_item(backend: Backend) -> None:
    new = new_instance("mine")
    item = await backend.create_instance(new, lease_owner=OWNER)
    assert item is not None and item.history == []
    assert [type(m.event) for m in item.messages] == [ExecutionStarted]
    assert await backend.lease_orchestrations(OTHER, limit=10) == []
    [outcome] = await backend.commit_orchestrations([episode_commit(item)])
    assert outcome.ok


# -- messages -------------------------------------------------------------------------------


async def test_send_message_checks_the_instance(backend: Backend) -> None:
    event = EventRaised(timestamp=time.time(), name="go", input="1")
    with pytest.raises(InstanceNotFoundError):
        await backend.send_message(Message("nobody", event))
    item = await start_running(backend, "finishing")
    record = await backend.get_instance("finishing")
    assert record is not None
    await backend.commit_orchestrations([
        OrchestrationCommit("finishing", item.execution_id, record.revision, OWNER, [],
                            Status.Completed, release=True)
    ])
    with pytest.raises(InstanceNotRunningError):
        await backend.send_message(Message("finishing", event))


async def test_messages_are_delivered_in_order(backend: Backend) -> None:
    await start_running(backend, "fifo")
    for index in range(5):
        await backend.send_message(
            Message("fifo", EventRaised(timestamp=time.time(), name="e", input=str(index)))
        )
    item = await lease_one(backend, "fifo")
    assert [m.event.input for m in item.messages] == ["0", "1", "2", "3", "4"]  # type: ignore
    assert item.history is not None and len(item.history) == 2


async def test_timer_messages_stay_invisible_until_due(backend: Backend) -> None:
    item = await start_running(backend, "sleeper")
    record = await backend.get_instance("sleeper")
    assert record is not None
    fire_at = time.time() + 0.5
    await backend.commit_orchestrations([
        OrchestrationCommit(
            "sleeper", item.execution_id, record.revision, OWNER, [], Status.Running,
            messages=[Message("sleeper", TimerFired(timer_id=0, fire_at=fire_at),
                              item.execution_id, visible_at=fire_at)],
            release=True,
        )
    ])
    assert await backend.lease_orchestrations(OWNER, limit=10) == []
    wakeup = await backend.next_wakeup()
    assert wakeup == pytest.approx(fire_at)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        items = await backend.lease_orchestrations(OWNER, limit=10)
        if items:
            assert isinstance(items[0].messages[0].event, TimerFired)
            return
        await asyncio.sleep(0.05)
    pytest.fail("the timer never became visible")


# -- leases and fencing ---------------------------------------------------------------------


async def test_a_leased_instance_is_not_leased_by_others_until_it_expires(
    backend: Backend,
) -> None:
    await backend.create_instance(new_instance("contested"))
    first = await backend.lease_orchestrations(OWNER, limit=10, lease_seconds=0.3)
    assert [i.instance_id for i in first] == ["contested"]
    assert await backend.lease_orchestrations(OTHER, limit=10, lease_seconds=0.3) == []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        taken = await backend.lease_orchestrations(OTHER, limit=10, lease_seconds=30)
        if taken:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the expired lease was never taken over")
    # The first owner's commit is now fenced off and writes nothing.
    [stale] = await backend.commit_orchestrations([episode_commit(first[0])])
    assert not stale.ok
    assert await backend.get_history("contested") == []
    [fresh] = await backend.commit_orchestrations([episode_commit(taken[0], OTHER)])
    assert fresh.ok


async def test_commit_with_a_stale_revision_is_refused(backend: Backend) -> None:
    item = await start_running(backend, "stale")
    before = await backend.get_history("stale")
    [outcome] = await backend.commit_orchestrations([episode_commit(item)])
    assert not outcome.ok
    assert await backend.get_history("stale") == before


async def test_one_failed_fence_does_not_block_the_rest_of_a_batch(backend: Backend) -> None:
    await backend.create_instance(new_instance("good"))
    await backend.create_instance(new_instance("bad"))
    good = await lease_one(backend, "good")
    bad = await lease_one(backend, "bad")
    outcomes = await backend.commit_orchestrations(
        [episode_commit(bad, OTHER), episode_commit(good)]
    )
    assert [o.ok for o in outcomes] == [False, True]
    assert outcomes[1].revision == good.revision + 1
    assert len(await backend.get_history("good")) == 2
    assert await backend.get_history("bad") == []


async def test_renew_and_release_all(backend: Backend) -> None:
    await backend.create_instance(new_instance("held"))
    await lease_one(backend, "held", lease_seconds=0.2)
    await backend.renew_leases(OWNER, 30, instance_ids=["held"], tasks=[])
    await asyncio.sleep(0.3)
    assert await backend.lease_orchestrations(OTHER, limit=10) == []
    await backend.release_all(OWNER)
    assert [i.instance_id for i in await backend.lease_orchestrations(OTHER, limit=10)] == [
        "held"
    ]


async def test_renewal_extends_only_the_leases_it_names(backend: Backend) -> None:
    """A lease the worker does not name (its grant's reply was lost, so it does not know it
    holds it) lapses; so does one named but held by someone else."""
    for instance_id in ("known", "unknown", "theirs"):
        await backend.create_instance(new_instance(instance_id))
    await backend.lease_orchestrations(OWNER, limit=10, instance_ids=["known", "unknown"],
                                       lease_seconds=0.3)
    await lease_one(backend, "theirs", owner=OTHER, lease_seconds=0.3)
    await start_running(backend, "fan", tasks=[NewTask(0, "act", None, claimed=False),
                                               NewTask(1, "act", None, claimed=False)])
    first, second = await backend.lease_activities(OWNER, limit=10, lease_seconds=0.3)
    await backend.renew_leases(OWNER, 30, instance_ids=["known", "theirs", "missing"],
                               tasks=[first.key])
    taken: set[str] = set()
    tasks: list[int] = []
    deadline = time.monotonic() + 10
    while (len(taken) < 2 or not tasks) and time.monotonic() < deadline:
        taken.update(i.instance_id for i in await backend.lease_orchestrations("c", limit=10))
        tasks.extend(t.task_id for t in await backend.lease_activities("c", limit=10))
        await asyncio.sleep(0.05)
    assert taken == {"unknown", "theirs"}
    assert tasks == [second.task_id]
    # The named ones are still OWNER's, well within their renewed lease.
    assert await backend.lease_orchestrations("d", limit=10, instance_ids=["known"]) == []
    assert await backend.lease_activities("d", limit=10) == []


async def test_history_is_returned_only_when_the_worker_lacks_it(backend: Backend) -> None:
    item = await start_running(backend, "cached")
    await backend.send_message(Message("cached", EventRaised(name="x", timestamp=time.time())))
    record = await backend.get_instance("cached")
    assert record is not None
    [hit] = await backend.lease_orchestrations(
        OWNER, limit=1, instance_ids=["cached"], cached_revisions={"cached": record.revision}
    )
    assert hit.history is None
    [miss] = await backend.lease_orchestrations(
        OWNER, limit=1, instance_ids=["cached"], cached_revisions={"cached": item.revision}
    )
    assert miss.history is not None and len(miss.history) == 2


# -- activities -----------------------------------------------------------------------------


async def test_claimed_tasks_belong_to_the_committer_and_unclaimed_are_leasable(
    backend: Backend,
) -> None:
    await start_running(backend, "fan", tasks=[
        NewTask(0, "act", '"a"', claimed=True),
        NewTask(1, "act", '"b"', claimed=False),
    ])
    leased = await backend.lease_activities(OTHER, limit=10)
    assert [(t.task_id, t.input, t.attempt) for t in leased] == [(1, '"b"', 1)]
    assert await backend.lease_activities(OTHER, limit=10) == []


async def test_completing_an_activity_delivers_its_result_once(backend: Backend) -> None:
    item = await start_running(backend, "act", tasks=[NewTask(0, "act", None, claimed=False)])
    [task] = await backend.lease_activities(OTHER, limit=10)
    result = ActivityResult(task, TaskCompleted(task_scheduled_id=0, result='"done"'))
    assert await backend.complete_activities(OWNER, [result]) == [False]  # not the lease owner
    assert await backend.complete_activities(OTHER, [result]) == [True]
    assert await backend.complete_activities(OTHER, [result]) == [False]  # already delivered
    leased = await lease_one(backend, "act")
    assert [type(m.event) for m in leased.messages] == [TaskCompleted]
    assert leased.messages[0].execution_id == item.execution_id


async def test_expired_activity_leases_are_taken_over(backend: Backend) -> None:
    await start_running(backend, "slow", tasks=[NewTask(0, "act", None, claimed=False)])
    [first] = await backend.lease_activities(OWNER, limit=10, lease_seconds=0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        again = await backend.lease_activities(OTHER, limit=10)
        if again:
            assert again[0].attempt == first.attempt + 1
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the expired activity lease was never taken over")
    late = ActivityResult(first, TaskCompleted(task_scheduled_id=0, result="1"))
    assert await backend.complete_activities(OWNER, [late]) == [False]


async def test_abandoned_activities_come_back_after_the_delay(backend: Backend) -> None:
    await start_running(backend, "retry", tasks=[NewTask(0, "act", None, claimed=False)])
    [task] = await backend.lease_activities(OWNER, limit=10)
    await backend.abandon_activities(OWNER, [task], retry_after=0.3)
    assert await backend.lease_activities(OTHER, limit=10) == []
    await asyncio.sleep(0.35)
    assert len(await backend.lease_activities(OTHER, limit=10)) == 1


async def test_results_delivered_from_memory_delete_only_tasks_still_held(
    backend: Backend,
) -> None:
    item = await start_running(backend, "direct", tasks=[NewTask(0, "act", None, claimed=True),
                                                         NewTask(1, "act", None, claimed=False)])
    record = await backend.get_instance("direct")
    assert record is not None
    done = [TaskCompleted(task_scheduled_id=0, result="1"),
            TaskCompleted(task_scheduled_id=1, result="2")]
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit("direct", item.execution_id, record.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time()), *done],
                            Status.Running, delivered_tasks=[0, 1])
    ])
    # Both results are recorded (the engine drops a task's second completion, should the
    # worker that holds task 1 deliver one too), but only the task OWNER held is deleted.
    assert outcome.ok
    assert len(await backend.get_history("direct")) == 5
    assert [t.task_id for t in await backend.lease_activities(OTHER, limit=10)] == [1]
    assert await backend.lease_activities(OTHER, limit=10) == []


async def test_results_for_a_finished_instance_are_dropped(backend: Backend) -> None:
    item = await start_running(backend, "gone", tasks=[NewTask(0, "act", None, claimed=False)])
    [task] = await backend.lease_activities(OWNER, limit=10)
    record = await backend.get_instance("gone")
    assert record is not None
    await backend.commit_orchestrations([
        OrchestrationCommit("gone", item.execution_id, record.revision, OWNER, [],
                            Status.Terminated, output='"stop"', release=True)
    ])
    result = ActivityResult(task, TaskCompleted(task_scheduled_id=0, result="1"))
    assert await backend.complete_activities(OWNER, [result]) == [True]
    assert await backend.lease_orchestrations(OTHER, limit=10) == []


# -- finishing, continue-as-new, sub-orchestrations -----------------------------------------


async def test_finishing_clears_the_inbox_and_the_lease(backend: Backend) -> None:
    item = await start_running(backend, "end")
    await backend.send_message(Message("end", EventRaised(name="late", timestamp=time.time())))
    record = await backend.get_instance("end")
    assert record is not None
    failure = FailureDetails("ValueError", "boom", "trace")
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit("end", item.execution_id, record.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time())], Status.Failed,
                            output='"boom"', failure=failure, custom_status='"s"',
                            release=True)
    ])
    assert outcome.ok
    record = await backend.get_instance("end")
    assert record is not None
    assert (record.status, record.output, record.custom_status) == (
        Status.Failed, '"boom"', '"s"')
    assert record.failure == failure and record.completed_at is not None
    assert await backend.lease_orchestrations(OTHER, limit=10) == []


async def test_continue_as_new_starts_a_fresh_execution(backend: Backend) -> None:
    item = await start_running(backend, "eternal")
    record = await backend.get_instance("eternal")
    assert record is not None
    new_execution = uuid.uuid4().hex
    restart = ExecutionStarted(name="orch", instance_id="eternal", execution_id=new_execution,
                               input="2")
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit(
            "eternal", item.execution_id, record.revision, OWNER,
            [OrchestratorStarted(timestamp=time.time())], Status.ContinuedAsNew,
            continue_as_new=ContinueAsNewPlan(new_execution, "2"),
            messages=[Message("eternal", restart, new_execution)],
        )
    ])
    assert outcome.ok
    record = await backend.get_instance("eternal")
    assert record is not None
    assert (record.status, record.execution_id, record.input) == (
        Status.ContinuedAsNew, new_execution, "2")
    assert await backend.get_history("eternal") == []
    leased = await lease_one(backend, "eternal")
    assert leased.execution_id == new_execution
    assert [m.event for m in leased.messages] == [restart]


async def test_sub_orchestrations_are_created_or_refused_atomically(backend: Backend) -> None:
    await start_running(backend, "busy-child")
    item = await start_running(backend, "parent")
    record = await backend.get_instance("parent")
    assert record is not None
    children = [
        new_instance("child-1", parent_instance_id="parent",
                     parent_execution_id=item.execution_id, parent_task_id=0),
        new_instance("busy-child", parent_instance_id="parent",
                     parent_execution_id=item.execution_id, parent_task_id=1),
    ]
    history = [OrchestratorStarted(timestamp=time.time()),
               TaskScheduled(event_id=0, name="x")]
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit("parent", item.execution_id, record.revision, OWNER, history,
                            Status.Running, new_instances=children)
    ])
    assert outcome.ok
    child = await backend.get_instance("child-1")
    assert child is not None and child.parent_instance_id == "parent"
    assert child.status is Status.Pending
    [answer] = [m for m in (await lease_one(backend, "parent")).messages]
    assert isinstance(answer.event, SubOrchestrationInstanceFailed)
    assert answer.event.task_scheduled_id == 1
    assert answer.event.failure.error_type.endswith("InstanceAlreadyExistsError")


# -- queries and purging --------------------------------------------------------------------


async def test_query_pages_cover_every_match_once(backend: Backend) -> None:
    base = time.time()
    for index in range(25):
        await backend.create_instance(
            new_instance(f"q-{index:02d}", created_at=base + index * 0.001)
        )
    await backend.create_instance(new_instance("other", created_at=base))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await backend.query_instances(
            InstanceQuery(instance_id_prefix="q-", page_size=10, continuation_token=token)
        )
        seen.extend(r.instance_id for r in page.instances)
        pages += 1
        token = page.continuation_token
        if token is None:
            break
    assert seen == [f"q-{i:02d}" for i in range(25)] and pages == 3
    window = await backend.query_instances(
        InstanceQuery(created_from=base + 0.0095, created_to=base + 0.0125,
                      statuses=[Status.Pending])
    )
    assert [r.instance_id for r in window.instances] == ["q-10", "q-11", "q-12"]
    none = await backend.query_instances(InstanceQuery(statuses=[Status.Completed]))
    assert none.instances == [] and none.continuation_token is None
    with pytest.raises(InvalidInputError):
        await backend.query_instances(InstanceQuery(continuation_token="garbage!"))


async def test_purge_by_id_and_by_filter(backend: Backend) -> None:
    item = await start_running(backend, "done-1")
    record = await backend.get_instance("done-1")
    assert record is not None
    await backend.commit_orchestrations([
        OrchestrationCommit("done-1", item.execution_id, record.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time())], Status.Completed,
                            release=True)
    ])
    await start_running(backend, "running-1")
    assert await backend.purge_instances(None, None, None) == 1
    assert await backend.get_instance("done-1") is None
    assert await backend.get_instance("running-1") is not None
    assert await backend.purge_instances(None, None, [Status.Running]) == 0
    assert await backend.purge_instance("running-1") == 1
    assert await backend.purge_instance("running-1") == 0
    assert await backend.get_history("running-1") == []


async def test_a_commit_handed_messages_is_refused_while_an_older_one_waits(
    backend: Backend,
) -> None:
    """``handed_up_to``: the order checks of a whole batch run as one query; each refusal is
    its own commit's, and a refused commit writes nothing."""
    items = {}
    for instance_id in ("skips-one", "takes-all"):
        started = await start_running(backend, instance_id)
        for value in range(2):
            await backend.send_message(Message(instance_id, EventRaised(
                timestamp=time.time(), name="e", input=str(value)), started.execution_id))
        items[instance_id] = await lease_one(backend, instance_id)
    skips, takes = items["skips-one"], items["takes-all"]
    assert len(skips.messages) == len(takes.messages) == 2
    newest = {key: max(m.message_id for m in item.messages) for key, item in items.items()}
    refused, applied = await backend.commit_orchestrations([
        episode_commit(skips, consumed_messages=[newest["skips-one"]],
                       handed_up_to=newest["skips-one"]),
        episode_commit(takes, handed_up_to=newest["takes-all"]),
    ])
    assert refused.behind and not refused.ok
    assert applied.ok and not applied.behind
    [again] = await backend.commit_orchestrations(
        [episode_commit(skips, handed_up_to=newest["skips-one"])])
    assert again.ok


async def test_results_applied_from_memory_wait_for_every_due_message(backend: Backend) -> None:
    """``EVERY_MESSAGE``: an episode that applied activity results from memory stands only if
    no due message it does not consume waits (a timer not yet due does not count)."""
    item = await start_running(backend, "from-memory")
    record = await backend.get_instance("from-memory")
    assert record is not None
    later = time.time() + 3600
    await backend.send_message(Message("from-memory", TimerFired(
        timestamp=time.time(), timer_id=9, fire_at=later), item.execution_id, visible_at=later))
    fresh = replace(item, revision=record.revision, messages=[])
    [applied] = await backend.commit_orchestrations(
        [episode_commit(fresh, handed_up_to=EVERY_MESSAGE)])
    assert applied.ok and not applied.behind
    await backend.send_message(Message("from-memory", EventRaised(
        timestamp=time.time(), name="e", input="1"), item.execution_id))
    current = replace(fresh, revision=applied.revision)
    [refused] = await backend.commit_orchestrations(
        [episode_commit(current, handed_up_to=EVERY_MESSAGE)])
    assert refused.behind and not refused.ok
    leased = await lease_one(backend, "from-memory")
    [read_first] = await backend.commit_orchestrations(
        [episode_commit(leased, handed_up_to=EVERY_MESSAGE)])
    assert read_first.ok


# -- entities -----------------------------------------------------------------------------------


def entity_event(value: int) -> EventRaised:
    return EventRaised(timestamp=time.time(), name="op", input=f'{{"id":"r{value}","op":"add"}}')


async def test_a_message_creates_its_entity_and_the_entity_keeps_no_history(
    backend: Backend,
) -> None:
    for value in range(3):
        await backend.send_entity_message(Message("@counter@k", entity_event(value)))
    record = await backend.get_instance("@counter@k")
    assert record is not None and record.name == "counter" and record.input is None
    item = await lease_one(backend, "@counter@k")
    assert item.is_entity and item.entity_state is None and item.history == []
    assert [m.event.input for m in item.messages] == [  # type: ignore[attr-defined]
        f'{{"id":"r{v}","op":"add"}}' for v in range(3)]
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit(item.instance_id, item.execution_id, item.revision, OWNER, [],
                            Status.Running, consumed_messages=[m.message_id for m in
                                                               item.messages],
                            entity_state='{"exists":true,"state":"3"}')
    ])
    assert outcome.ok
    assert await backend.get_history("@counter@k") == []
    record = await backend.get_instance("@counter@k")
    assert record is not None and record.input == '{"exists":true,"state":"3"}'
    # A worker that does not hold this revision gets the state with the next message; one
    # that does (cached_revisions) is spared the read.
    await backend.send_entity_message(Message("@counter@k", entity_event(9)))
    again = await lease_one(backend, "@counter@k")
    assert again.entity_state == '{"exists":true,"state":"3"}'
    [cached] = await backend.lease_orchestrations(
        OWNER, limit=10, instance_ids=["@counter@k"],
        cached_revisions={"@counter@k": again.revision})
    assert cached.entity_state is None and cached.history is None


async def test_commits_send_messages_that_create_entities(backend: Backend) -> None:
    item = await start_running(backend, "sender")
    record = await backend.get_instance("sender")
    assert record is not None
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit("sender", item.execution_id, record.revision, OWNER, [],
                            Status.Running,
                            messages=[Message("@counter@made", entity_event(1))])
    ])
    assert outcome.ok
    entity = await lease_one(backend, "@counter@made")
    assert len(entity.messages) == 1


async def test_one_batch_messages_existing_new_and_removed_entities(backend: Backend) -> None:
    """SQLite reads which entities exist once per batch; the rows must still appear for new and
    removed entities, once each, however many commits of the batch message them."""
    await backend.send_entity_message(Message("@counter@old", entity_event(1)))
    await backend.send_entity_message(Message("@counter@removed", entity_event(1)))
    removed = await lease_one(backend, "@counter@removed")
    await backend.commit_orchestrations([
        OrchestrationCommit(removed.instance_id, removed.execution_id, removed.revision, OWNER,
                            [], Status.Running, release=True,
                            consumed_messages=[m.message_id for m in removed.messages],
                            entity_state='{"exists":false}')
    ])
    row = await backend.get_instance("@counter@removed")
    assert row is not None and await backend.remove_entity(row.instance_id, row.revision)
    commits = []
    for sender in ("s1", "s2"):
        item = await start_running(backend, sender)
        record = await backend.get_instance(sender)
        assert record is not None
        commits.append(OrchestrationCommit(
            sender, item.execution_id, record.revision, OWNER, [], Status.Running,
            messages=[Message(target, entity_event(2))
                      for target in ("@counter@old", "@counter@new", "@counter@removed")]))
    assert all(outcome.ok for outcome in await backend.commit_orchestrations(commits))
    expected = {"@counter@old": 3, "@counter@new": 2, "@counter@removed": 2}
    for entity_id, waiting in expected.items():
        record = await backend.get_instance(entity_id)
        assert record is not None and record.name == "counter"
        item = await lease_one(backend, entity_id)
        assert len(item.messages) == waiting, entity_id


async def test_entities_are_listed_apart_from_orchestrations(backend: Backend) -> None:
    from durable.storage.base import EntityQuery

    await start_running(backend, "plain")
    for key in ("b", "a", "c"):
        await backend.send_entity_message(Message(f"@counter@{key}", entity_event(1)))
    await backend.send_entity_message(Message("@other@z", entity_event(1)))
    page = await backend.query_instances(InstanceQuery())
    assert [r.instance_id for r in page.instances] == ["plain"]
    first = await backend.query_entities(EntityQuery(name_prefix="counter", page_size=2))
    assert [r.instance_id for r in first.instances] == ["@counter@a", "@counter@b"]
    rest = await backend.query_entities(EntityQuery(
        name_prefix="counter", continuation_token=first.continuation_token))
    assert [r.instance_id for r in rest.instances] == ["@counter@c"]
    assert rest.continuation_token is None
    everything = await backend.query_entities(EntityQuery())
    assert len(everything.instances) == 4
    later = await backend.query_entities(EntityQuery(last_operation_from=time.time() + 60))
    assert later.instances == []
    with pytest.raises(InvalidInputError):
        await backend.query_entities(EntityQuery(continuation_token="not a token"))


async def test_remove_entity_only_when_unchanged_and_idle(backend: Backend) -> None:
    await backend.send_entity_message(Message("@counter@gone", entity_event(1)))
    record = await backend.get_instance("@counter@gone")
    assert record is not None
    assert not await backend.remove_entity("@counter@gone", record.revision)  # a message waits
    item = await lease_one(backend, "@counter@gone")
    await backend.commit_orchestrations([
        OrchestrationCommit(item.instance_id, item.execution_id, item.revision, OWNER, [],
                            Status.Running, consumed_messages=[m.message_id for m in
                                                               item.messages],
                            entity_state='{"exists":false}')
    ])
    assert not await backend.remove_entity("@counter@gone", record.revision)  # moved on
    current = await backend.get_instance("@counter@gone")
    assert current is not None
    assert await backend.remove_entity("@counter@gone", current.revision)
    assert await backend.get_instance("@counter@gone") is None


# -- rewind -------------------------------------------------------------------------------------


async def fail_instance(backend: Backend, instance_id: str) -> OrchestrationWorkItem:
    item = await start_running(backend, instance_id)
    record = await backend.get_instance(instance_id)
    assert record is not None
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit(instance_id, item.execution_id, record.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time())], Status.Failed,
                            failure=FailureDetails("ValueError", "boom"), release=True)
    ])
    assert outcome.ok
    return item


async def test_rewind_reopens_only_failed_instances(backend: Backend) -> None:
    from durable.errors import InstanceNotFailedError
    from durable.history import ExecutionRewound

    with pytest.raises(InstanceNotFoundError):
        await backend.rewind_instance("nobody", "why")
    await start_running(backend, "still-running")
    with pytest.raises(InstanceNotFailedError) as refused:
        await backend.rewind_instance("still-running", "why")
    assert refused.value.status == "Running"
    await fail_instance(backend, "broken")
    await backend.rewind_instance("broken", "fixed the bug")
    record = await backend.get_instance("broken")
    assert record is not None and record.status is Status.Running
    item = await lease_one(backend, "broken")
    [message] = item.messages
    assert isinstance(message.event, ExecutionRewound)
    assert message.event.reason == "fixed the bug"
    # The rewind episode replaces the history and schedules the failed work again.
    new_history = [OrchestratorStarted(timestamp=time.time()), message.event]
    [outcome] = await backend.commit_orchestrations([
        episode_commit(item, history=new_history, replace_history=True,
                       new_tasks=[NewTask(0, "act", '"again"', claimed=False)])
    ])
    assert outcome.ok
    assert [type(e) for e in await backend.get_history("broken")] == [
        OrchestratorStarted, ExecutionRewound]
    [task] = await backend.lease_activities(OWNER, limit=10)
    assert (task.instance_id, task.name, task.input) == ("broken", "act", '"again"')


async def test_rewinding_a_parent_rewinds_or_restarts_its_children(backend: Backend) -> None:
    from durable.history import ExecutionRewound

    parent = await start_running(backend, "parent")
    await fail_instance(backend, "failed-child")
    children = [
        new_instance(child, parent_instance_id="parent", parent_execution_id=parent.execution_id,
                     parent_task_id=index)
        for index, child in enumerate(("failed-child", "purged-child"))
    ]
    record = await backend.get_instance("parent")
    assert record is not None
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit("parent", parent.execution_id, record.revision, OWNER, [],
                            Status.Running, rewind_children=children)
    ])
    assert outcome.ok
    rewound = await lease_one(backend, "failed-child")
    assert [type(m.event) for m in rewound.messages] == [ExecutionRewound]
    restarted = await lease_one(backend, "purged-child")
    [started] = restarted.messages
    assert isinstance(started.event, ExecutionStarted)
    assert started.event.parent_instance_id == "parent"
