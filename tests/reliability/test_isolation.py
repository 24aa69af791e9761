"""Defence in depth: whatever fails inside durable for one instance costs that instance alone.

The replay engine fails an instance itself for the failures it knows about; these tests make
durable fail where it is not supposed to (an exception escaping the engine, a batch commit
that raises, a commit storage refuses, a stored message that cannot be decoded) by injecting
the fault into one named instance of a real Host on each real backend, and check that the
instance backs off, is parked as Failed with the cause (or finishes, if the fault was
transient), that terminate and purge still work on it, and that every other instance
completes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

import durable as df
from durable.history import ExecutionStarted
from durable.orchestration.runtime import OrchestrationRuntime
from durable.storage.base import Backend
from durable.storage.sqlite.backend import SQLiteBackend
from durable.worker import episodes as episodes_module
from tests.e2e.conftest import FAST, wait_for_status

Status = df.OrchestrationRuntimeStatus

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def steps(context: df.DurableOrchestrationContext):
    results = []
    for step in range(context.get_input() or 2):
        results.append((yield context.call_activity("echo", step)))
    return results


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    try:
        return (yield context.call_sub_orchestrator("steps", 1, instance_id="boom-child"))
    except df.TaskFailedError as exc:
        return f"child failed: {exc}"


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


def _instance_of(runtime: OrchestrationRuntime, events: list[Any]) -> str:
    if runtime.context is not None:
        return runtime.context.instance_id
    return next((e.instance_id for e in events if isinstance(e, ExecutionStarted)), "")


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[str], bool]]:
    """``faults["episode"] = predicate``: episodes of matching instances raise."""
    rules: dict[str, Callable[[str], bool]] = {}
    original = OrchestrationRuntime.run_episode

    def run_episode(self: OrchestrationRuntime, events: Any, now: float) -> Any:
        events = list(events)
        rule = rules.get("episode")
        if rule is not None and rule(_instance_of(self, events)):
            raise RuntimeError(f"injected fault in {_instance_of(self, events)}")
        return original(self, events, now)

    monkeypatch.setattr(OrchestrationRuntime, "run_episode", run_episode)
    return rules


def host(storage_url: str, **options: Any) -> df.Host:
    settings = {**FAST, "poison_attempts": 3, "poison_retry_delay": 0.05, **options}
    return df.Host(app, storage=storage_url, **settings)


async def start_healthy(client: df.DurableOrchestrationClient, count: int = 40) -> list[str]:
    return list(await asyncio.gather(
        *(client.start_new("steps", f"healthy-{n:02d}", 3) for n in range(count))))


async def all_completed(client: df.DurableOrchestrationClient, ids: list[str]) -> None:
    for instance_id in ids:
        status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.runtime_status is Status.Completed, (instance_id, status.output)
        assert status.output == [0, 1, 2]


async def test_an_instance_that_always_fails_is_parked_after_its_attempts(
    storage_url: str, faults: dict[str, Callable[[str], bool]]
) -> None:
    faults["episode"] = lambda instance_id: instance_id == "boom"
    async with host(storage_url) as running:
        client = running.client
        await client.start_new("steps", "boom", 3)
        healthy = await start_healthy(client)
        await all_completed(client, healthy)
        failed = await client.wait_for_completion("boom", timeout=30)
        assert failed.runtime_status is Status.Failed
        assert "after its episode failed 3 times" in failed.output
        assert "injected fault in boom" in failed.output
        assert running.worker is not None
        assert running.worker.stats["strikes"] == 3
        assert running.worker.stats["parked"] == 1
        history = await client.get_status("boom", show_history=True)
        assert [e["EventType"] for e in history.history or []][-1] == "ExecutionCompleted"


async def test_a_transient_fault_is_retried_and_the_instance_finishes(
    storage_url: str, faults: dict[str, Callable[[str], bool]]
) -> None:
    left = {"flaky": 2}

    def flaky(instance_id: str) -> bool:
        if left.get(instance_id, 0) > 0:
            left[instance_id] -= 1
            return True
        return False

    faults["episode"] = flaky
    async with host(storage_url) as running:
        await running.client.start_new("steps", "flaky", 3)
        done = await running.client.wait_for_completion("flaky", timeout=30)
        assert done.runtime_status is Status.Completed and done.output == [0, 1, 2]
        assert running.worker is not None and running.worker.stats["parked"] == 0
        assert running.worker.stats["strikes"] == 2


async def test_terminate_and_purge_work_on_an_instance_backing_off(
    storage_url: str, faults: dict[str, Callable[[str], bool]]
) -> None:
    faults["episode"] = lambda instance_id: instance_id.startswith("stuck")
    async with host(storage_url, poison_attempts=100, poison_retry_delay=0.5) as running:
        client = running.client
        await client.start_new("steps", "stuck-terminated", 3)
        await client.start_new("steps", "stuck-purged", 3)
        assert running.worker is not None
        for _ in range(200):
            if running.worker.stats["strikes"] >= 4:
                break
            await asyncio.sleep(0.02)
        await client.terminate("stuck-terminated", "operator says stop")
        done = await wait_for_status(client, "stuck-terminated", Status.Terminated)
        assert done.output == "operator says stop"
        assert (await client.purge_instance_history("stuck-purged")).instances_deleted == 1
        assert not await client.get_status("stuck-purged")
        healthy = await start_healthy(client, 5)
        await all_completed(client, healthy)
        assert not await client.get_status("stuck-purged")  # nothing brought it back


async def test_a_parked_sub_orchestration_fails_its_parent_task(
    storage_url: str, faults: dict[str, Callable[[str], bool]]
) -> None:
    faults["episode"] = lambda instance_id: instance_id == "boom-child"
    async with host(storage_url) as running:
        await running.client.start_new("parent", "the-parent")
        done = await running.client.wait_for_completion("the-parent", timeout=30)
        assert done.runtime_status is Status.Completed
        assert done.output.startswith("child failed:") and "injected fault" in done.output


class FaultyCommits:
    """A real backend whose batch commit raises when it holds an episode of a marked instance
    (the way an unforeseen refusal of one value would fail a whole batch). The minimal commit
    that parks the instance holds none of the episode's values, so it goes through."""

    def __init__(self, backend: Backend, marked: str) -> None:
        self._backend = backend
        self._marked = marked
        self.raised = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def commit_orchestrations(self, commits: Any, **kwargs: Any) -> Any:
        if any(commit.instance_id.startswith(self._marked)
               and commit.status is not Status.Failed for commit in commits):
            self.raised += 1
            raise TypeError("injected: the batch cannot be written")
        return await self._backend.commit_orchestrations(commits, **kwargs)


