"""The same Azure apps on PostgreSQL: a ``durable run --no-worker`` front end serving HTTP and
two ``durable worker`` processes doing the work, all on one task hub."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.azure.conftest import (
    EXAMPLES,
    TIMEOUT,
    burst,
    copy_project,
    finished,
    poll,
    raise_event,
    start,
    status,
)
from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.http.conftest import MGMT, DurableRun
from tests.scaleout.harness import DurableProcess


class Cluster:
    def __init__(self, project: Path, url: str) -> None:
        self.project = project
        self.workers = [
            DurableProcess(["worker", str(project), "--storage", url, "--lease-seconds", "5",
                            "--poll-interval", "0.2"], project, f"worker-{i}",
                           project / "unused.log")
            for i in range(2)
        ]
        for worker in self.workers:
            worker.wait_serving()
        self.front = DurableRun(project, "--no-worker", "--storage", url, cwd=project)

    def pids_that_ran(self, marker: str) -> set[str]:
        return {w.name for w in self.workers if marker in w.log()}

    def close(self) -> None:
        self.front.kill()
        for worker in self.workers:
            worker.close()


def cluster(source: Path, tmp_path: Path) -> Iterator[Cluster]:
    from tests.pg import fresh_hub_url

    url = fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL))
    group = Cluster(copy_project(source, tmp_path), url)
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def patterns(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster(EXAMPLES / "patterns_v2", tmp_path)


@pytest.fixture
def singleton(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster(EXAMPLES / "singleton_v1", tmp_path)


def test_the_patterns_on_two_workers(patterns: Cluster, tmp_path: Path) -> None:
    base, project = patterns.front.base, patterns.project
    chained = [start(base, "hello_sequence") for _ in range(6)]
    site = tmp_path / "site"
    site.mkdir()
    for i in range(8):
        (site / f"f{i}.txt").write_text("y" * (i + 1))
    fan = start(base, "backup_site_content", str(site))
    approval = start(base, "phone_verification", {"phone": "+1999", "timeoutSeconds": 60})
    monitor = start(base, "monitor_issues", {"repo": "a/b", "phone": "+1998",
                                            "pollSeconds": 1, "expirySeconds": 60})
    retried = start(base, "resilient_parent", "Lima")

    for payload in chained:
        assert finished(payload)["output"] == ["Hello Tokyo!", "Hello Seattle!",
                                               "Hello London!"]
    assert finished(fan)["output"] == sum(range(1, 9))
    sms = project / "outbox" / "sms-+1999.json"
    poll(sms.exists, "the challenge SMS")
    raise_event(approval, "SmsChallengeResponse",
                json.loads(sms.read_text())["body"].rsplit(" ", 1)[1])
    assert finished(approval)["output"] is True
    poll(lambda: status(monitor)["customStatus"], "a first poll")
    (project / "issues.json").write_text(json.dumps({"a/b": 4}))
    assert finished(monitor)["output"] == "Monitor completed!"
    assert finished(retried)["output"]["greeting"] == "Hello Lima!"
    assert (project / "attempts-Lima.log").read_text() == "xxx"


def test_fifty_posts_to_the_singleton_on_two_workers(singleton: Cluster) -> None:
    base, project = singleton.front.base, singleton.project
    responses = asyncio.run(burst(f"{base}/api/orchestrators/SingletonJob/pg-race", 50))
    assert Counter(r.status_code for r in responses) == {202: 1, 409: 49}
    runs = project / "runs.log"
    poll(lambda: runs.exists() and runs.read_text().split().count("pg-race") == 1, "one run")
    winner = next(r for r in responses if r.status_code == 202).json()
    raise_event(winner, "stop", "done")
    assert finished(winner)["output"]["run"] == 1
    listed = httpx.get(f"{base}{MGMT}/instances", timeout=TIMEOUT).json()
    assert [i["instanceId"] for i in listed] == ["pg-race"]


@pytest.fixture
def timer_singleton(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster(EXAMPLES / "timer_singleton_v2", tmp_path)


def test_the_timer_singleton_on_two_workers(timer_singleton: Cluster) -> None:
    project = timer_singleton.project
    ticks, runs = project / "ticks.log", project / "cleanup-runs.log"
    poll(lambda: ticks.exists() and len(ticks.read_text().split()) >= 4, "four ticks")
    count = len(ticks.read_text().split())
    assert runs.exists() and 1 <= runs.read_text().split().count("cleanup") < count
    timers = httpx.get(f"{timer_singleton.front.base}{MGMT}/instances",
                       params={"instanceIdPrefix": "timer:"}, timeout=TIMEOUT).json()
    assert [t["instanceId"] for t in timers] == ["timer:cleanup_timer"]


@pytest.fixture
def counter(tmp_path: Path) -> Iterator[Cluster]:
    yield from cluster(EXAMPLES / "counter_entity_v2", tmp_path)


def test_the_counter_entity_on_two_workers(counter: Cluster) -> None:
    base = counter.front.base
    for _ in range(10):
        assert httpx.post(f"{base}/api/counters/pg/add", json=1,
                          timeout=TIMEOUT).status_code == 202
    poll(lambda: httpx.get(f"{base}/api/counters/pg", timeout=TIMEOUT).text == "10",
         "ten additions, each exactly once")
    runs = [start(base, "add_then_get") for _ in range(3)]
    outputs = [finished(payload)["output"] for payload in runs]
    # Each run adds 3, then reads: every addition lands exactly once.
    assert all(value in (3, 6, 9) for value in outputs) and max(outputs) == 9
    state = httpx.get(f"{base}{MGMT}/entities/Counter/myCounter", timeout=TIMEOUT)
    assert state.json() == 9
