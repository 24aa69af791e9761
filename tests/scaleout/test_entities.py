"""Entities on several ``durable worker`` processes sharing one PostgreSQL hub."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import durable as df
from tests.scaleout.app import app
from tests.scaleout.harness import WorkerProcess, count_completed, leases_held

Launch = Callable[..., list[WorkerProcess]]
KEYS = ["north", "south", "east", "west"]


async def test_kill_9_of_a_worker_mid_run_leaves_the_counters_exact(
    pg_hub_url: str, launch: Launch
) -> None:
    """40 orchestrations x 25 call_entity plus 200 client signals over 4 counters, on 3
    workers; one worker holding entity and orchestration leases is killed mid-run. Every
    operation must land exactly once: the counters end exact."""
    workers = launch(pg_hub_url, 3, lease_seconds=3)
    plan = [(f"tally-{i:02d}", KEYS[i % 4]) for i in range(40)]
    async with df.Host(app, pg_hub_url, run_worker=False) as host:
        await asyncio.gather(*(host.client.start_new("tally_up", iid, [key, 25])
                               for iid, key in plan))
        await asyncio.gather(*(host.client.signal_entity(df.EntityId("tally", KEYS[i % 4]),
                                                         "add", 1) for i in range(200)))
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            for candidate in workers:
                held, _ = leases_held(pg_hub_url, candidate.worker_id)
                if held >= 3:
                    victim = candidate
                    break
            else:
                await asyncio.sleep(0.02)
        assert victim is not None, "no worker held work"
        assert await count_completed(host.backend, "tally-") < 40
        victim.kill()
        survivors = [w for w in workers if w is not victim]

        deadline = time.monotonic() + 90
        while await count_completed(host.backend, "tally-") < 40:
            assert time.monotonic() < deadline, "the orchestrations never finished"
            for worker in survivors:
                assert worker.process.poll() is None, worker.log()[-3000:]
            await asyncio.sleep(0.1)
        for iid, _ in plan:
            status = await host.client.get_status(iid)
            assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed, iid

        async def counters() -> list[int]:
            return [(await host.client.read_entity_state(df.EntityId("tally", k))).entity_state
                    for k in KEYS]

        expected = [10 * 25 + 50] * 4  # per key: 10 orchestrations x 25, plus 50 signals
        while await counters() != expected:
            assert time.monotonic() < deadline, await counters()
            await asyncio.sleep(0.1)
