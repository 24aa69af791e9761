"""A singleton orchestration and a starter process for the concurrent ``start_new`` tests.

``python -m tests.e2e.singleton_app <storage> <instance id> <dir> <name> <attempts>`` opens a
Host (with a worker) on ``storage``, writes ``<dir>/<name>.ready``, waits for ``<dir>/go``, then
calls ``start_new`` for the same instance ID from ``attempts`` tasks at once. It prints one JSON
line ``{"won": [...], "refused": n, "other": [...]}`` and keeps its worker running until
``<dir>/stop`` exists, so that any of the processes may be the one that runs the instance.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import durable as df

app = df.DFApp()


@app.activity_trigger(input_name="job")
def record_run(job: dict[str, str]) -> str:
    with open(job["journal"], "a", encoding="utf-8") as f:
        f.write(f"ran {job['tag']} in {os.getpid()}\n")
    return job["tag"]


@app.orchestration_trigger(context_name="context")
def singleton(context: df.DurableOrchestrationContext):
    """Runs once per start: records the run, then waits to be released."""
    job = context.get_input()
    tag = yield context.call_activity("record_run", job)
    yield context.wait_for_external_event("release")
    return tag


async def start_many(
    client: df.DurableOrchestrationClient, instance_id: str, inputs: list[dict[str, str]]
) -> dict[str, Any]:
    """Call start_new for one ID from one task per input, all at once; tally the answers."""
    results = await asyncio.gather(
        *(client.start_new(singleton, instance_id, job) for job in inputs),
        return_exceptions=True,
    )
    won = [job["tag"] for job, r in zip(inputs, results, strict=True) if r == instance_id]
    refused = sum(isinstance(r, df.InstanceAlreadyExistsError) for r in results)
    other = [repr(r) for r in results
             if r != instance_id and not isinstance(r, df.InstanceAlreadyExistsError)]
    return {"won": won, "refused": refused, "other": other}


async def _main(storage: str, instance_id: str, folder: str, name: str, attempts: int) -> None:
    base = Path(folder)
    async with df.Host(app, storage=storage, lease_seconds=2, poll_interval=0.05) as host:
        (base / f"{name}.ready").touch()
        deadline = time.monotonic() + 30
        while not (base / "go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("never told to go")
            await asyncio.sleep(0.002)
        inputs = [
            {"tag": f"{name}-{k}", "journal": str(base / "runs.txt")} for k in range(attempts)
        ]
        print(json.dumps(await start_many(host.client, instance_id, inputs)), flush=True)
        while not (base / "stop").exists():
            if time.monotonic() > deadline + 30:
                raise TimeoutError("never told to stop")
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
