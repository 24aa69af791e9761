"""A Host that stops or dies mid-orchestration: a new Host on the same file finishes everything.

Covers a graceful stop with activities still running and timers pending, a SIGKILL of a Host in
another process, and timers that came due while no Host was running at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

import durable as df
from tests.e2e import recovery_app
from tests.e2e.conftest import (
    Status,
    events_of,
    history_of,
    parse_time,
    running,
    wait_for_event,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def recovery_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    journal, gate = tmp_path / "journal.txt", tmp_path / "gate"
    journal.touch()
    monkeypatch.setenv("E2E_JOURNAL", str(journal))
    monkeypatch.setenv("E2E_GATE", str(gate))
    return journal, gate


async def finish_and_check(db_url: str, journal: Path) -> None:
    async with running(recovery_app.app, db_url) as host:
        statuses = [
            await host.client.wait_for_completion(iid, timeout=30)
            for iid in recovery_app.instance_ids()
        ]
    for n, status in enumerate(statuses):
        assert status.runtime_status is Status.Completed, (n, status.failure_details)
        assert status.output == recovery_app.expected_output(n), n
    # Every instance's first activity ran; the ones in flight at the stop ran again.
    runs = Counter(int(line.split()[1]) for line in journal.read_text().splitlines())
    assert set(runs) == set(range(recovery_app.INSTANCES))
    for n in range(1, recovery_app.INSTANCES, 2):
        assert runs[n] >= 2, f"gated({n}) was in flight at the stop and must run again"


async def test_a_new_host_finishes_what_a_stopped_host_left(
    db_url: str, recovery_env: tuple[Path, Path]
) -> None:
    journal, gate = recovery_env
    # A short shutdown timeout: the stop gives up on the blocked activities.
    async with running(recovery_app.app, db_url, shutdown_timeout=0.2) as host:
        await recovery_app.start_all(host.client)
        await recovery_app.wait_until_staged(host.client)
    gate.touch()  # the old Host's blocked threads finish now; their results go nowhere
    await finish_and_check(db_url, journal)


async def test_a_new_host_finishes_what_a_killed_process_left(
    db_url: str, recovery_env: tuple[Path, Path], tmp_path: Path
) -> None:
    journal, gate = recovery_env
    marker = tmp_path / "staged"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.recovery_app", db_url, str(marker)],
        cwd=REPO, env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None, f"the app process exited with {process.returncode}"
            assert time.monotonic() < deadline, "the app process never staged its instances"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    gate.touch()
    await finish_and_check(db_url, journal)
    pids = {line.split()[2] for line in journal.read_text().splitlines()}
    assert pids == {marker.read_text(), str(os.getpid())}


async def test_timers_that_came_due_while_no_host_ran(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def nap(context: df.DurableOrchestrationContext):
        before = context.current_utc_datetime
        yield context.create_timer(timedelta(milliseconds=int(context.get_input())))
        after = context.current_utc_datetime
        return (after - before).total_seconds()

    delays = [200, 300, 400]
    async with running(app, db_url) as host:
        ids = [await host.client.start_new(nap, f"nap-{d}", d) for d in delays]
        for iid in ids:
            assert (await host.client.get_status(iid)).runtime_status in (
                Status.Pending, Status.Running,
            )
    stopped = time.time()
    # No Host runs while every timer comes due.
    await asyncio.sleep(max(delays) / 1000 + 0.1)
    async with running(app, db_url) as host:
        restarted = time.time()
        statuses = [await host.client.wait_for_completion(iid, timeout=10) for iid in ids]
        finished = time.time()
        histories = [await history_of(host.client, iid) for iid in ids]

    for delay, status, history in zip(delays, statuses, histories, strict=True):
        assert status.runtime_status is Status.Completed
        assert status.output >= delay / 1000
        fired = events_of(history, "TimerFired")
        assert len(fired) == 1
        assert parse_time(fired[0]["FireAt"]).timestamp() < restarted
    assert restarted > stopped
    assert finished - restarted < 5  # picked up on start-up, not after some long poll


async def test_restart_between_every_step(db_url: str) -> None:
    """Stop and start a Host after each step: the instance still gets the right output."""
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def add_ten(n: int) -> int:
        return n + 10

    @app.orchestration_trigger(context_name="context")
    def stepper(context: df.DurableOrchestrationContext):
        total = context.get_input()
        for _ in range(4):
            total = yield context.call_activity("add_ten", total)
            total += yield context.wait_for_external_event("bump")
        return total

    async with running(app, db_url) as host:
        iid = await host.client.start_new(stepper, "stepper", 0)
    for step in range(1, 5):
        async with running(app, db_url) as host:
            await wait_for_event(host.client, iid, "TaskCompleted", count=step)
            await host.client.raise_event(iid, "bump", step)
    async with running(app, db_url) as host:
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.output == 4 * 10 + (1 + 2 + 3 + 4)
