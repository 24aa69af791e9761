"""Shared helpers for the end-to-end tests.

Every test runs a real :class:`durable.Host` on a real SQLite file in ``tmp_path``. Recovery
knobs are turned down (short leases, fast polling) so that crash and restart tests finish in
seconds. Nothing here sleeps to wait for work: helpers poll with a deadline and fail loudly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import durable as df

# Short leases and fast polling so that recovery after a stop or a crash takes well under a second.
FAST: dict[str, Any] = {"lease_seconds": 2.0, "poll_interval": 0.05, "shutdown_timeout": 2.0}

# Generous: a healthy run finishes each instance in milliseconds; this only bounds a hang.
TIMEOUT = 20.0
STOP_TIMEOUT = 30.0

Status = df.OrchestrationRuntimeStatus


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "durable.db"


@pytest.fixture
def db_url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@asynccontextmanager
async def running(app: df.DFApp, url: str, **options: Any) -> AsyncIterator[df.Host]:
    """A started Host on ``url`` with the fast test settings (overridable per call).

    ``run_worker=False`` gives a client-only host (no worker options apply then).
    """
    if options.get("run_worker", True):
        options = {**FAST, **options}
    host = df.Host(app, storage=url, **options)
    await host.start()
    try:
        yield host
    finally:
        # A stop that hangs (it once did: a swallowed cancel in the timer loop) fails the test
        # instead of hanging the suite.
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await host.stop()
        except TimeoutError:
            raise AssertionError(f"Host.stop() did not return within {STOP_TIMEOUT}s") from None


async def run_to_end(
    client: df.DurableOrchestrationClient,
    orchestrator: Any,
    client_input: Any = None,
    instance_id: str | None = None,
    timeout: float = TIMEOUT,
) -> df.DurableOrchestrationStatus:
    """Start an orchestration and wait for it to finish; return its final status."""
    iid = await client.start_new(orchestrator, instance_id, client_input)
    return await client.wait_for_completion(iid, timeout=timeout)


async def wait_until(
    probe: Callable[[], Awaitable[Any]],
    timeout: float = TIMEOUT,
    interval: float = 0.01,
    what: str = "condition",
) -> Any:
    """Poll ``probe`` until it returns something truthy; return that value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_status(
    client: df.DurableOrchestrationClient,
    instance_id: str,
    *statuses: df.OrchestrationRuntimeStatus,
    timeout: float = TIMEOUT,
) -> df.DurableOrchestrationStatus:
    async def probe() -> df.DurableOrchestrationStatus | None:
        status = await client.get_status(instance_id)
        return status if status.runtime_status in statuses else None

    names = ", ".join(s.value for s in statuses)
    return await wait_until(probe, timeout, what=f"{instance_id} to be {names}")


async def history_of(
    client: df.DurableOrchestrationClient, instance_id: str, show_output: bool = False
) -> list[dict[str, Any]]:
    status = await client.get_status(
        instance_id, show_history=True, show_history_output=show_output
    )
    assert status, f"no instance {instance_id}"
    return status.history or []


def events_of(history: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in history if e["EventType"] == event_type]


async def wait_for_event(
    client: df.DurableOrchestrationClient,
    instance_id: str,
    event_type: str,
    count: int = 1,
    timeout: float = TIMEOUT,
) -> list[dict[str, Any]]:
    """Wait until the instance's history holds ``count`` events of ``event_type``."""

    async def probe() -> list[dict[str, Any]] | None:
        found = events_of(await history_of(client, instance_id), event_type)
        return found if len(found) >= count else None

    return await wait_until(
        probe, timeout, what=f"{count} {event_type} event(s) in {instance_id}"
    )


def parse_time(text: str) -> datetime:
    """A history timestamp (``2024-01-01T00:00:00.123456Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Journal:
    """An append-only file that activities write to: survives Host restarts and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def write(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.txt")
