"""Messages between instances one worker holds are handed over in memory, never out of order.

When an episode's commit sends a message to an instance this worker holds (an entity call and
its answer, say), the receiver's next episode gets it straight from memory instead of a lease
that reads it back from the inbox (durable/worker/committing.py, ``_hand_over``). The message
is in the inbox all the same, and the receiver's commit deletes it; if an older message is
still waiting there (sent by another process, which hints nobody here), that commit fails its
order check and the receiver is read again, so both are applied in the order they were sent.

SQLite and the in-memory store only (PostgreSQL does not report message ids, so nothing is
handed over there). Polls are driven by the worker's own timer, set to an hour: a message sent
without a hint stays unread until something else leases its instance.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import durable as df
from durable.client import DurableOrchestrationClient
from durable.history import EventRaised
from durable.orchestration.entity_ids import REQUEST_EVENT, EntityRequest
from durable.storage import open_backend
from durable.storage.base import Backend, Message
from durable.worker.worker import Worker, WorkerOptions
from tests.e2e.conftest import wait_until

app = df.DFApp()
JOURNAL = df.EntityId("journal", "one")


@app.entity_trigger(context_name="context")
def journal(context: df.DurableEntityContext) -> None:
    entries = context.get_state(list)
    entries.append(context.get_input())
    context.set_state(entries)
    context.set_result(len(entries))


@app.orchestration_trigger(context_name="context")
def five_calls(context: df.DurableOrchestrationContext):
    results = []
    for n in range(5):
        results.append((yield context.call_entity(JOURNAL, "append", n)))
    return results


@app.orchestration_trigger(context_name="context")
def before_and_after(context: df.DurableOrchestrationContext):
    yield context.call_entity(JOURNAL, "append", "a")
    yield context.wait_for_external_event("go")
    yield context.call_entity(JOURNAL, "append", "c")
    return "done"


@pytest.fixture(params=["sqlite", "memory"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path
                ) -> AsyncIterator[tuple[Worker, DurableOrchestrationClient, Backend]]:
    url = f"sqlite:///{tmp_path / 'durable.db'}" if request.param == "sqlite" else "memory://"
    backend = open_backend(url)
    await backend.open()
    worker = Worker(app.registry(), backend, WorkerOptions(poll_interval=3600))
    client = DurableOrchestrationClient(backend, app.registry(), worker)
    await worker.start()
    try:
        yield worker, client, backend
    finally:
        await worker.stop()
        await backend.close()


async def journal_of(client: DurableOrchestrationClient) -> Any:
    return (await client.read_entity_state(JOURNAL)).entity_state


async def test_calls_between_held_instances_are_handed_over(setup: Any) -> None:
    worker, client, _ = setup
    instance_id = await client.start_new("five_calls")
    status = await client.wait_for_completion(instance_id, timeout=30)
    assert status.output == [1, 2, 3, 4, 5]
    assert await journal_of(client) == [0, 1, 2, 3, 4]
    # Only the first request goes through a lease (the entity is not held yet); its answer
    # and every later request and answer are handed over.
    assert worker.stats["handed_over"] == 9, worker.stats
    assert worker.stats["behind"] == 0


async def test_an_older_message_in_the_inbox_is_applied_first(setup: Any) -> None:
    worker, client, backend = setup
    instance_id = await client.start_new("before_and_after")

    async def waiting_for_go() -> bool:
        return await journal_of(client) == ["a"] and worker.is_idle
    await wait_until(waiting_for_go, what="the first call")
    # "b", as another process would send it: into the inbox, with no hint to this worker.
    request = EntityRequest("from-elsewhere", "append", signal=True, input='"b"')
    await backend.send_entity_message(Message(
        JOURNAL.instance_id, EventRaised(timestamp=time.time(), name=REQUEST_EVENT,
                                         input=request.to_json())))
    # The orchestration now sends "c": handed over, but "b" is older and still waiting.
    await client.raise_event(instance_id, "go")
    status = await client.wait_for_completion(instance_id, timeout=30)
    assert status.output == "done"
    assert await journal_of(client) == ["a", "b", "c"]
    assert worker.stats["behind"] == 1, worker.stats
