"""A hot entity's backlog is applied in episodes of at most ``max_messages_per_lease``
operations, in order, exactly once; an entity signalled after that backlog does not wait for
all of it. Driven round by round (``start(loops=False)`` and ``step()``), so no timing."""

from __future__ import annotations

from typing import Any

import pytest

import durable as df
from durable.client import DurableOrchestrationClient
from durable.storage import open_backend
from durable.worker.worker import Worker, WorkerOptions

app = df.DFApp()
HOT = df.EntityId("journal", "hot")
COLD = df.EntityId("journal", "cold")


@app.entity_trigger(context_name="context")
def journal(context: df.DurableEntityContext) -> None:
    entries = context.get_state(list)
    entries.append(context.get_input())
    context.set_state(entries)


async def state_of(client: DurableOrchestrationClient, entity: df.EntityId) -> Any:
    response = await client.read_entity_state(entity)
    return response.entity_state if response.entity_exists else None


@pytest.mark.parametrize("url", ["memory://", "sqlite"])
async def test_a_hot_entity_is_applied_in_capped_batches_without_holding_up_others(
    url: str, tmp_path: Any
) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'd.db'}" if url == "sqlite" else url)
    await backend.open()
    worker = Worker(app.registry(), backend, WorkerOptions(max_messages_per_lease=10))
    await worker.start(loops=False)
    try:
        client = DurableOrchestrationClient(backend, app.registry(), worker)
        for index in range(35):
            await client.signal_entity(HOT, "append", index)
        await client.signal_entity(COLD, "append", "first")
        # Round 1: both are leased; the hot one brings its first 10 operations only.
        assert await worker.step() == 2
        assert await state_of(client, HOT) == list(range(10))
        assert await state_of(client, COLD) == ["first"]
        # Then 10 per round, in order, until its backlog is gone; nothing applied twice.
        rounds = 1
        while await state_of(client, HOT) != list(range(35)):
            assert await worker.step() == 1
            rounds += 1
            assert rounds <= 4, await state_of(client, HOT)
        assert rounds == 4
        assert await worker.step() == 0
        assert worker.stats["episodes"] == 5
    finally:
        await worker.stop()
        await backend.close()
