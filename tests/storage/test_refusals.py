"""What storage refuses, and that a refusal costs only its own operation or commit: part of
the storage contract, run against every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from durable.errors import FailureDetails, InstanceNotFoundError, InvalidInputError
from durable.history import EventRaised, ExecutionTerminated, TaskCompleted, TaskFailed
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage import checks
from durable.storage.base import (
    ActivityResult,
    ActivityWorkItem,
    Backend,
    InstanceQuery,
    Message,
    NewTask,
)
from tests.storage.test_backend_contract import OWNER, episode_commit, lease_one, new_instance

LONE = "\udcff"


async def started(backend: Backend, instance_id: str) -> None:
    await backend.create_instance(new_instance(instance_id))


async def test_a_start_storage_cannot_hold_is_refused_and_stores_nothing(
    backend: Backend,
) -> None:
    for bad in (new_instance("nul-name", name="a\x00b"), new_instance("v", version="1\x00"),
                new_instance("surrogate-name", name=f"a{LONE}"),
                new_instance("surrogate-input", data=f'"{LONE}"')):
        with pytest.raises(InvalidInputError, match="cannot be stored"):
            await backend.create_instance(bad)
        assert await backend.get_instance(bad.instance_id) is None
    # A NUL inside JSON text is just an escape: stored and read back as it was.
    await backend.create_instance(new_instance("nul-in-json", data='"a\\u0000b"'))
    record = await backend.get_instance("nul-in-json")
    assert record is not None and record.input == '"a\\u0000b"'


async def test_lookups_by_an_impossible_id_find_nothing_on_every_backend(
    backend: Backend,
) -> None:
    await started(backend, "real")
    for bad in ("a\x00b", "\x00", "tab\t", "del\x7f", f"x{LONE}"):
        assert await backend.get_instance(bad) is None
        assert await backend.get_history(bad) == []
        assert await backend.purge_instance(bad) == 0
        with pytest.raises(InstanceNotFoundError):
            await backend.send_message(Message(bad, EventRaised(name="go")))
        page = await backend.query_instances(InstanceQuery(instance_id_prefix=bad))
        assert page.instances == [] and page.continuation_token is None


async def test_a_message_that_is_not_json_is_refused(backend: Backend) -> None:
    await started(backend, "target")
    for event in (ExecutionTerminated(reason=float("nan")),  # type: ignore[arg-type]
                  ExecutionTerminated(reason=object()),  # type: ignore[arg-type]
                  EventRaised(name=f"go{LONE}")):
        with pytest.raises(InvalidInputError):
            await backend.send_message(Message("target", event))
    item = await lease_one(backend, "target")
    assert [type(m.event).__name__ for m in item.messages] == ["ExecutionStarted"]


async def test_a_continuation_token_with_a_nul_is_refused(backend: Backend) -> None:
    import base64
    import json

    for content in ([1.0, "a\x00b"], [float("inf"), "a"], [1.0, 5]):
        token = base64.urlsafe_b64encode(json.dumps(content).encode()).decode()
        with pytest.raises(InvalidInputError, match="continuation token"):
            await backend.query_instances(InstanceQuery(continuation_token=token))


async def test_a_refused_commit_fails_alone_and_writes_nothing(backend: Backend) -> None:
    ids = [f"batch-{n}" for n in range(5)]
    for instance_id in ids:
        await started(backend, instance_id)
    items = [await lease_one(backend, instance_id) for instance_id in ids]
    commits = [episode_commit(item) for item in items]
    commits[1].custom_status = f'"{LONE}"'
    commits[3].new_tasks.append(NewTask(1, "a\x00b", None))
    outcomes = await backend.commit_orchestrations(commits)
    assert [o.ok for o in outcomes] == [True, False, True, False, True]
    assert outcomes[1].error is not None and "custom status" in outcomes[1].error
    assert outcomes[3].error is not None and "name of activity #1" in outcomes[3].error
    for number, instance_id in enumerate(ids):
        record = await backend.get_instance(instance_id)
        assert record is not None
        assert record.revision == (2 if outcomes[number].ok else 1)
    # The refused ones are untouched: their message is still there, to be run again.
    again = await lease_one(backend, "batch-1")
    assert again.revision == 1 and again.messages


async def test_a_result_storage_cannot_hold_becomes_that_tasks_failure(
    backend: Backend,
) -> None:
    await started(backend, "with-task")
    item = await lease_one(backend, "with-task")
    commit = episode_commit(item, new_tasks=[NewTask(0, "act", None), NewTask(1, "act", None)])
    assert (await backend.commit_orchestrations([commit]))[0].ok
    tasks = [ActivityWorkItem("with-task", item.execution_id, n, "act", None) for n in (0, 1)]
    results = [
        ActivityResult(tasks[0], TaskCompleted(timestamp=time.time(), task_scheduled_id=0,
                                               result=f'"{LONE}"')),
        ActivityResult(tasks[1], TaskCompleted(timestamp=time.time(), task_scheduled_id=1,
                                               result='"fine"')),
    ]
    assert await backend.complete_activities(OWNER, results) == [True, True]
    delivered = await lease_one(backend, "with-task")
    events = {getattr(m.event, "task_scheduled_id", None): m.event for m in delivered.messages}
    assert isinstance(events[0], TaskFailed)
    assert "result of activity 'act' cannot be stored" in events[0].failure.message
    assert isinstance(events[1], TaskCompleted) and events[1].result == '"fine"'


def _write_raw_message(backend: Backend, instance_id: str, text: str) -> None:
    settings = getattr(backend, "settings", None)
    if settings is None:
        with backend.connect_directly() as conn:  # type: ignore[attr-defined]
            conn.execute("INSERT INTO inbox (instance_id, execution_id, visible_at, event) "
                         "VALUES (?, NULL, 0, ?)", (instance_id, text))
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.hub)))
        conn.execute("INSERT INTO inbox (instance_id, execution_id, visible_at, event) "
                     "VALUES (%s, NULL, 0, %s)", [instance_id, text])


async def test_an_undecodable_message_marks_only_its_instance(backend: Backend) -> None:
    for instance_id in ("sound-1", "damaged", "sound-2"):
        await started(backend, instance_id)
    _write_raw_message(backend, "damaged", '{"type": "FromTheFuture"}')
    items = await backend.lease_orchestrations(OWNER, limit=10)
    by_id = {item.instance_id: item for item in items}
    assert set(by_id) == {"sound-1", "damaged", "sound-2"}
    assert by_id["damaged"].damage is not None and "cannot be decoded" in by_id["damaged"].damage
    assert by_id["sound-1"].damage is None and by_id["sound-1"].messages
    # The damaged one still carries its good messages and can be committed as failed.
    failed = episode_commit(by_id["damaged"], status=Status.Failed, release=True,
                            failure=FailureDetails("x", "damaged"))
    assert (await backend.commit_orchestrations([failed]))[0].ok


async def test_a_server_refusal_in_a_group_of_client_writes_fails_only_its_caller(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a value gets past the checks and the server refuses it, the other writes grouped in
    the same transaction still succeed (PostgreSQL groups concurrent client writes)."""
    monkeypatch.setattr(checks, "new_instance_problem", lambda new: None)
    import durable.storage.sql as sql_module

    monkeypatch.setattr(sql_module, "new_instance_problem", lambda new: None)
    good = [new_instance(f"group-{n}") for n in range(20)]
    bad = new_instance("group-bad", name="a\x00b")
    outcomes = await asyncio.gather(*(backend.create_instance(n) for n in [*good, bad]),
                                    return_exceptions=True)
    assert all(o is None for o in outcomes[:-1]), outcomes
    if getattr(backend, "settings", None) is not None:  # PostgreSQL text cannot hold a NUL
        assert isinstance(outcomes[-1], InvalidInputError), outcomes[-1]
        assert "refused a value" in str(outcomes[-1])
    for new in good:
        assert await backend.get_instance(new.instance_id) is not None
