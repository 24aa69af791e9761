"""An activity's result comes after every message stored before it, whichever way it travels.

A result handed over in memory never enters the inbox, so the inbox's order cannot place it.
An activity that raises an event at its own instance stores the event before it returns; the
orchestration must see the event first (``task_any``'s winner), as on Azure. Two ways keep it:
an instance hinted (something was stored for it in this process) is leased before its results
are applied, and that episode applies the inbox's messages, then the results; a message stored
without a hint (another process) fails the results' commit (``EVERY_MESSAGE``), which then
travel through the inbox, after it. Polls are set to an hour so nothing else reads the inbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import durable as df
from durable.client import DurableOrchestrationClient
from durable.history import EventRaised
from durable.storage import open_backend
from durable.storage.base import Backend, Message
from durable.worker.worker import Worker, WorkerOptions
from tests.conftest import BACKEND_URLS

app = df.DFApp()
_handles: dict[str, Any] = {}


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    work = context.call_activity(context.get_input(), context.instance_id)
    ping = context.wait_for_external_event("Ping")
    winner = yield context.task_any([work, ping])
    return "event first" if winner == ping else "activity first"


@app.activity_trigger(input_name="instance_id")
async def ping_through_the_client(instance_id: str) -> str:
    """Raises the event as an app does: through this process's client (which hints)."""
    await _handles["client"].raise_event(instance_id, "Ping", "pong")
    return "pinged"


@app.activity_trigger(input_name="instance_id")
async def ping_from_elsewhere(instance_id: str) -> str:
    """Stores the event as another process would: straight into storage, no hint."""
    backend: Backend = _handles["other"]
    record = await backend.get_instance(instance_id)
    assert record is not None
    await backend.send_message(Message(instance_id, EventRaised(
        timestamp=0.0, name="Ping", input='"pong"'), record.execution_id))
    return "pinged"


@pytest.fixture(params=sorted(BACKEND_URLS))
async def worker(request: pytest.FixtureRequest, tmp_path: Any
                 ) -> AsyncIterator[Worker]:
    url = BACKEND_URLS[request.param](tmp_path)
    backend = open_backend(url)
    await backend.open()
    # Another handle on the same storage, as another process has (the in-memory store is
    # shared only within its one handle, so there it is the same object).
    other = backend if url == "memory://" else open_backend(url)
    if other is not backend:
        await other.open()
    worker = Worker(app.registry(), backend, WorkerOptions(poll_interval=3600))
    _handles["client"] = DurableOrchestrationClient(backend, app.registry(), worker)
    _handles["other"] = other
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()
        if other is not backend:
            await other.close()
        await backend.close()
        _handles.clear()


async def outcome(activity: str) -> str:
    client: DurableOrchestrationClient = _handles["client"]
    instance_id = await client.start_new("race", None, activity)
    status = await client.wait_for_completion(instance_id, timeout=20)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status
    return str(status.output)


async def test_a_hinted_event_is_read_before_the_result(worker: Worker) -> None:
    outcomes = [await outcome("ping_through_the_client") for _ in range(5)]
    assert outcomes == ["event first"] * 5
    if not str(getattr(worker.backend, "url", "")).startswith("postgres"):
        # Read in order, nothing refused. (On PostgreSQL a poll that LISTEN woke for the same
        # event can hold the instance's row while the hinted lease looks, which then skips it;
        # the results' commit is refused and they follow the event through the inbox.)
        assert worker.stats["behind"] == 0


async def test_an_event_stored_elsewhere_still_comes_first(worker: Worker) -> None:
    """Nobody here is told of the event. Either a poll reads it before the result is in hand
    (a backend that wakes polls on other connections' writes may), or the result's commit is
    refused and the result travels through the inbox behind it: the event comes first."""
    outcomes = [await outcome("ping_from_elsewhere") for _ in range(5)]
    assert outcomes == ["event first"] * 5


@app.orchestration_trigger(context_name="context")
def count_pings(context: df.DurableOrchestrationContext):
    work = context.call_activity("ping_three_times", context.instance_id)
    pings = 0
    while True:
        ping = context.wait_for_external_event("Ping")
        winner = yield context.task_any([work, ping])
        if winner == work:
            return pings
        pings += 1


@app.activity_trigger(input_name="instance_id")
async def ping_three_times(instance_id: str) -> str:
    backend: Backend = _handles["other"]
    record = await backend.get_instance(instance_id)
    assert record is not None
    for _ in range(3):
        await backend.send_message(Message(instance_id, EventRaised(
            timestamp=0.0, name="Ping", input='"pong"'), record.execution_id))
    _handles["worker"].hint(instance_id)
    return "pinged"


async def test_results_wait_until_every_message_before_them_was_read(tmp_path: Any) -> None:
    """One message per lease: the lease that leaves messages in the inbox does not apply the
    results in hand; the one that reads the last message does, after it. Stepped by hand, so
    each round is deterministic."""
    url = BACKEND_URLS["sqlite"](tmp_path)
    backend, other = open_backend(url), open_backend(url)
    await backend.open()
    await other.open()
    worker = Worker(app.registry(), backend, WorkerOptions(max_messages_per_lease=1))
    client = DurableOrchestrationClient(backend, app.registry(), worker)
    _handles.update(other=other, worker=worker)
    await worker.start(loops=False)
    try:
        instance_id = await client.start_new("count_pings")
        for _ in range(8):
            await worker.step()
        status = await client.get_status(instance_id)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status
        assert status.output == 3  # all three pings, then the result
        assert worker.stats["behind"] == 0
    finally:
        await worker.stop()
        await other.close()
        await backend.close()
        _handles.clear()
