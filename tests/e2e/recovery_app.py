"""An app for restart and crash tests: instances in several stages when the Host goes away.

Odd-numbered instances block in their first activity until a gate file exists; even ones get
past it and sit on a durable timer. ``python -m tests.e2e.recovery_app <storage> <marker>``
starts the instances, writes ``<marker>`` once they are all in those stages, and then waits to
be killed.

The journal and gate paths come from the environment (``E2E_JOURNAL``, ``E2E_GATE``), so the
same code works in the test process and in a child process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import durable as df

INSTANCES = 6
TIMER = timedelta(milliseconds=300)

app = df.DFApp()


def _journal(line: str) -> None:
    with open(os.environ["E2E_JOURNAL"], "a", encoding="utf-8") as f:
        f.write(line + "\n")


@app.activity_trigger(input_name="n")
def gated(n: int) -> int:
    """Blocks for odd ``n`` until the gate file exists; returns ``n * 2``."""
    _journal(f"gated {n} {os.getpid()}")
    gate = Path(os.environ["E2E_GATE"])
    deadline = time.monotonic() + 60
    while n % 2 and not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return n * 2


@app.activity_trigger(input_name="n")
async def plus_one(n: int) -> int:
    return n + 1


@app.orchestration_trigger(context_name="context")
def child_stage(context: df.DurableOrchestrationContext):
    yield context.create_timer(TIMER)
    return (yield context.call_activity("plus_one", context.get_input()))


@app.orchestration_trigger(context_name="context")
def pipeline(context: df.DurableOrchestrationContext):
    n = context.get_input()
    doubled = yield context.call_activity("gated", n)
    yield context.create_timer(TIMER)
    parts = yield context.task_all(
        [context.call_activity("plus_one", doubled + k) for k in range(3)]
    )
    child = yield context.call_sub_orchestrator("child_stage", sum(parts))
    return [doubled, sum(parts), child]


def expected_output(n: int) -> list[int]:
    doubled = n * 2
    parts = sum(doubled + k + 1 for k in range(3))
    return [doubled, parts, parts + 1]


def instance_ids() -> list[str]:
    return [f"pipeline-{n}" for n in range(INSTANCES)]


async def start_all(client: df.DurableOrchestrationClient) -> None:
    for n, instance_id in enumerate(instance_ids()):
        await client.start_new(pipeline, instance_id, n)


async def wait_until_staged(client: df.DurableOrchestrationClient, timeout: float = 20) -> None:
    """Until odd instances block in ``gated`` and even ones wait on their timer."""
    deadline = time.monotonic() + timeout
    while True:
        journal = Path(os.environ["E2E_JOURNAL"]).read_text(encoding="utf-8").split("\n")
        blocked = {int(line.split()[1]) for line in journal if line.startswith("gated")}
        timers = 0
        for n in range(0, INSTANCES, 2):
            status = await client.get_status(f"pipeline-{n}", show_history=True)
            if any(e["EventType"] == "TaskCompleted" for e in status.history or []):
                timers += 1
        if blocked >= set(range(1, INSTANCES, 2)) and timers == len(range(0, INSTANCES, 2)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the instances never reached their stages")
        await asyncio.sleep(0.01)


async def _main(storage: str, marker: str) -> None:
    async with df.Host(app, storage=storage) as host:
        await start_all(host.client)
        await wait_until_staged(host.client)
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        await asyncio.sleep(3600)  # until killed


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2]))
