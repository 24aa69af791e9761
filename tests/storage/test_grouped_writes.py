"""Client writes that arrive together (PostgreSQL runs them set-based, one statement per kind;
durable/storage/postgres/grouped.py) keep every per-call answer of the one-by-one path, on every
backend."""

from __future__ import annotations

import asyncio
import threading
import time

from durable.errors import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InvalidInputError,
)
from durable.history import EventRaised, ExecutionStarted, OrchestratorStarted
from durable.status import OrchestrationRuntimeStatus as Status
from durable.status import OverridableStates
from durable.storage.base import Backend, Message, OrchestrationCommit
from tests.storage.test_backend_contract import OWNER, lease_one, new_instance, start_running


async def _finish(backend: Backend, instance_id: str) -> None:
    await start_running(backend, instance_id)
    record = await backend.get_instance(instance_id)
    assert record is not None
    [done] = await backend.commit_orchestrations([
        OrchestrationCommit(instance_id, record.execution_id, record.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time())], Status.Completed,
                            output='"out"', release=True)
    ])
    assert done.ok


def _event(name: str) -> Message:
    return Message("", EventRaised(timestamp=time.time(), name=name, input='"x"'))


async def test_a_mixed_group_answers_each_call_as_alone(backend: Backend) -> None:
    await start_running(backend, "busy")
    await _finish(backend, "done")
    await _finish(backend, "finished")
    fresh = [new_instance(f"fresh-{n}") for n in range(20)]
    busy = [new_instance("busy") for _ in range(5)]
    done = [new_instance("done", data=f'"{n}"') for n in range(5)]
    twice = [new_instance("twice", data=f'"{n}"') for n in range(6)]
    swap = new_instance("busy-swap")
    bad = new_instance("bad", name="a\x00b")
    events = [Message(i, _event(i).event) for i in ("busy", "fresh-3", "nobody", "finished")]
    calls = [
        *(backend.create_instance(n) for n in [*fresh, *busy, *done, *twice, bad]),
        *(backend.send_message(m) for m in events),
        backend.create_instance(swap),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    it = iter(results)
    assert [next(it) for _ in fresh] == [None] * 20
    busy_results = [next(it) for _ in busy]
    assert all(isinstance(r, InstanceAlreadyExistsError) for r in busy_results), busy_results
    done_results = [next(it) for _ in done]
    twice_results = [next(it) for _ in twice]
    for group in (done_results, twice_results):  # exactly one replaces/creates, the rest 409
        assert sum(r is None for r in group) == 1, group
        assert sum(isinstance(r, InstanceAlreadyExistsError) for r in group) == len(group) - 1
    assert isinstance(next(it), InvalidInputError)
    sent = [next(it) for _ in events]
    assert sent[0] is None and sent[1] is None, sent
    assert isinstance(sent[2], InstanceNotFoundError), sent
    assert isinstance(sent[3], InstanceNotRunningError), sent
    assert next(it) is None
    # The winner's input is what the instance holds; it has exactly one ExecutionStarted.
    for group, instance_id in ((done, "done"), (twice, "twice")):
        results_of = done_results if instance_id == "done" else twice_results
        winner = group[[r is None for r in results_of].index(True)]
        record = await backend.get_instance(instance_id)
        assert record is not None and record.status is Status.Pending
        assert record.input == winner.input and record.execution_id == winner.execution_id
        item = await lease_one(backend, instance_id)
        assert [type(m.event) for m in item.messages] == [ExecutionStarted]
    fresh_item = await lease_one(backend, "fresh-3")
    assert [type(m.event) for m in fresh_item.messages] == [ExecutionStarted, EventRaised]
    assert await backend.get_instance("bad") is None


async def test_a_group_under_any_state_replaces_in_order(backend: Backend) -> None:
    await start_running(backend, "swap")
    news = [new_instance("swap", data=f'"{n}"') for n in range(4)]
    results = await asyncio.gather(
        *(backend.create_instance(n, OverridableStates.AnyState) for n in news))
    assert results == [None] * 4
    record = await backend.get_instance("swap")
    assert record is not None and record.status is Status.Pending
    item = await lease_one(backend, "swap")
    assert len(item.messages) == 1 and item.execution_id == record.execution_id


async def test_grouped_starts_with_a_lease_return_their_work_items(backend: Backend) -> None:
    news = [new_instance(f"leased-{n}") for n in range(10)]
    items = await asyncio.gather(*(backend.create_instance(n, lease_owner=OWNER) for n in news))
    for new, item in zip(news, items, strict=True):
        assert item is not None and item.instance_id == new.instance_id and item.revision == 1
        assert [type(m.event) for m in item.messages] == [ExecutionStarted]
        assert item.messages[0].message_id > 0


async def test_grouped_entity_signals_create_each_entity_once(backend: Backend) -> None:
    ids = ["@counter@a", "@counter@b", "@counter@a", "@other@a"]
    await asyncio.gather(*(backend.send_entity_message(Message(i, _event(str(n)).event))
                           for n, i in enumerate(ids)))
    for instance_id, expected in (("@counter@a", ["0", "2"]), ("@counter@b", ["1"]),
                                  ("@other@a", ["3"])):
        record = await backend.get_instance(instance_id)
        assert record is not None and record.status is Status.Running
        item = await lease_one(backend, instance_id)
        assert [m.event.name for m in item.messages] == expected  # type: ignore[attr-defined]


async def test_get_instances_reads_many_in_one_call(backend: Backend) -> None:
    await asyncio.gather(*(backend.create_instance(new_instance(f"many-{n}")) for n in range(5)))
    found = await backend.get_instances(["many-0", "many-3", "nobody", "many-3", "a\x00b"])
    assert sorted(r.instance_id for r in found) == ["many-0", "many-3"]
    assert all(r.status is Status.Pending for r in found)
    await backend.wait_for_completions(0.01)  # returns (told or not) within the timeout


async def test_a_burst_of_signals_keeps_its_order_and_refuses_only_the_bad_one(
    backend: Backend,
) -> None:
    """2,500 signals at once (more than one SQLite batch), one of them to an entity ID storage
    cannot hold: that one alone is refused, the rest land once each, in the order sent."""
    signals = [Message("@journal@burst", _event(str(n)).event) for n in range(2500)]
    bad = Message("@journal@bad\udcff", _event("bad").event)
    calls = [backend.send_entity_message(m) for m in signals[:1200]]
    calls.append(backend.send_entity_message(bad))
    calls.extend(backend.send_entity_message(m) for m in signals[1200:])
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if r is not None]
    assert len(refused) == 1 and isinstance(refused[0], InvalidInputError), refused[:3]
    assert results[1200] is refused[0]
    item = await lease_one(backend, "@journal@burst")
    names = [m.event.name for m in item.messages]  # type: ignore[attr-defined]
    assert names == [str(n) for n in range(2500)]


