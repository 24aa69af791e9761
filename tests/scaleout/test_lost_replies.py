"""A COMMIT that lands while its reply is lost strands no work (docs/scale-out.md, "Leases").

Each test runs a worker whose every connection to PostgreSQL goes through
:class:`tests.pg_proxy.CuttingProxy`, which lets one chosen transaction's COMMIT through, drops
the server's answer and cuts the connection: the transaction is committed, and the worker is
told only that the outcome is unknown. Whatever that transaction leased to the worker (activity
tasks, an instance, claimed activities) must still be run, and the orchestration must finish
with the right output, each activity having run once (nothing ran the lost lease before it was
given up or lapsed).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql as pg_sql

import durable as df
from durable.errors import StorageError
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage.postgres.settings import PostgresSettings
from durable.worker.options import WorkerOptions
from tests.pg_proxy import Cut, CuttingProxy

LEASE_SECONDS = 2.0
LOST_START = f"lost-start-{uuid.uuid4().hex[:8]}"
DEADLINE = 20.0  # seconds for the orchestration to finish after the cut (10 leases)

app = df.DFApp()
_runs: Counter[tuple[str, int]] = Counter()
_runs_lock = threading.Lock()


@app.orchestration_trigger(context_name="context")
def spread(context: df.DurableOrchestrationContext):
    """``width`` -> 0 + 1 + ... + (width - 1), one activity per term, all at once."""
    width = context.get_input()
    terms = yield context.task_all(
        [context.call_activity("term", [context.instance_id, i]) for i in range(width)]
    )
    return sum(terms)


@app.activity_trigger(input_name="args")
def term(args: list) -> int:
    instance_id, index = args
    with _runs_lock:
        _runs[(instance_id, index)] += 1
    return int(index)


_napping = threading.Event()  # set while ``nap`` runs
_wake_up = threading.Event()


@app.orchestration_trigger(context_name="context")
def napper(context: df.DurableOrchestrationContext):
    """One activity that runs until the test wakes it."""
    return (yield context.call_activity("nap", None))


@app.activity_trigger(input_name="unused")
def nap(unused: None) -> str:
    _napping.set()
    _wake_up.wait(timeout=60)
    return "rested"


def runs_of(instance_id: str) -> dict[int, int]:
    with _runs_lock:
        return {index: n for (owner, index), n in _runs.items() if owner == instance_id}


@pytest.fixture
async def proxy(pg_hub_url: str) -> AsyncIterator[CuttingProxy]:
    cutting = await CuttingProxy.for_url(pg_hub_url).start()
    try:
        yield cutting
    finally:
        await cutting.stop()


def worker_options(**changes: float) -> WorkerOptions:
    return WorkerOptions(lease_seconds=LEASE_SECONDS, poll_interval=0.2,
                         **changes)  # type: ignore[arg-type]


async def finished(client: df.DurableOrchestrationClient, instance_id: str,
                   timeout: float = DEADLINE) -> df.DurableOrchestrationStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await client.get_status(instance_id)
        if status.runtime_status in (Status.Completed, Status.Failed, Status.Terminated):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{instance_id} did not finish within {timeout}s after the "
                                 f"cut: {status.runtime_status}")
        await asyncio.sleep(0.05)


async def cut_happened(cut: Cut) -> None:
    async with asyncio.timeout(DEADLINE):
        await cut.done.wait()


def _query(url: str, text: str, params: list[object]) -> tuple | None:
    settings = PostgresSettings(url)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(pg_sql.SQL("SET search_path TO {}").format(
            pg_sql.Identifier(settings.hub)))
        return conn.execute(text, params).fetchone()  # type: ignore[arg-type]


def task_lease_owner(url: str, instance_id: str, task_id: int) -> str | None:
    """Who leases that task row now, read directly from the server."""
    row = _query(url, "SELECT lease_owner FROM tasks WHERE instance_id = %s AND task_id = %s",
                 [instance_id, task_id])
    return row[0] if row else None


async def test_a_lost_reply_to_lease_tasks_strands_no_activity(
    pg_hub_url: str, proxy: CuttingProxy
) -> None:
    """The case of issue 25: lease_tasks committed, its reply lost. The worker never learns
    that it holds the task; it must not keep it (renew it) forever."""
    # The worker keeps one activity for itself at a time, so the other two of the fan-out are
    # left in the table and come back to it through lease_tasks, whose reply is cut.
    cut = proxy.arm(Cut(column="attempt"))
    options = worker_options(activity_backlog=1, max_concurrent_activities=1)
    async with df.Host(app, pg_hub_url, run_worker=False) as front, \
            df.Host(app, proxy.url_for(pg_hub_url), worker_options=options) as host:
        assert host.worker is not None
        instance_id = await front.client.start_new("spread", None, 3)
        await cut_happened(cut)
        [lost] = cut.rows  # lease_tasks took one task (limit 1) ...
        lost_task = int(lost[cut.columns.index("task_id")])
        assert lost[cut.columns.index("instance_id")] == instance_id
        # ... and its COMMIT landed: the row is leased to the worker that was never told.
        assert task_lease_owner(pg_hub_url, instance_id, lost_task) == host.worker.id
        status = await finished(front.client, instance_id)
        assert status.runtime_status is Status.Completed, status.output
        assert status.output == 0 + 1 + 2
    assert runs_of(instance_id) == {0: 1, 1: 1, 2: 1}
    assert len(proxy.cuts) == 1


async def test_a_lost_reply_to_a_commit_that_claims_activities_strands_nothing(
    pg_hub_url: str, proxy: CuttingProxy
) -> None:
    """The episode that schedules the activities commits (claiming them for this worker) and
    its reply is lost: the worker gives the claims back and replays the instance from
    storage."""
    cut = proxy.arm(Cut(sent="INSERT INTO tasks"))
    async with df.Host(app, pg_hub_url, run_worker=False) as front, \
            df.Host(app, proxy.url_for(pg_hub_url), worker_options=worker_options()) as host:
        assert host.worker is not None
        instance_id = await front.client.start_new("spread", None, 3)
        await cut_happened(cut)
        status = await finished(front.client, instance_id)
        assert status.runtime_status is Status.Completed, status.output
        assert status.output == 0 + 1 + 2
    assert runs_of(instance_id) == {0: 1, 1: 1, 2: 1}


async def test_a_lost_reply_to_a_lease_of_instances_strands_nothing(
    pg_hub_url: str, proxy: CuttingProxy
) -> None:
    """The poll that leases the new instance commits, and its reply is lost."""
    cut = proxy.arm(Cut(column="version"))  # lease_ready_instances and lease_instances
    async with df.Host(app, pg_hub_url, run_worker=False) as front, \
            df.Host(app, proxy.url_for(pg_hub_url), worker_options=worker_options()):
        instance_id = await front.client.start_new("spread", None, 2)
        await cut_happened(cut)
        assert [row[cut.columns.index("instance_id")] for row in cut.rows] == [instance_id]
        status = await finished(front.client, instance_id)
        assert status.runtime_status is Status.Completed, status.output
        assert status.output == 0 + 1
    assert runs_of(instance_id) == {0: 1, 1: 1}


async def test_a_lost_reply_to_a_start_leased_to_the_local_worker_strands_nothing(
    pg_hub_url: str, proxy: CuttingProxy
) -> None:
    """A start through a client beside a worker leases the new instance to that worker in
    the same transaction; the COMMIT lands, its reply is lost. The caller is told the outcome
    is unknown; the instance runs anyway."""
    cut = proxy.arm(Cut(sent="WITH new AS"))  # grouped.sql: start_instances
    async with df.Host(app, proxy.url_for(pg_hub_url),
                       worker_options=worker_options()) as host, \
            df.Host(app, pg_hub_url, run_worker=False) as front:
        with pytest.raises(StorageError, match="outcome is unknown"):
            await host.client.start_new("spread", LOST_START, 2)
        assert cut.done.is_set()
        status = await finished(front.client, LOST_START)
        assert status.runtime_status is Status.Completed, status.output
        assert status.output == 0 + 1
    assert runs_of(LOST_START) == {0: 1, 1: 1}


async def test_a_worker_keeps_renewing_every_lease_it_knows_of(pg_hub_url: str) -> None:
    """The other side of renewing by name: what the worker does hold (the instance it caches,
    the activity it runs) stays leased to it for many lease lengths, and nothing is taken
    over or run twice."""
    _napping.clear()
    _wake_up.clear()
    async with df.Host(app, pg_hub_url, run_worker=False) as front, \
            df.Host(app, pg_hub_url, worker_options=worker_options()) as host:
        assert host.worker is not None
        instance_id = await front.client.start_new("napper", None, None)
        deadline = time.monotonic() + DEADLINE
        while not _napping.is_set():
            assert time.monotonic() < deadline, "the activity never started"
            await asyncio.sleep(0.02)
        napping_since = time.time()
        # Let three leases' worth of time pass while the activity runs (what is tested is
        # what happens over that time; nothing is waited for).
        await asyncio.sleep(3 * LEASE_SECONDS)
        now = time.time()
        task = _query(pg_hub_url, "SELECT lease_owner, lease_expires_at FROM tasks "
                                  "WHERE instance_id = %s", [instance_id])
        instance = _query(pg_hub_url, "SELECT lease_owner, lease_expires_at FROM instances "
                                      "WHERE instance_id = %s", [instance_id])
        assert task is not None and instance is not None
        for owner, expires in (task, instance):
            assert owner == host.worker.id
            assert expires > now > napping_since + LEASE_SECONDS  # renewed, and not lapsed
        _wake_up.set()
        status = await finished(front.client, instance_id)
        assert status.runtime_status is Status.Completed, status.output
        assert status.output == "rested"
        assert host.worker.stats["lease_lost"] == 0
        assert host.worker.stats["activities"] == 1
