"""An app for crash tests: `block` hangs forever in a process started with DURABLE_TEST_BLOCK."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import durable as df

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def two_steps(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("block", context.get_input())
    second = yield context.call_activity("echo", first)
    return [first, second]


@app.activity_trigger(input_name="marker")
def block(marker: str) -> str:
    Path(marker).write_text(str(os.getpid()))
    if os.environ.get("DURABLE_TEST_BLOCK"):
        time.sleep(3600)
    return "unblocked"


@app.activity_trigger(input_name="value")
def echo(value: str) -> str:
    return f"echo {value}"


async def _serve(storage: str, marker: str) -> None:
    async with df.Host(app, storage) as host:
        await host.client.start_new("two_steps", "crash-1", marker)
        await asyncio.Event().wait()  # run until killed


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))