async def test_a_batch_commit_that_raises_fails_only_the_culprit(storage_url: str) -> None:
    async with host(storage_url) as running:
        assert running.worker is not None
        faulty = FaultyCommits(running.worker.backend, "bad-commit")
        running.worker.backend = faulty  # type: ignore[assignment]
        client = running.client
        starts = [client.start_new("steps", f"bad-commit-{n}", 3) for n in range(3)]
        healthy_ids = [f"healthy-{n:02d}" for n in range(60)]
        starts += [client.start_new("steps", iid, 3) for iid in healthy_ids]
        await asyncio.gather(*starts)
        await all_completed(client, healthy_ids)
        for n in range(3):
            failed = await client.wait_for_completion(f"bad-commit-{n}", timeout=30)
            assert failed.runtime_status is Status.Failed, failed.output
            assert "committing an episode" in failed.output and "injected" in failed.output
        assert faulty.raised >= 3


async def test_a_commit_storage_refuses_fails_the_instance_at_once(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = episodes_module.commit_for

    def commit_for(owned: Any, decision: Any, **kwargs: Any) -> Any:
        commit = original(owned, decision, **kwargs)
        if owned.instance_id == "refused":
            commit.custom_status = json.dumps("\udcff", ensure_ascii=False)  # as a bug would
        return commit

    monkeypatch.setattr(episodes_module, "commit_for", commit_for)
    async with host(storage_url) as running:
        client = running.client
        await client.start_new("steps", "refused", 3)
        healthy = await start_healthy(client)
        await all_completed(client, healthy)
        failed = await client.wait_for_completion("refused", timeout=30)
        assert failed.runtime_status is Status.Failed
        assert "The custom status of instance 'refused' cannot be stored" in failed.output
        assert "after its episode failed once" in failed.output
        assert running.worker is not None and running.worker.stats["strikes"] == 1


def insert_undecodable_message(backend: Backend, storage_url: str, instance_id: str) -> None:
    """Write a message this version of durable cannot decode, straight into the inbox."""
    if isinstance(backend, SQLiteBackend):
        with backend.connect_directly() as conn:
            conn.execute("INSERT INTO inbox (instance_id, execution_id, visible_at, event) "
                         "VALUES (?, NULL, 0, ?)", (instance_id, '{"type": "FromTheFuture"}'))
        return
    import psycopg
    from psycopg import sql

    from durable.storage.postgres.settings import PostgresSettings

    settings = PostgresSettings(storage_url)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.hub)))
        conn.execute("INSERT INTO inbox (instance_id, execution_id, visible_at, event) "
                     "VALUES (%s, NULL, 0, %s)", [instance_id, "{not json"])


