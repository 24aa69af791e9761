"""Operator queries on every backend: name filter, newest first, one-status paging, status
counts, backlog, batched purge (the contract the CLI, dashboard and metrics rely on)."""

from __future__ import annotations

import time

import pytest

from durable.history import OrchestratorStarted
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage import sql
from durable.storage.base import Backend, InstanceQuery, NewTask, OrchestrationCommit
from tests.storage.test_backend_contract import OWNER, lease_one, new_instance, start_running


async def _finish(backend: Backend, instance_id: str, name: str, created_at: float,
                  status: Status = Status.Completed) -> None:
    await backend.create_instance(new_instance(instance_id, name=name, created_at=created_at))
    item = await lease_one(backend, instance_id)
    [outcome] = await backend.commit_orchestrations([
        OrchestrationCommit(instance_id, item.execution_id, item.revision, OWNER,
                            [OrchestratorStarted(timestamp=time.time())], status,
                            consumed_messages=[m.message_id for m in item.messages],
                            release=True)
    ])
    assert outcome.ok


async def _all_pages(backend: Backend, query: InstanceQuery) -> list[str]:
    seen: list[str] = []
    while True:
        page = await backend.query_instances(query)
        seen.extend(r.instance_id for r in page.instances)
        if page.continuation_token is None:
            return seen
        query.continuation_token = page.continuation_token


async def test_filters_by_name_and_status_in_either_order(backend: Backend) -> None:
    base = time.time() - 100
    for index in range(12):
        name = "alpha" if index % 3 else "beta"
        status = Status.Failed if index % 4 == 0 else Status.Completed
        await _finish(backend, f"i-{index:02d}", name, base + index, status)
    await backend.create_instance(new_instance("pending-alpha", name="alpha",
                                               created_at=base + 50))
    alpha = [f"i-{i:02d}" for i in range(12) if i % 3]
    assert await _all_pages(backend, InstanceQuery(name="alpha", page_size=3)) == [
        *alpha, "pending-alpha"]
    completed_alpha = [f"i-{i:02d}" for i in range(12) if i % 3 and i % 4]
    query = InstanceQuery(name="alpha", statuses=[Status.Completed], page_size=2)
    assert await _all_pages(backend, query) == completed_alpha
    newest = InstanceQuery(name="alpha", statuses=[Status.Completed], page_size=2,
                           newest_first=True)
    assert await _all_pages(backend, newest) == completed_alpha[::-1]
    failed = InstanceQuery(statuses=[Status.Failed], page_size=1, newest_first=True)
    assert await _all_pages(backend, failed) == ["i-08", "i-04", "i-00"]
    several = InstanceQuery(statuses=[Status.Failed, Status.Pending], page_size=2)
    assert await _all_pages(backend, several) == ["i-00", "i-04", "i-08", "pending-alpha"]
    window = InstanceQuery(name="beta", created_from=base + 2.5, created_to=base + 9.5,
                           newest_first=True)
    assert await _all_pages(backend, window) == ["i-09", "i-06", "i-03"]
    assert await _all_pages(backend, InstanceQuery(name="nobody")) == []


def test_every_query_variant_exists_in_both_backends() -> None:
    names = {sql.query_variant(InstanceQuery(statuses=s, name=n, newest_first=d))
             for s in (None, [Status.Running], [Status.Running, Status.Failed])
             for n in (None, "x") for d in (False, True)}
    assert len(names) == 8
    for package in ("durable.storage.sqlite", "durable.storage.postgres"):
        assert names <= set(sql.load_queries(package)), package


async def test_counts_by_status(backend: Backend) -> None:
    assert await backend.count_by_status() == {}
    base = time.time()
    for index in range(3):
        await _finish(backend, f"c-{index}", "orch", base + index)
    await _finish(backend, "f-0", "orch", base, Status.Failed)
    await start_running(backend, "r-0")
    await backend.create_instance(new_instance("p-0"))
    assert await backend.count_by_status() == {
        Status.Completed: 3, Status.Failed: 1, Status.Running: 1, Status.Pending: 1}


async def test_backlog_counts_waiting_work_and_its_age(backend: Backend) -> None:
    empty = await backend.backlog()
    assert (empty.messages, empty.activities, empty.live_workers) == (0, 0, 0)
    created = time.time() - 5
    await backend.create_instance(new_instance("waiting", created_at=created))
    await start_running(backend, "busy", tasks=[NewTask(1, "act", None, claimed=False),
                                                NewTask(2, "act", None, claimed=True)])
    backlog = await backend.backlog()
    assert backlog.messages == 1  # the ExecutionStarted of "waiting"
    assert backlog.oldest_message_age >= 0
    assert backlog.activities == 1  # the unclaimed task; the claimed one is running
    assert backlog.live_workers == 1  # OWNER holds "busy" and its claimed task
    await backend.release_all(OWNER)
    assert (await backend.backlog()).live_workers == 0


async def test_purge_by_filter_runs_in_batches(backend: Backend,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "PURGE_BATCH", 3)
    base = time.time() - 1000
    for index in range(10):
        await _finish(backend, f"old-{index}", "orch", base + index)
    await _finish(backend, "new", "orch", base + 500)
    await start_running(backend, "running-old")
    assert await backend.purge_instances(base - 1, base + 100, None) == 10
    remaining = await _all_pages(backend, InstanceQuery())
    assert sorted(remaining) == ["new", "running-old"]
    assert await backend.get_history("old-3") == []
    assert await backend.purge_instances(None, None, [Status.Failed]) == 0
    assert await backend.purge_instances(None, None, [Status.Completed]) == 1