async def test_signals_of_a_batch_sqlite_refuses_are_sent_again_one_by_one(
    tmp_path, monkeypatch
) -> None:
    """Should SQLite refuse a whole batch (a value the checks missed), nothing of it was
    written, and each signal is sent again on its own: only the culprit's caller hears."""
    from durable.storage import sql
    from durable.storage.sqlite.backend import SQLiteBackend

    real = sql.send_entity_messages
    batches: list[int] = []

    def refuse_batches_with_a_culprit(signals, now):  # type: ignore[no-untyped-def]
        batches.append(len(signals))
        if any(m.instance_id == "@journal@culprit" for m, _ in signals):
            raise InvalidInputError("SQLite cannot store a value (injected)")
        return (yield from real(signals, now))

    monkeypatch.setattr(sql, "send_entity_messages", refuse_batches_with_a_culprit)
    original_alone = sql.send_entity_message

    def alone(message, now):  # type: ignore[no-untyped-def]
        if message.instance_id == "@journal@culprit":
            raise InvalidInputError("SQLite cannot store a value (injected)")
        return (yield from original_alone(message, now))

    monkeypatch.setattr(sql, "send_entity_message", alone)
    backend = SQLiteBackend(tmp_path / "refused.db")
    await backend.open()
    try:
        # Hold the writer so that all four join one batch.
        release = threading.Event()

        def hold(now: float) -> sql.Txn:
            release.wait(10)
            return (yield from ())

        held = backend._write(hold)
        ids = ["@journal@a", "@journal@culprit", "@journal@b", "@journal@a"]
        sends = asyncio.gather(
            *(backend.send_entity_message(Message(i, _event(str(n)).event))
              for n, i in enumerate(ids)), return_exceptions=True)
        await asyncio.sleep(0)  # every send joins the open batch
        release.set()
        await held
        results = await sends
        assert batches == [4]
        assert results[0] is None and results[2] is None and results[3] is None, results
        assert isinstance(results[1], InvalidInputError)
        item = await lease_one(backend, "@journal@a")
        assert [m.event.name for m in item.messages] == ["0", "3"]  # type: ignore[attr-defined]
        assert await backend.get_instance("@journal@culprit") is None
        assert (await lease_one(backend, "@journal@b")).messages[0].message_id > 0
    finally:
        await backend.close()
