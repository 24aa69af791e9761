"""The example Azure apps, unmodified, through ``durable run`` over real HTTP.

Each app is a copy of examples/azure/<app> run by a real ``durable run`` process (SQLite),
driven only with the URLs it hands out, as a user would drive it under Core Tools.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.azure.conftest import (
    APPS,
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
from tests.http.conftest import MGMT, DurableRun


@pytest.fixture(scope="module")
def patterns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DurableRun, Path]]:
    project = copy_project(EXAMPLES / "patterns_v2", tmp_path_factory.mktemp("patterns"))
    with DurableRun(project, cwd=project) as server:
        yield server, project


@pytest.fixture(scope="module")
def singleton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DurableRun, Path]]:
    project = copy_project(EXAMPLES / "singleton_v1", tmp_path_factory.mktemp("singleton"))
    with DurableRun(project, cwd=project) as server:
        yield server, project


def test_the_banner_lists_functions_like_core_tools(
    patterns: tuple[DurableRun, Path],
) -> None:
    server, _ = patterns
    banner = server.output()
    assert f"http_start: [POST] {server.base}/api/orchestrators/{{functionName}}" in banner
    assert "/api/orchestrators/{functionName}" in banner
    assert "hello_sequence: orchestrationTrigger" in banner
    assert "phone_verification: orchestrationTrigger" in banner  # from the blueprint
    assert "say_hello: activityTrigger" in banner


def test_function_chaining(patterns: tuple[DurableRun, Path]) -> None:
    server, _ = patterns
    payload = start(server.base, "hello_sequence")
    assert payload["statusQueryGetUri"].startswith(f"{server.base}{MGMT}/instances/")
    assert "taskHub=TestHubName" in payload["statusQueryGetUri"]
    done = finished(payload)
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_fan_out_fan_in(patterns: tuple[DurableRun, Path], tmp_path: Path) -> None:
    server, project = patterns
    site = tmp_path / "site"
    site.mkdir()
    sizes = {f"page{i}.html": b"x" * (i + 1) * 10 for i in range(5)}
    for name, data in sizes.items():
        (site / name).write_bytes(data)
    done = finished(start(server.base, "backup_site_content", str(site)))
    assert done["output"] == sum(len(data) for data in sizes.values())
    assert sorted(p.name for p in (project / "backup").iterdir()) == sorted(sizes)


def test_human_interaction_approved(patterns: tuple[DurableRun, Path]) -> None:
    server, project = patterns
    payload = start(server.base, "phone_verification", {"phone": "+15550001",
                                                          "timeoutSeconds": 60})
    sms = project / "outbox" / "sms-+15550001.json"
    poll(sms.exists, "the challenge SMS")
    code = json.loads(sms.read_text())["body"].rsplit(" ", 1)[1]
    raise_event(payload, "SmsChallengeResponse", "0000" if code != "0000" else "1111")
    assert status(payload)["runtimeStatus"] == "Running"  # a wrong code: still waiting
    raise_event(payload, "SmsChallengeResponse", code)
    assert finished(payload)["output"] is True


def test_human_interaction_times_out(patterns: tuple[DurableRun, Path]) -> None:
    server, _ = patterns
    payload = start(server.base, "phone_verification", {"phone": "+15550002",
                                                          "timeoutSeconds": 1})
    done = finished(payload)
    assert done["runtimeStatus"] == "Completed" and done["output"] is False


def test_monitor(patterns: tuple[DurableRun, Path]) -> None:
    server, project = patterns
    payload = start(server.base, "monitor_issues", {"repo": "contoso/app", "phone": "+1555003",
                                                     "pollSeconds": 1, "expirySeconds": 60})
    waiting = poll(lambda: (s := status(payload))["customStatus"] and s, "a first poll")
    assert waiting["customStatus"].startswith("The repository does not have too many issues")
    (project / "issues.json").write_text(json.dumps({"contoso/app": 5}))
    assert finished(payload)["output"] == "Monitor completed!"
    alert = json.loads((project / "outbox" / "alert-+1555003.json").read_text())
    assert alert["to"] == "+1555003"


def test_sub_orchestration_with_retries(patterns: tuple[DurableRun, Path]) -> None:
    server, project = patterns
    payload = start(server.base, "resilient_parent", "Oslo")
    done = finished(payload)
    assert done["output"] == {"greeting": "Hello Oslo!", "parent": payload["id"]}
    assert (project / "attempts-Oslo.log").read_text() == "xxx"  # failed twice, retried
    history = httpx.get(payload["statusQueryGetUri"] + "&showHistory=true",
                        timeout=TIMEOUT).json()["historyEvents"]
    assert [e["EventType"] for e in history].count("SubOrchestrationInstanceCompleted") == 1


def test_the_v1_singleton_flow(singleton: tuple[DurableRun, Path]) -> None:
    server, _ = singleton
    url = f"{server.base}/api/orchestrators/SingletonJob/nightly"
    first = httpx.post(url, json={"kind": "nightly"}, timeout=TIMEOUT)
    assert first.status_code == 202, first.text
    payload = first.json()
    assert "taskHub=SingletonHub" in payload["statusQueryGetUri"]
    poll(lambda: status(payload)["customStatus"] == "waiting for stop", "the job to wait")
    again = httpx.post(url, timeout=TIMEOUT)
    assert again.status_code == 409
    assert again.text == "An instance with ID 'nightly' already exists."
    raise_event(payload, "stop", "first")
    done = finished(payload)
    assert done["output"] == {"job": {"kind": "nightly"}, "run": 1, "stopped": "first"}
    restarted = httpx.post(url, timeout=TIMEOUT)  # a finished singleton may run again
    assert restarted.status_code == 202
    raise_event(restarted.json(), "stop", "second")
    assert finished(restarted.json())["output"]["run"] == 2


def test_fifty_concurrent_posts_start_exactly_one(singleton: tuple[DurableRun, Path]) -> None:
    """The check-then-start of the article races; durable's start is atomic. Callers whose
    check passed but who lost the start see the SDK raise a plain Exception for durable's
    409, and are answered 409 too."""
    server, project = singleton
    url = f"{server.base}/api/orchestrators/SingletonJob/race"
    responses = asyncio.run(burst(url, 50))
    codes = Counter(r.status_code for r in responses)
    assert codes == {202: 1, 409: 49}, (codes, server.output()[-2000:])
    kinds = Counter(
        "atomic start" if r.headers.get("content-type", "").startswith("application/json")
        else "status check" for r in responses if r.status_code == 409
    )
    print(f"\n409s by who answered: {dict(kinds)}")
    runs = project / "runs.log"
    poll(lambda: runs.exists() and runs.read_text().split().count("race") == 1, "one run")
    winner = next(r for r in responses if r.status_code == 202).json()
    raise_event(winner, "stop", "raced")
    assert finished(winner)["output"]["run"] == 1
    assert runs.read_text().split().count("race") == 1


def test_the_article_as_printed_fails_as_on_azure(tmp_path: Path) -> None:
    """As printed, the starter hands the request body (bytes) to start_new, which the SDK
    refuses with a TypeError before it sends anything: every POST is a 500, as on Azure, and
    no instance starts. With only the body decoded, its ``!= None`` check (always true: the
    SDK never returns None) sends every caller to start_new, and the atomic start lets
    exactly one of 50 win; the rest get 409 for the SDK's exception."""
    project = copy_project(APPS / "article_printed_v1", tmp_path)
    with DurableRun(project, cwd=project) as server:
        printed = asyncio.run(burst(f"{server.base}/api/orchestrators/SingletonJob/p1", 50))
        assert Counter(r.status_code for r in printed) == {500: 50}
        log = server.output()
        assert "TypeError: class <class 'bytes'> does not expose a `to_json` function" in log
        assert httpx.get(f"{server.base}{MGMT}/instances/p1", timeout=TIMEOUT).status_code == 404

        url = f"{server.base}/api/decoded/orchestrators/SingletonJob/p2"
        decoded = asyncio.run(burst(url, 50))
        assert Counter(r.status_code for r in decoded) == {202: 1, 409: 49}
        conflicts = [r.json() for r in decoded if r.status_code == 409]
        assert all(c["ExceptionType"] == "InstanceAlreadyExistsError" for c in conflicts)
        runs = project / "runs.log"
        poll(lambda: runs.exists() and runs.read_text().split().count("p2") == 1, "one run")


