"""Concurrent start_new of one instance ID: exactly one caller wins and one instance runs.

Durable Functions documents that two concurrent "check, then start" callers can both report
success; durable's start_new is atomic instead. Runs are counted by an activity that appends to
a file, so a second execution would show up even if it ran in another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e import singleton_app
from tests.e2e.conftest import Status, running, wait_until

REPO = Path(__file__).resolve().parents[2]


def runs_in(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_fifty_concurrent_tasks_start_one_instance(db_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "runs.txt"
    inputs = [{"tag": f"task-{k}", "journal": str(journal)} for k in range(50)]
    async with running(singleton_app.app, db_url) as host:
        tally = await singleton_app.start_many(host.client, "the-one", inputs)

        async def recorded() -> list[str]:
            return runs_in(journal)

        await wait_until(recorded, what="the winner's activity")
        await host.client.raise_event("the-one", "release")
        status = await host.client.wait_for_completion("the-one", timeout=20)
        everyone = await host.client.get_status_all()

    assert tally["other"] == []
    assert len(tally["won"]) == 1
    assert tally["refused"] == 49
    winner = tally["won"][0]
    assert status.runtime_status is Status.Completed
    assert status.output == winner
    assert status.input_["tag"] == winner
    assert [line.split()[1] for line in runs_in(journal)] == [winner]
    assert [s.instance_id for s in everyone] == ["the-one"]


async def test_several_processes_start_one_instance(db_url: str, tmp_path: Path) -> None:
    processes, attempts = 4, 10
    journal = tmp_path / "runs.txt"
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.singleton_app", db_url, "cross-process",
             str(tmp_path), f"p{i}", str(attempts)],
            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, text=True,
        )
        for i in range(processes)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"p{i}.ready").exists() for i in range(processes)):
            for child in children:
                assert child.poll() is None, f"a starter exited with {child.returncode}"
            assert time.monotonic() < deadline, "the starter processes never got ready"
            time.sleep(0.02)
        (tmp_path / "go").touch()  # all processes call start_new at about the same moment
        tallies = [json.loads(child.stdout.readline()) for child in children]

        # Any of the four workers may run the instance; this process only watches.
        async with running(singleton_app.app, db_url, run_worker=False) as front:

            async def recorded() -> list[str]:
                return runs_in(journal)

            await wait_until(recorded, what="the winner's activity")
            await front.client.raise_event("cross-process", "release")
            status = await front.client.wait_for_completion("cross-process", timeout=30)
    finally:
        (tmp_path / "stop").touch()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()

    assert [child.returncode for child in children] == [0] * processes
    assert all(t["other"] == [] for t in tallies), tallies
    winners = [tag for t in tallies for tag in t["won"]]
    assert len(winners) == 1, tallies
    assert sum(t["refused"] for t in tallies) == processes * attempts - 1
    assert status.output == winners[0]
    runs = runs_in(journal)
    assert len(runs) == 1 and runs[0].split()[1] == winners[0], runs


async def test_a_finished_singleton_can_be_started_again_by_exactly_one_caller(
    db_url: str, tmp_path: Path
) -> None:
    journal = tmp_path / "runs.txt"
    async with running(singleton_app.app, db_url) as host:
        rounds = []
        for round_ in range(2):
            inputs = [{"tag": f"r{round_}-{k}", "journal": str(journal)} for k in range(20)]
            tally = await singleton_app.start_many(host.client, "again", inputs)

            async def recorded(expected: int = round_ + 1) -> bool:
                return len(runs_in(journal)) >= expected

            await wait_until(recorded)
            await host.client.raise_event("again", "release")
            status = await host.client.wait_for_completion("again", timeout=20)
            rounds.append((tally, status.output))

    for tally, output in rounds:
        assert len(tally["won"]) == 1 and tally["refused"] == 19
        assert output == tally["won"][0]
    assert len(runs_in(journal)) == 2
    assert rounds[0][1] != rounds[1][1]
