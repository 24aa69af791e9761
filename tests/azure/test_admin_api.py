"""``POST /admin/functions/<name>``, Core Tools' way to run a timer by hand, against a real
``durable run`` of an Azure project (tests/azure/apps/host_settings_v2): the timer really runs
(it writes ticks.log and starts an orchestration through its client binding), an activity runs
with its input, and everything else is refused with the status and message a caller can act
on. Beyond loopback only the master key opens it, as Azure's admin API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.azure.conftest import APPS, TIMEOUT, copy_project, poll
from tests.http.conftest import MGMT, DurableRun

PROJECT = APPS / "host_settings_v2"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DurableRun, Path]]:
    root = copy_project(PROJECT, tmp_path_factory.mktemp("admin"))
    with DurableRun(root, cwd=root) as server:
        yield server, root


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def invoke(base: str, name: str, body: Any = None, raw: bytes | None = None,
           **kwargs: Any) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{base}/admin/functions/{name}", content=content, timeout=TIMEOUT,
                      **kwargs)


def test_a_timer_runs_by_hand(served: tuple[DurableRun, Path]) -> None:
    server, root = served
    ticks = root / "ticks.log"
    before = len(lines(ticks))
    answer = invoke(server.base, "nightly", {})
    assert answer.status_code == 202 and answer.content == b""
    runs = poll(lambda: len(found := lines(ticks)) > before and found, "the timer to run")
    tick = json.loads(runs[-1])
    assert tick["pastDue"] is False
    # The run used its client binding: the orchestration it started completes.
    status_url = f"{server.base}{MGMT}/instances/{tick['instanceId']}"
    done = poll(lambda: (s := httpx.get(status_url, timeout=TIMEOUT).json())["runtimeStatus"]
                == "Completed" and s, "the orchestration the timer started")
    assert done["output"] == "Hello timer!"
    # Names ignore case (the Functions host looks them up so); the input is ignored.
    assert invoke(server.base, "NIGHTLY", {"input": "whatever"}).status_code == 202
    poll(lambda: len(lines(ticks)) == before + 2, "the second run")


def test_an_activity_runs_by_hand_with_its_input(served: tuple[DurableRun, Path]) -> None:
    server, root = served
    greetings = root / "greetings.log"
    # The input is the activity's input as JSON text, as the Durable extension reads it.
    assert invoke(server.base, "greet", {"input": json.dumps("Eve")}).status_code == 202
    poll(lambda: "Eve" in lines(greetings), "the activity to run")
    assert "activity 'greet' run by hand returned 'Hello Eve!'" in poll(
        lambda: "run by hand returned 'Hello Eve!'" in (o := server.output()) and o,
        "the result in the log")


@pytest.mark.parametrize(("name", "body", "status", "message"), [
    ("no_such_function", {}, 404, "No function named 'no_such_function'."),
    ("http_start", {}, 400, "is HTTP-triggered; call its route"),
    ("hub", {"input": "x"}, 400, "is HTTP-triggered"),
    ("greeter", {}, 400, "is an orchestrator; start it with POST "
                         "/runtime/webhooks/durabletask/orchestrators/greeter"),
    ("nightly", b"", 400, "The request body is empty"),
    ("nightly", b"{not json", 400, "The request body is not valid JSON"),
    ("nightly", b"[]", 400, "must be a JSON object"),
    ("nightly", {"input": {"a": 1}}, 400, "'input' must be a string, number or boolean"),
    ("greet", {"input": "Eve"}, 400, "must be JSON text"),
])
def test_refusals(served: tuple[DurableRun, Path], name: str, body: Any, status: int,
                  message: str) -> None:
    server, root = served
    ticks_before = lines(root / "ticks.log")
    answer = invoke(server.base, name, raw=body if isinstance(body, bytes) else None,
                    body=None if isinstance(body, bytes) else body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["Message"]
    assert lines(root / "ticks.log") == ticks_before  # nothing ran


def test_only_post_to_a_function_is_served(served: tuple[DurableRun, Path]) -> None:
    server, _ = served
    base = server.base
    assert httpx.get(f"{base}/admin/functions/nightly", timeout=TIMEOUT).status_code == 404
    assert httpx.post(f"{base}/admin/host/status", timeout=TIMEOUT).status_code == 404
    assert httpx.post(f"{base}/admin/functions", timeout=TIMEOUT).status_code == 404


def test_beyond_loopback_only_the_master_key_opens_it(tmp_path: Path) -> None:
    root = copy_project(PROJECT, tmp_path)
    keys = {"DURABLE_FUNCTION_KEY": "function-key-0123456789abcdef",
            "DURABLE_SYSTEM_KEY": "system-key-0123456789abcdef",
            "DURABLE_MASTER_KEY": "master-key-0123456789abcdef"}
    with DurableRun(root, "--host", "0.0.0.0", "--cors", "http://localhost:3000", cwd=root,
                    env=keys) as server:
        base = server.base
        for presented in (None, keys["DURABLE_FUNCTION_KEY"], keys["DURABLE_SYSTEM_KEY"]):
            headers = {"x-functions-key": presented} if presented else {}
            refused = invoke(base, "nightly", {}, headers=headers)
            assert refused.status_code == 401, presented
        # The key is checked before the lookup: no key, no word on which functions exist.
        assert invoke(base, "no_such_function", {}).status_code == 401
        # A browser's preflight carries no key, and is answered all the same.
        assert httpx.request("OPTIONS", f"{base}/admin/functions/nightly", timeout=TIMEOUT,
                             headers={"Origin": "http://localhost:3000",
                                      "Access-Control-Request-Method": "POST"}
                             ).status_code == 204
        assert not (root / "ticks.log").exists()
        accepted = invoke(base, "nightly", {}, params={"code": keys["DURABLE_MASTER_KEY"]})
        assert accepted.status_code == 202
        poll(lambda: lines(root / "ticks.log"), "the timer to run")