def test_the_timer_triggered_singleton(tmp_path: Path) -> None:
    project = copy_project(EXAMPLES / "timer_singleton_v2", tmp_path)
    with DurableRun(project, cwd=project) as server:
        assert "cleanup_timer: timerTrigger (*/2 * * * * *)" in server.output()
        ticks, runs = project / "ticks.log", project / "cleanup-runs.log"
        poll(lambda: ticks.exists() and len(ticks.read_text().split()) >= 4, "four ticks",
             timeout=TIMEOUT)
        job = httpx.get(f"{server.base}{MGMT}/instances/cleanup", timeout=TIMEOUT).json()
        assert job["name"] == "cleanup"
        # Each run lasts ~6 s and ticks come every 2 s: later ticks found it running.
        started = runs.read_text().split().count("cleanup")
        assert 1 <= started < len(ticks.read_text().split())


def test_counter_entity(tmp_path: Path) -> None:
    """The v2 counter: the SDK client signals and reads the entity over the RPC endpoint; an
    orchestrator signals it and calls it."""
    project = copy_project(EXAMPLES / "counter_entity_v2", tmp_path)
    with DurableRun(project, cwd=project) as server:
        assert "Counter: entityTrigger" in server.output()
        assert httpx.get(f"{server.base}/api/counters/c1", timeout=TIMEOUT).status_code == 404
        for amount in (5, 2):
            added = httpx.post(f"{server.base}/api/counters/c1/add", json=amount,
                               timeout=TIMEOUT)
            assert added.status_code == 202, added.text
        poll(lambda: httpx.get(f"{server.base}/api/counters/c1", timeout=TIMEOUT).text == "7",
             "the counter to reach 7")
        payload = start(server.base, "add_then_get")
        assert finished(payload)["output"] == 3  # myCounter: signalled +3, then read
        state = httpx.get(f"{server.base}{MGMT}/entities/Counter/myCounter", timeout=TIMEOUT)
        assert state.status_code == 200 and state.json() == 3


