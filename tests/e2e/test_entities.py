"""Durable entities end to end, on a real Host over SQLite and over PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

import pytest

import durable as df
from tests.e2e.conftest import running, wait_for_status, wait_until

Status = df.OrchestrationRuntimeStatus
ALICE, BOB, CAROL = (df.EntityId("account", name) for name in ("alice", "bob", "carol"))
COUNTER = df.EntityId("Counter", "shared")

app = df.DFApp()


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):  # Azure's samples name entities this way
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
    elif operation == "reset":
        value = 0
    elif operation == "fail":
        context.set_state(value + 1_000_000)
        raise ValueError("this operation always fails")
    elif operation == "forward":  # signal another entity
        target, amount = context.get_input()
        context.signal_entity(df.EntityId("counter", target), "add", amount)
    context.set_state(value)
    context.set_result(value)


@app.entity_trigger(context_name="context", entity_name="account")
def account_entity(context: df.DurableEntityContext):
    balance = context.get_state(lambda: 100)
    if context.operation_name == "add":
        balance += context.get_input()
        if balance < 0:
            raise ValueError("a balance may never be negative")
    context.set_state(balance)
    context.set_result(balance)


@app.entity_trigger(context_name="context")
def journal(context: df.DurableEntityContext):
    entries = context.get_state(list)
    if context.operation_name == "append":
        entries.append(context.get_input())
    elif context.operation_name == "drop":
        context.destruct_on_exit()
        return
    context.set_state(entries)
    context.set_result(entries)


@app.orchestration_trigger(context_name="context")
def add_many(context: df.DurableOrchestrationContext):
    times = context.get_input()
    for _ in range(times):
        yield context.call_entity(COUNTER, "add", 1)
    return (yield context.call_entity(COUNTER, "get"))


@app.orchestration_trigger(context_name="context")
def transfer(context: df.DurableOrchestrationContext):
    source, target, amount = context.get_input()
    src, dst = df.EntityId("account", source), df.EntityId("account", target)
    with (yield context.lock([src, dst])):
        available = yield context.call_entity(src, "get")
        if available < amount:
            return "declined"
        yield context.task_all([context.call_entity(src, "add", -amount),
                                context.call_entity(dst, "add", amount)])
    return "done"


@app.orchestration_trigger(context_name="context")
def audit(context: df.DurableOrchestrationContext):
    with (yield context.lock([ALICE, BOB, CAROL])):
        balances = yield context.task_all(
            [context.call_entity(e, "get") for e in (ALICE, BOB, CAROL)])
    return balances


@app.orchestration_trigger(context_name="context")
def hold_lock(context: df.DurableOrchestrationContext):
    with (yield context.lock([df.EntityId("counter", context.get_input())])):
        context.set_custom_status("locked")
        yield context.wait_for_external_event("never")


@app.orchestration_trigger(context_name="context")
def lock_and_read(context: df.DurableOrchestrationContext):
    entity = df.EntityId("counter", context.get_input())
    with (yield context.lock([entity])):
        return (yield context.call_entity(entity, "get"))


@app.orchestration_trigger(context_name="context")
def call_failing(context: df.DurableOrchestrationContext):
    before = yield context.call_entity(COUNTER, "get")
    try:
        yield context.call_entity(COUNTER, "fail")
    except df.TaskFailedError as error:
        failure = [error.error_type, str(error)]
    after = yield context.call_entity(COUNTER, "get")
    return [before, failure, after]


async def test_twenty_orchestrations_times_fifty_calls_end_at_exactly_one_thousand(
    storage_url: str,
) -> None:
    async with running(app, storage_url) as host:
        ids = await asyncio.gather(*(host.client.start_new("add_many", client_input=50)
                                     for _ in range(20)))
        for instance_id in ids:
            status = await host.client.wait_for_completion(instance_id, timeout=120)
            assert status.runtime_status is Status.Completed
        state = await host.client.read_entity_state(COUNTER)
    assert state.entity_exists and state.entity_state == 1000


async def test_fifty_concurrent_transfers_in_critical_sections_keep_the_total(
    storage_url: str,
) -> None:
    rng = random.Random(7)
    names = ["alice", "bob", "carol"]
    async with running(app, storage_url) as host:
        plans = []
        for index in range(50):
            source, target = rng.sample(names, 2)
            plans.append(("transfer", [source, target, rng.randint(1, 80)]))
            if index % 5 == 0:
                plans.append(("audit", None))
        ids = await asyncio.gather(*(host.client.start_new(name, client_input=data)
                                     for name, data in plans))
        outputs = []
        for instance_id in ids:
            status = await host.client.wait_for_completion(instance_id, timeout=120)
            assert status.runtime_status is Status.Completed, status.output
            outputs.append(status.output)
        final = [(await host.client.read_entity_state(e)).entity_state
                 for e in (ALICE, BOB, CAROL)]
    audits = [o for o in outputs if isinstance(o, list)]
    assert len(audits) == 10
    # Every audit (inside its own critical section) saw a consistent, non-negative world.
    for balances in [*audits, final]:
        assert sum(balances) == 300 and min(balances) >= 0, balances
    assert outputs.count("done") + outputs.count("declined") == 50
    assert outputs.count("done") > 0


async def test_a_failing_operation_leaves_the_state_unchanged(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        await host.client.signal_entity(COUNTER, "add", 5)
        status = await _run(host, "call_failing")
    before, (error_type, message), after = status.output
    assert before == 5 and after == 5
    assert error_type == "ValueError"
    assert message == ("call_entity('@counter@shared', 'fail') failed: ValueError: this "
                       "operation always fails")


async def test_locks_are_released_when_the_holder_is_terminated(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        holder = await host.client.start_new("hold_lock", client_input="locked-one")

        async def locked() -> bool:
            return (await host.client.get_status(holder)).custom_status == "locked"

        await wait_until(locked, what="the lock to be held")
        waiting = await host.client.start_new("lock_and_read", client_input="locked-one")
        await wait_for_status(host.client, waiting, Status.Running)
        listed = await host.client.list_entities("counter")
        [held] = [e for e in listed.entities if e.entity_id.key == "locked-one"]
        assert held.locked_by == holder
        await host.client.terminate(holder, "enough")
        status = await host.client.wait_for_completion(waiting, timeout=30)
    assert status.runtime_status is Status.Completed and status.output == 0


async def test_an_orphaned_lock_is_released_by_clean_entity_storage(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        holder = await host.client.start_new("hold_lock", client_input="orphan")

        async def locked() -> bool:
            return (await host.client.get_status(holder)).custom_status == "locked"

        await wait_until(locked, what="the lock to be held")
        await host.client.purge_instance_history(holder)  # gone without releasing
        result = await host.client.clean_entity_storage(remove_empty_entities=False)
        assert result.orphaned_locks_released == 1
        status = await _run(host, "lock_and_read", "orphan")
    assert status.output == 0


async def test_signals_from_one_client_arrive_in_order_and_can_be_scheduled(
    storage_url: str,
) -> None:
    ledger = df.EntityId("journal", "ordered")
    async with running(app, storage_url) as host:
        for index in range(30):
            await host.client.signal_entity(ledger, "append", index)
        later = time.time() + 0.5
        await host.client.signal_entity(ledger, "append", "later",
                                        scheduled_time=timedelta(seconds=0.5))

        async def state() -> list[int]:
            return (await host.client.read_entity_state(ledger)).entity_state or []

        async def all_thirty() -> bool:
            return len(await state()) >= 30

        await wait_until(all_thirty, what="thirty signals")
        assert (await state())[:30] == list(range(30))

        async def the_late_one() -> bool:
            return "later" in await state()

        await wait_until(the_late_one, what="the scheduled signal")
        assert time.time() >= later - 0.05
        assert (await state()) == [*range(30), "later"]


async def test_an_entity_can_signal_another_entity(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        await host.client.signal_entity(df.EntityId("counter", "from"), "forward", ["to", 9])

        async def arrived() -> bool:
            return (await host.client.read_entity_state(
                df.EntityId("counter", "to"))).entity_state == 9

        await wait_until(arrived, what="the forwarded signal")


async def test_list_read_and_clean_entities(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        for key in ("a", "b", "c", "d", "e"):
            await host.client.signal_entity(df.EntityId("journal", key), "append", key)
        await host.client.signal_entity(COUNTER, "add", 1)

        async def five_journals() -> bool:
            page = await host.client.list_entities("JOURNAL")
            return len(page.entities) == 5

        await wait_until(five_journals, what="five journals")
        first = await host.client.list_entities("journal", page_size=2)
        assert [e.entity_id.key for e in first.entities] == ["a", "b"]
        assert first.continuation_token is not None
        rest = await host.client.list_entities("journal", page_size=10,
                                               continuation_token=first.continuation_token)
        assert [e.entity_id.key for e in rest.entities] == ["c", "d", "e"]
        assert rest.entities[0].state == ["c"]
        future = await host.client.list_entities(
            last_operation_time_from=_in(timedelta(hours=1)))
        assert future.entities == []
        # Entities never show in orchestration listings.
        assert await host.client.get_status_all() == []

        await host.client.signal_entity(df.EntityId("journal", "a"), "drop")

        async def dropped() -> bool:
            return not (await host.client.read_entity_state(
                df.EntityId("journal", "a"))).entity_exists

        await wait_until(dropped, what="journal a to be deleted")
        assert [e.entity_id.key for e in
                (await host.client.list_entities("journal")).entities] == ["b", "c", "d", "e"]
        cleaned = await host.client.clean_entity_storage()
        assert cleaned.empty_entities_removed == 1
        listing = await host.client.list_entities("journal", include_deleted=True)
        assert [e.entity_id.key for e in listing.entities] == ["b", "c", "d", "e"]


async def test_bad_entity_input_is_refused_with_typed_errors(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        with pytest.raises(df.FunctionNotFoundError):
            await host.client.signal_entity(df.EntityId("nobody", "k"), "add", 1)
        with pytest.raises(df.SerializationError):
            await host.client.signal_entity(COUNTER, "add", object())
        with pytest.raises(df.InvalidInputError):
            await host.client.signal_entity("not-an-entity-id", "add", 1)
        assert (await host.client.read_entity_state(df.EntityId("counter", "none"))
                ) == df.EntityStateResponse(False, None)


async def _run(host: df.Host, name: str, data: object = None) -> df.DurableOrchestrationStatus:
    instance_id = await host.client.start_new(name, client_input=data)
    return await host.client.wait_for_completion(instance_id, timeout=60)


def _in(delta: timedelta) -> datetime:
    return datetime.now(UTC) + delta