async def test_a_stored_message_that_cannot_be_decoded_fails_only_its_instance(
    storage_url: str,
) -> None:
    async with host(storage_url) as running:
        client = running.client
        ids = [f"event-{n:02d}" for n in range(20)]
        for instance_id in ids:
            await client.start_new("wait_for_event", instance_id)
        for instance_id in ids:
            await wait_for_status(client, instance_id, Status.Running)
        insert_undecodable_message(running.backend, storage_url, "event-07")
        await asyncio.gather(*(client.raise_event(i, "go", i) for i in ids if i != "event-07"))
        for instance_id in ids:
            status = await client.wait_for_completion(instance_id, timeout=30)
            if instance_id == "event-07":
                assert status.runtime_status is Status.Failed
                assert "cannot be decoded" in status.output, status.output
            else:
                assert status.runtime_status is Status.Completed, status.output
                assert status.output == instance_id


@app.orchestration_trigger(context_name="context")
def wait_for_event(context: df.DurableOrchestrationContext):
    return (yield context.wait_for_external_event("go"))


@app.entity_trigger(context_name="context")
def Tally(context: df.DurableEntityContext):
    total = context.get_state(lambda: 0) + (context.get_input() or 0)
    context.set_state(total)
    context.set_result(total)


async def test_an_entity_batch_that_keeps_failing_is_dropped_and_the_entity_serves_on(
    storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entity has no status to fail: after its attempts, the batch it failed on is
    dropped, its state is kept, and the operations after it run."""
    from durable.orchestration.entity_runtime import EntityRuntime

    original = EntityRuntime.run_episode

    def run_episode(self: EntityRuntime, events: Any, now: float) -> Any:
        events = list(events)
        if any("poison" in str(getattr(e, "input", "")) for e in events):
            raise RuntimeError("injected fault in an entity batch")
        return original(self, events, now)

    monkeypatch.setattr(EntityRuntime, "run_episode", run_episode)
    tally = df.EntityId("Tally", "t1")
    async with host(storage_url) as running:
        client = running.client
        await client.signal_entity(tally, "add", 5)

        async def state_is(value: int) -> bool:
            return (await client.read_entity_state(tally)).entity_state == value

        for _ in range(500):
            if await state_is(5):
                break
            await asyncio.sleep(0.01)
        assert await state_is(5)
        await client.signal_entity(tally, "poison", 100)
        assert running.worker is not None
        for _ in range(500):
            if running.worker.stats["parked"]:
                break
            await asyncio.sleep(0.01)
        assert running.worker.stats["parked"] == 1 and running.worker.stats["strikes"] == 3
        await client.signal_entity(tally, "add", 2)
        for _ in range(500):
            if await state_is(7):
                break
            await asyncio.sleep(0.01)
        assert await state_is(7)  # the poison batch is gone, the state kept, the next op ran
