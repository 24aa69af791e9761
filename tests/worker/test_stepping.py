"""A worker driven by hand (``start(loops=False)`` and ``step()``): each round is deterministic,
so a test can check what happens episode by episode."""

from __future__ import annotations

import durable as df
from durable.client import DurableOrchestrationClient
from durable.storage import open_backend
from durable.worker.worker import Worker

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("double", 1)
    second = yield context.call_activity("double", first)
    return second


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


async def test_each_step_runs_one_round_to_the_end() -> None:
    backend = open_backend("memory://")
    await backend.open()
    worker = Worker(app.registry(), backend)
    await worker.start(loops=False)
    try:
        client = DurableOrchestrationClient(backend, app.registry(), worker)
        instance_id = await client.start_new("chain")
        rounds = []
        for _ in range(5):
            rounds.append(await worker.step())
            status = await client.get_status(instance_id)
            rounds.append(status.runtime_status.value)
        # Round 1 starts it and runs the first activity, round 2 takes its result and runs the
        # second, round 3 completes it; after that there is nothing to do.
        assert rounds[:6] == [1, "Running", 1, "Running", 1, "Completed"]
        assert rounds[6:] == [0, "Completed", 0, "Completed"]
        assert status.output == 4
        assert worker.is_idle
    finally:
        await worker.stop()
        await backend.close()
