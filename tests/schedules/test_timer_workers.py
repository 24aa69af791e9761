"""Timer triggers across worker processes on PostgreSQL: each occurrence runs once however
many workers share the hub, a worker killed between claiming an occurrence and finishing it
loses nothing (another worker runs it), and a restart of every worker catches up as the
missed-occurrence rule says."""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.scaleout.harness import DurableProcess

APP = "tests.schedules.timer_app:app"
TIMEOUT = 40.0


@pytest.fixture
def pg_hub_url() -> str:
    from tests.pg import fresh_hub_url

    return fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL))


class Workers:
    def __init__(self, url: str, folder: Path, log: Path) -> None:
        self.url, self.folder, self.log = url, folder, log
        self.started: list[DurableProcess] = []

    def start(self, count: int, lease_seconds: float = 2.0) -> list[DurableProcess]:
        fresh = [
            DurableProcess(["worker", APP, "--storage", self.url, "--lease-seconds",
                            str(lease_seconds), "--poll-interval", "0.2"],
                           self.folder, f"worker-{len(self.started) + i}", self.log)
            for i in range(count)
        ]
        self.started.extend(fresh)
        for worker in fresh:
            worker.wait_serving()
        return fresh


@pytest.fixture
def workers(pg_hub_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Workers]:
    log = tmp_path / "ticks.log"
    monkeypatch.setenv("TIMER_TEST_LOG", str(log))
    group = Workers(pg_hub_url, tmp_path, log)
    yield group
    for worker in group.started:
        worker.close()


def lines(log: Path, kind: str) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split() for line in log.read_text().splitlines() if line.startswith(kind)]


def wait_for(check, what: str, timeout: float = TIMEOUT):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def occurrence_seconds(rows: list[list[str]]) -> list[int]:
    from datetime import datetime

    return [int(datetime.fromisoformat(row[1].replace("Z", "+00:00")).timestamp())
            for row in rows]


def test_three_workers_fire_each_occurrence_once(workers: Workers,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMER_TEST_SCHEDULE", "* * * * * *")
    workers.start(3)
    wait_for(lambda: len(lines(workers.log, "end")) >= 6, "six occurrences")
    starts = lines(workers.log, "start")
    counts = collections.Counter(row[1] for row in starts)
    assert max(counts.values()) == 1, counts  # no occurrence ran twice
    seconds = occurrence_seconds(starts)
    assert seconds == sorted(seconds)
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds))), seconds  # none lost


def test_a_worker_killed_while_running_an_occurrence_loses_nothing(
    workers: Workers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claiming an occurrence commits its run as an activity task: if the worker dies before
    the function finished, another worker runs it once the lease expires (at least once)."""
    monkeypatch.setenv("TIMER_TEST_SCHEDULE", "*/3 * * * * *")
    monkeypatch.setenv("TIMER_TEST_SLOW", "1.5")
    started = workers.start(2)
    first = wait_for(lambda: lines(workers.log, "start"), "a first run")[0]
    victim = next(w for w in started if w.pid == int(first[2]))
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    survivor = next(w for w in started if w is not victim)

    def rerun() -> list[list[str]]:
        return [row for row in lines(workers.log, "end") if row[1] == first[1]]

    done = wait_for(rerun, "the killed worker's occurrence to be run again")
    assert int(done[0][2]) == survivor.pid
    starts = [row for row in lines(workers.log, "start") if row[1] == first[1]]
    assert [int(row[2]) for row in starts] == [victim.pid, survivor.pid]
    # The schedule goes on from the survivor.
    wait_for(lambda: len({row[1] for row in lines(workers.log, "end")}) >= 2,
             "a later occurrence")


def test_restarting_every_worker_catches_up_once(workers: Workers,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMER_TEST_SCHEDULE", "*/2 * * * * *")
    first = workers.start(2)
    wait_for(lambda: lines(workers.log, "end"), "a first occurrence")
    for worker in first:
        assert worker.terminate() == 0
    stopped_at = time.time()
    before = len(lines(workers.log, "start"))
    time.sleep(8)  # downtime on purpose: occurrences pass with no worker up
    workers.start(3)
    wait_for(lambda: len(lines(workers.log, "end")) >= before + 2, "runs after the restart")
    starts = lines(workers.log, "start")
    counts = collections.Counter(row[1] for row in starts)
    assert max(counts.values()) == 1, counts
    catch_up = starts[before]
    assert catch_up[3] == "True"  # past due: the first occurrence the downtime missed
    assert occurrence_seconds([catch_up])[0] <= stopped_at + 2.5
    assert starts[before + 1][3] == "False"
    assert occurrence_seconds([starts[before + 1]])[0] > stopped_at + 7