def test_the_sdk_client_raises_for_a_refused_suspend_or_resume(tmp_path: Path) -> None:
    """As with the Durable extension, the SDK's ``suspend`` of a Suspended instance and
    ``resume`` of a Running one raise (durable answers 409 where the extension's unhandled
    exception is a 500; the SDK raises for either), while a suspend and resume of a finished
    instance return quietly (410, which the SDK counts as success)."""
    project = copy_project(APPS / "suspend_resume_v2", tmp_path)
    with DurableRun(project, cwd=project) as server:
        app = f"{server.base}/api/instances"

        def call(instance_id: str, path: str) -> dict[str, object]:
            response = httpx.post(f"{app}/{instance_id}/{path}", timeout=TIMEOUT)
            assert response.status_code == 200, response.text
            return dict(response.json())

        payload = start(server.base, "wait_for_go")
        instance_id = payload["id"]
        poll(lambda: status(payload)["runtimeStatus"] == "Running", "Running")
        refused = "Exception: The operation failed with an unexpected status code 409"
        assert call(instance_id, "resume") == {"raised": refused}
        assert call(instance_id, "suspend/twice") == {"first": None, "second": refused}
        assert status(payload)["runtimeStatus"] == "Suspended"
        assert call(instance_id, "resume/twice") == {"first": None, "second": refused}
        raise_event(payload, "go", "now")
        assert finished(payload)["output"] == "now"
        assert call(instance_id, "suspend") == {"raised": None}
        assert call(instance_id, "resume") == {"raised": None}
        assert call("no-such-instance", "suspend") == {
            "raised": "Exception: No instance with ID 'no-such-instance' found."}
        history = httpx.get(payload["statusQueryGetUri"] + "&showHistory=true",
                            timeout=TIMEOUT).json()["historyEvents"]
        controls = [e["EventType"] for e in history
                    if e["EventType"] in ("ExecutionSuspended", "ExecutionResumed")]
        assert controls == ["ExecutionSuspended", "ExecutionResumed"]  # refusals sent nothing
