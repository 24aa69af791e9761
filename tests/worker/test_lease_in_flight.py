"""A worker never leases an instance again while it holds that instance's messages.

Messages leave the inbox only when the episode that consumed them commits, so a second lease
of an instance whose lease read, waiting item or episode is still in flight reads the same
messages again: wasted work (a hot entity once re-read its whole inbox per signal), and an
item that is stale by the time it could run. These tests hold a lease read open on purpose
(an asyncio gate, no sleeps), send more work for the instance meanwhile, and then check that
every inbox message was leased exactly once.

SQLite and the in-memory store only: there the worker's polls are driven by its own timer (set
to an hour here), so only targeted leases run. On PostgreSQL a poll woken by the client's own
NOTIFY can read a just-signalled instance before the client's hint reaches the worker, a known
overlap this test is not about (that poll's item is then stale and dropped).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import durable as df
from durable.client import DurableOrchestrationClient
from durable.storage import open_backend
from durable.storage.base import Backend
from durable.worker.worker import Worker, WorkerOptions

app = df.DFApp()
COUNTER = df.EntityId("counter", "hot")
OTHER = df.EntityId("counter", "cold")


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0) + context.get_input()
    context.set_state(value)
    context.set_result(value)


class GatedLeases:
    """Wraps a backend's ``lease_orchestrations``: records every message each lease returned,
    and holds the first targeted lease at the gate until the test opens it."""

    def __init__(self, backend: Backend) -> None:
        self.leased: Counter[int] = Counter()
        self.polls_done = 0
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self._held = False
        original = backend.lease_orchestrations

        async def lease(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("instance_ids") is not None and not self._held:
                self._held = True
                self.entered.set()
                await self.gate.wait()
            items = await original(*args, **kwargs)
            for item in items:
                self.leased.update(m.message_id for m in item.messages)
            if kwargs.get("instance_ids") is None:
                self.polls_done += 1
            return items

        backend.lease_orchestrations = lease  # type: ignore[method-assign]


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0
                ) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(params=["sqlite", "memory"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path
                ) -> AsyncIterator[tuple[Worker, DurableOrchestrationClient, GatedLeases]]:
    url = f"sqlite:///{tmp_path / 'durable.db'}" if request.param == "sqlite" else "memory://"
    backend = open_backend(url)
    await backend.open()
    leases = GatedLeases(backend)
    worker = Worker(app.registry(), backend, WorkerOptions(poll_interval=3600))
    client = DurableOrchestrationClient(backend, app.registry(), worker)
    await worker.start()
    try:
        # The first poll runs at start; let it finish before any work exists.
        async def polled() -> bool:
            return leases.polls_done >= 1
        await until(polled, "the first poll")
        yield worker, client, leases
    finally:
        leases.gate.set()
        await worker.stop()
        await backend.close()


async def state_of(client: DurableOrchestrationClient, entity: df.EntityId) -> Any:
    response = await client.read_entity_state(entity)
    return response.entity_state if response.entity_exists else None


async def test_hints_during_a_lease_read_do_not_lease_it_again(setup: Any) -> None:
    worker, client, leases = setup
    await client.signal_entity(COUNTER, "add", 1)

    async def entered() -> bool:
        return leases.entered.is_set()
    await until(entered, "the lease read of the entity")
    # More operations while its lease read is in flight: each hints the worker again.
    for _ in range(5):
        await client.signal_entity(COUNTER, "add", 1)
    leases.gate.set()

    async def applied() -> bool:
        return await state_of(client, COUNTER) == 6 and worker.is_idle
    await until(applied, "all 6 operations applied")
    # The held read saw all 6 messages; the hints that came meanwhile must wait for its
    # episode's commit instead of leasing (and reading) the same messages once more.
    assert sorted(leases.leased.values()) == [1] * 6, leases.leased


async def test_work_for_others_still_flows_while_one_is_held(setup: Any) -> None:
    worker, client, leases = setup
    await client.signal_entity(COUNTER, "add", 1)

    async def entered() -> bool:
        return leases.entered.is_set()
    await until(entered, "the lease read of the hot entity")
    await client.signal_entity(OTHER, "add", 5)

    async def other_applied() -> bool:
        return await state_of(client, OTHER) == 5
    await until(other_applied, "the other entity's operation, while the first is held")
    await client.signal_entity(COUNTER, "add", 1)
    leases.gate.set()

    async def applied() -> bool:
        return await state_of(client, COUNTER) == 2 and worker.is_idle
    await until(applied, "both operations of the held entity")
    assert sorted(leases.leased.values()) == [1] * 3, leases.leased
