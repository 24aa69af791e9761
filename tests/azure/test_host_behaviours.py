"""What the Durable host does for a 1.x SDK app, checked with a real app under ``durable run``
over real HTTP (tests/azure/apps/host_behaviours_v2), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.azure.conftest import APPS, TIMEOUT, copy_project, finished, poll, start
from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.http.conftest import MGMT, DurableRun

APP = APPS / "host_behaviours_v2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableRun]:
    project = copy_project(APP, tmp_path_factory.mktemp("behaviours"))
    with DurableRun(project, cwd=project) as running:
        yield running


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableRun]:
    from tests.pg import fresh_hub_url

    url = fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL))
    project = copy_project(APP, tmp_path_factory.mktemp("behaviours-pg"))
    with DurableRun(project, "--storage", url, cwd=project) as running:
        yield running


def test_entity_inputs_from_the_http_api(server: DurableRun) -> None:
    """The counter written as Azure's counter sample, signalled over the management API: a
    text body (what `curl -d 3` sends) as on Azure; a JSON string; and a JSON number, which the
    Azure host hands the 1.x SDK in a form it cannot decode (docs/azure-apps.md)."""
    url = f"{server.base}{MGMT}/entities/Counter/c1?op=add"
    assert httpx.post(url, content="3", timeout=TIMEOUT,
                      headers={"Content-Type": "application/x-www-form-urlencoded"}
                      ).status_code == 202
    assert httpx.post(url, json="4", timeout=TIMEOUT).status_code == 202
    assert httpx.post(url, json=5, timeout=TIMEOUT).status_code == 202
    state = f"{server.base}{MGMT}/entities/Counter/c1"
    poll(lambda: httpx.get(state, timeout=TIMEOUT).text == "12", "the counter to reach 12")
    assert "failed" not in server.output()


def test_delete_is_an_operation_of_the_sdk_entity(server: DurableRun) -> None:
    """The Durable extension hands "delete" to the SDK's entity like any operation (the
    built-in delete is .NET's, for class-based entities): the counter, which treats an unknown
    operation as a read, keeps its value; a signal over the HTTP API's DELETE too."""
    url = f"{server.base}{MGMT}/entities/Counter/d1"
    assert httpx.post(f"{url}?op=add", json=3, timeout=TIMEOUT).status_code == 202
    assert httpx.post(f"{url}?op=delete", timeout=TIMEOUT).status_code == 202
    assert httpx.delete(url, timeout=TIMEOUT).status_code == 202
    assert httpx.post(f"{url}?op=add", json=4, timeout=TIMEOUT).status_code == 202
    poll(lambda: httpx.get(url, timeout=TIMEOUT).text == "7", "the counter to reach 7")


def test_the_sdk_entity_rules(server: DurableRun) -> None:
    """After set_state(None) the initializer's value; an operation that only sets a result
    creates the entity (the SDK's rule); an empty operation name is a name."""
    done = finished(start(server.base, "entity_rules", "b1"))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == ["initial", "peeked", ["unnamed", 7]]
    created = httpx.get(f"{server.base}{MGMT}/entities/Box/b1-new", timeout=TIMEOUT)
    assert created.status_code == 200 and created.json() is None


def test_an_activity_failure_reads_as_on_azure(server: DurableRun) -> None:
    done = finished(start(server.base, "catch_failure"))
    reason, details = done["output"].split(" \n ", 1)
    assert reason == ("Activity function 'refuse' failed:  ValueError: cannot process the "
                      "order")
    assert json.loads(details)["Message"] == " ValueError: cannot process the order"


def test_values_kept_from_is_replaying_are_as_on_azure(server: DurableRun) -> None:
    """Azure replays from the first line every episode, so the flag read before the first
    yield is read again as True by the replay that finishes (the extension's own Python test
    app, IsReplayingBasic/MultiActivity, expects exactly this)."""
    done = finished(start(server.base, "replay_flags"))
    assert done["output"] == {"seen": [True, True, False], "results": ["one", "two"]}


def test_the_apps_own_info_lines_are_shown(server: DurableRun) -> None:
    """The starter's ``logging.info`` (the root logger, at INFO as the Python worker sets it),
    but not a line per HTTP request of durable's own client (call_http's polls)."""
    payload = start(server.base, "replay_flags")
    line = f"Started orchestration with ID = '{payload['id']}'."
    poll(lambda: line in server.output(), "the starter's log line")
    finished(start(server.base, "poll_job", f"{server.base}/api/jobs"))
    assert "HTTP Request:" not in server.output()


def test_call_http_follows_202s(server: DurableRun) -> None:
    done = finished(start(server.base, "poll_job", f"{server.base}/api/jobs"))
    code, text = done["output"]
    assert code == 200 and text.endswith(" done after 3 polls"), done  # job1, job2, ...
    history = httpx.get(f"{done_url(server, done)}&showHistory=true", timeout=TIMEOUT).json()
    polls = [e for e in history["historyEvents"]
             if e["EventType"] == "TaskCompleted"
             and e.get("FunctionName") == "BuiltIn::HttpActivity"]
    assert len(polls) == 4  # the POST and three GETs, all in the instance's history


def done_url(server: DurableRun, status: dict[str, object]) -> str:
    return f"{server.base}{MGMT}/instances/{status['instanceId']}?showInput=false"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_event_raised_by_an_activity_comes_before_its_result(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """The activity raises an event at its own instance, then returns: the event was stored
    first, so the orchestration sees it first (task_any's winner), as on Azure."""
    running: DurableRun = request.getfixturevalue("server" if backend == "sqlite"
                                                  else "pg_server")
    outcomes = [finished(start(running.base, "event_order")) for _ in range(5)]
    assert [o["output"] for o in outcomes] == ["event first"] * 5, outcomes
