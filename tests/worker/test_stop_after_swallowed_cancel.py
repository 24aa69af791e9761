"""A worker stops even when a storage call swallows the cancellation of its loop.

On Python 3.11, ``asyncio.wait_for`` returns the result instead of raising when a cancel
arrives just as the awaited thing completes. psycopg_pool waits for a free connection that way
(``ACondition.wait_timeout``), so when ``Worker.stop()`` cancelled the poll loop while every
pooled connection was busy, the loop could miss its cancel and go on polling, and ``stop()``
waited for it forever (seen as a hung W8 benchmark; the loop's tasks, dumped from the hung
process, showed the poll loop "cancelling" and still going round). Here the backend's lease call
swallows the cancel on purpose, exactly as ``wait_for`` does, on a real SQLite store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import durable as df
from durable.storage import open_backend
from durable.worker.worker import Worker, WorkerOptions

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def nothing(context: df.DurableOrchestrationContext):
    return None
    yield  # a generator, as orchestrators are


async def test_stop_returns_when_a_storage_call_swallows_the_cancel(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'swallow.db'}")
    await backend.open()
    inside = asyncio.Event()
    swallowed = asyncio.Event()
    original = backend.lease_orchestrations

    async def lease(*args: Any, **kwargs: Any) -> Any:
        if not swallowed.is_set():
            inside.set()
            try:
                await asyncio.Event().wait()  # a connection that is slow to come
            except asyncio.CancelledError:
                swallowed.set()  # what wait_for does when the connection comes just then
        return await original(*args, **kwargs)

    backend.lease_orchestrations = lease  # type: ignore[method-assign]
    worker = Worker(app.registry(), backend, WorkerOptions(poll_interval=0.05, lease_seconds=3))
    try:
        await worker.start()
        async with asyncio.timeout(10):
            await inside.wait()
        # Not asyncio.timeout: stop() itself suppresses the cancel of the loops it awaits,
        # so a timeout's cancel would be taken for theirs.
        stopping = asyncio.ensure_future(worker.stop())
        done, _ = await asyncio.wait({stopping}, timeout=10)
        if not done:
            stopping.cancel()
            stopping.cancel()  # the second reaches the poll loop through stop()'s await
            await asyncio.gather(stopping, return_exceptions=True)
        assert done, "stop() did not return within 10 s"  # before the fix: never
        assert swallowed.is_set()
    finally:
        await backend.close()
