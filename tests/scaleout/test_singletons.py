"""Singletons across processes on PostgreSQL: of 50 concurrent starts of one instance ID from 4
processes, exactly one wins; every other caller gets InstanceAlreadyExistsError (HTTP 409), and
the instance runs once."""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

import durable as df
from durable.history import ExecutionStarted
from tests.scaleout.app import app
from tests.scaleout.harness import REPO, FrontEnd, WorkerProcess, read_activity_log

MGMT = "/runtime/webhooks/durabletask"
COUNTS = (13, 13, 12, 12)  # 50 starts from 4 processes


def race(commands: list[list[str]]) -> list[dict]:
    """Start the burst processes, release them together, collect their tallies."""
    bursts = [
        subprocess.Popen([sys.executable, "-m", "tests.scaleout.burst", *command],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        for command in commands
    ]
    try:
        for burst in bursts:
            assert burst.stdout is not None and burst.stdout.readline().strip() == "ready"
        for burst in bursts:
            assert burst.stdin is not None
            burst.stdin.write("go\n")
            burst.stdin.flush()
        tallies = []
        for burst in bursts:
            out, _ = burst.communicate(timeout=60)
            assert burst.returncode == 0, out
            tallies.append(json.loads(out.strip().splitlines()[-1]))
        return tallies
    finally:
        for burst in bursts:
            if burst.poll() is None:
                burst.kill()


async def finish_and_check(url: str, instance_id: str, activity_log: Path,
                           release: object) -> None:
    """The winner runs exactly once: one recorded activity, one execution in history."""
    async with df.Host(app, url, run_worker=False) as host:
        deadline = time.monotonic() + 30
        while not read_activity_log(activity_log):
            assert time.monotonic() < deadline, "the winning instance never ran"
            await asyncio.sleep(0.05)
        await host.client.raise_event(instance_id, "release", release)
        status = await host.client.wait_for_completion(instance_id, timeout=30)
        history = await host.backend.get_history(instance_id)
        everyone = await host.client.get_status_all()
    assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed
    assert status.output == release
    assert sum(isinstance(e, ExecutionStarted) for e in history) == 1
    assert [s.instance_id for s in everyone] == [instance_id]
    runs = read_activity_log(activity_log)
    assert [(i, s) for _, i, s in runs] == [(instance_id, 0)], runs


def total(tallies: list[dict]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for tally in tallies:
        counts["ok"] += tally["ok"]
        counts["conflict"] += tally["conflict"]
        counts["other"] += len(tally["other"])
    return counts


async def test_fifty_starts_over_http_from_four_front_ends(
    pg_hub_url: str, tmp_path: Path, activity_log: Path
) -> None:
    fronts = [FrontEnd(pg_hub_url, tmp_path, f"front-{i}", activity_log) for i in range(4)]
    try:
        for front in fronts:
            front.wait_listening()
        tallies = race([
            ["http", f"{front.base}{MGMT}/orchestrators/hold/the-one", str(count)]
            for front, count in zip(fronts, COUNTS, strict=True)
        ])
        assert total(tallies) == {"ok": 1, "conflict": 49, "other": 0}, tallies
        # One more, after the race, is refused the same way.
        again = httpx.post(f"{fronts[0].base}{MGMT}/orchestrators/hold/the-one", timeout=10)
        assert again.status_code == 409
        assert again.json()["ExceptionType"] == "InstanceAlreadyExistsError"
        await finish_and_check(pg_hub_url, "the-one", activity_log, "http")
    finally:
        for front in fronts:
            front.close()


async def test_fifty_client_starts_from_four_processes(
    pg_hub_url: str, tmp_path: Path, activity_log: Path
) -> None:
    worker = WorkerProcess(pg_hub_url, tmp_path, "worker-0", activity_log)
    try:
        worker.wait_serving()
        tallies = race([["client", pg_hub_url, "only-one", str(count)] for count in COUNTS])
        assert total(tallies) == {"ok": 1, "conflict": 49, "other": 0}, tallies
        await finish_and_check(pg_hub_url, "only-one", activity_log, "client")
    finally:
        worker.close()
