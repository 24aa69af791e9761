"""``POST /admin/functions/<name>`` on a native app under a real ``durable run``: timer
functions (``@app.timer_trigger``) and activities run by hand, as for Azure projects
(tests/azure/test_admin_api.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import MGMT, TIMEOUT, DurableRun, wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DurableRun, Path]]:
    folder = tmp_path_factory.mktemp("native-admin")
    log = folder / "runs.log"
    with DurableRun("tests/http/admin_app.py", "--storage", f"sqlite:///{folder / 'a.db'}",
                    env={"ADMIN_TEST_LOG": str(log)}) as server:
        yield server, log


def runs(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_native_timer_runs_by_hand(served: tuple[DurableRun, Path]) -> None:
    server, log = served
    assert f"by hand: POST {server.base}/admin/functions/<name>" in server.output()
    answer = httpx.post(f"{server.base}/admin/functions/yearly", json={}, timeout=TIMEOUT)
    assert answer.status_code == 202 and answer.content == b""
    found = wait_until(lambda: [r for r in runs(log) if r["run"] == "yearly"],
                       what="the timer to run")
    run = found[0]
    assert run["pastDue"] is False
    # Monitored: the schedule status says which occurrence comes next (1 January).
    assert run["status"]["Next"].endswith("-01-01T00:00:00.000000Z")
    assert set(run["status"]) == {"Last", "Next", "LastUpdated"}
    url = f"{server.base}{MGMT}/instances/{run['instanceId']}"
    done = wait_until(lambda: (s := httpx.get(url, timeout=TIMEOUT).json())["runtimeStatus"]
                      == "Completed" and s, what="the orchestration the timer started")
    assert done["output"] == ["recorded"]


def test_a_native_activity_runs_by_hand(served: tuple[DurableRun, Path]) -> None:
    server, log = served
    answer = httpx.post(f"{server.base}/admin/functions/record",
                        json={"input": json.dumps({"n": 1})}, timeout=TIMEOUT)
    assert answer.status_code == 202
    wait_until(lambda: {"run": "record", "input": {"n": 1}} in runs(log),
               what="the activity to run")
    # A number is the JSON text of a number; no input is None.
    for body, value in (({"input": 7}, 7), ({}, None)):
        assert httpx.post(f"{server.base}/admin/functions/record", json=body,
                          timeout=TIMEOUT).status_code == 202
        wait_until(lambda v=value: {"run": "record", "input": v} in runs(log),
                   what=f"the activity to run with {value!r}")


def test_orchestrators_and_entities_are_refused(served: tuple[DurableRun, Path]) -> None:
    server, _ = served
    for name, hint in (("wrap", "/runtime/webhooks/durabletask/orchestrators/wrap"),
                       ("tally", "/runtime/webhooks/durabletask/entities/tally/<key>")):
        answer = httpx.post(f"{server.base}/admin/functions/{name}", json={}, timeout=TIMEOUT)
        assert answer.status_code == 400
        assert hint in answer.json()["Message"]
    # Built-in functions are no user function.
    answer = httpx.post(f"{server.base}/admin/functions/durable::TimerSchedule", json={},
                        timeout=TIMEOUT)
    assert answer.status_code == 404


def test_a_shutdown_lets_runs_by_hand_finish(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    with DurableRun("tests/http/admin_app.py", "--storage", f"sqlite:///{tmp_path / 'a.db'}",
                    env={"ADMIN_TEST_LOG": str(log)}) as server:
        answer = httpx.post(f"{server.base}/admin/functions/slow", json={"input": 0.5},
                            timeout=TIMEOUT)
        assert answer.status_code == 202
        assert server.stop() == 0, server.output()  # SIGTERM while the run sleeps
    assert runs(log) == [{"run": "slow", "input": 0.5}]
