"""``durable instances ...`` against a real ``durable run`` process: each command, on storage
(``--storage``) and through the server (``--url``), in tables and in ``--json``, and the exit
codes scripts rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from durable.cli import main
from durable.cli.instances import (
    EXIT_CONFLICT,
    EXIT_NOT_COMPLETED,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
    EXIT_UNAUTHORIZED,
    EXIT_USAGE,
)
from tests.http.conftest import DurableRun, wait_until

APP = Path(__file__).with_name("ops_app.py")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DurableRun, str]]:
    storage = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'hub.db'}"
    with DurableRun(APP, "--storage", storage) as run:
        yield run, storage
        run.stop()


def cli(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def as_json(*args: str, code: int = 0) -> Any:
    return json.loads(cli(*args, "--json", code=code).stdout)


@pytest.fixture(params=["storage", "url"])
def target(request: pytest.FixtureRequest, server: tuple[DurableRun, str]) -> list[str]:
    run, storage = server
    return ["--storage", storage] if request.param == "storage" else ["--url", run.base]


def finished(target: list[str], instance_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        item = as_json("instances", "show", instance_id, *target)
        done = item["runtimeStatus"] in ("Completed", "Failed", "Terminated")
        return item if done else None

    return wait_until(check, what=f"{instance_id} to finish")


def test_start_wait_show_and_history(target: list[str]) -> None:
    item = as_json("instances", "start", "hello", "--wait", "--timeout", "20", *target)
    assert item["runtimeStatus"] == "Completed"
    assert item["output"] == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    instance_id = item["instanceId"]
    shown = as_json("instances", "show", instance_id, *target)
    assert shown["name"] == "hello" and shown["output"] == item["output"]
    table = cli("instances", "show", instance_id, *target).stdout
    assert instance_id in table and "Completed" in table and "Hello Tokyo!" in table
    events = as_json("instances", "history", instance_id, *target)
    kinds = [e["EventType"] for e in events]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    assert kinds.count("TaskCompleted") == 3
    assert "TaskCompleted" in cli("instances", "history", instance_id, *target).stdout


def test_a_failed_wait_exits_5_and_shows_the_users_frames(target: list[str]) -> None:
    result = cli("instances", "start", "failing", "--input", "7", "--wait", *target,
                 code=EXIT_NOT_COMPLETED)
    assert "Failed" in result.stdout and "cannot handle 7" in result.stdout
    assert "ops_app.py" in result.stdout and "durable/orchestration" not in result.stdout
    started = as_json("instances", "start", "failing", "--input", "8", *target)
    item = finished(target, started["id"])
    assert item["failureDetails"]["errorType"] == "durable.errors.TaskFailedError"


def test_a_wait_that_times_out_exits_6(target: list[str]) -> None:
    result = cli("instances", "start", "approval", "--wait", "--timeout", "0.2", *target,
                 code=EXIT_TIMEOUT)
    assert "did not finish" in result.stderr


def test_raise_suspend_resume_terminate(target: list[str]) -> None:
    first = as_json("instances", "start", "approval", *target)["id"]
    wait_until(lambda: as_json("instances", "show", first, *target)["customStatus"],
               what="the approval to wait")
    # Resuming a Running instance is refused: exit 4 and the reason, no traceback.
    refused = cli("instances", "resume", first, *target, code=EXIT_CONFLICT).output
    assert refused == (f"Error: Cannot resume the orchestration instance '{first}' because it "
                       "is Running; only a Suspended instance can be resumed.\n")
    assert as_json("instances", "suspend", first, "--reason", "hold", *target) == {
        "instanceId": first, "requested": "suspend"}
    wait_until(lambda: as_json("instances", "show", first, *target)["runtimeStatus"]
               == "Suspended", what="suspension")
    refused = cli("instances", "suspend", first, *target, code=EXIT_CONFLICT).output
    assert f"Cannot suspend the orchestration instance '{first}' because it is Suspended" in (
        refused) and "Traceback" not in refused
    cli("instances", "resume", first, *target)
    wait_until(lambda: as_json("instances", "show", first, *target)["runtimeStatus"]
               == "Running", what="resumption")
    raised = as_json("instances", "raise", first, "Approval", "--data", '{"by": "ops"}', *target)
    assert raised == {"instanceId": first, "event": "Approval", "raised": True}
    assert finished(target, first)["output"] == {"approved": {"by": "ops"}}
    second = as_json("instances", "start", "approval", *target)["id"]
    assert "terminate requested" in cli("instances", "terminate", second, "--reason", "no",
                                        *target).stdout
    item = finished(target, second)
    assert item["runtimeStatus"] == "Terminated" and item["output"] == "no"
    # A finished instance cannot be signalled: exit 4; an unknown one: exit 3.
    cli("instances", "raise", second, "Approval", *target, code=EXIT_CONFLICT)
    cli("instances", "terminate", second, *target, code=EXIT_CONFLICT)
    cli("instances", "suspend", "no-such-instance", *target, code=EXIT_NOT_FOUND)
    cli("instances", "show", "no-such-instance", *target, code=EXIT_NOT_FOUND)


def test_start_conflicts_and_bad_input(target: list[str]) -> None:
    name = f"fixed-{target[0].strip('-')}"
    as_json("instances", "start", "approval", "--id", name, *target)
    cli("instances", "start", "approval", "--id", name, *target, code=EXIT_CONFLICT)
    cli("instances", "start", "hello", "--input", "{not json", *target, code=EXIT_USAGE)
    cli("instances", "list", "--status", "Sleeping", *target, code=EXIT_USAGE)
    cli("instances", "terminate", name, *target)
    finished(target, name)


def test_list_filters_paging_and_json(target: list[str]) -> None:
    prefix = f"page-{target[0].strip('-')}-"
    ids = [as_json("instances", "start", "hello", "--id", f"{prefix}{i}", *target)["id"]
           for i in range(5)]
    for instance_id in ids:
        finished(target, instance_id)
    page = as_json("instances", "list", "--prefix", prefix, "--top", "2", *target)
    assert [i["instanceId"] for i in page["instances"]] == ids[::-1][:2]  # newest first
    token = page["continuationToken"]
    assert token
    rest = as_json("instances", "list", "--prefix", prefix, "--top", "2", "--token", token,
                   *target)
    assert [i["instanceId"] for i in rest["instances"]] == ids[::-1][2:4]
    everything = as_json("instances", "list", "--prefix", prefix, "--top", "2", "--all",
                         "--oldest-first", *target)
    assert [i["instanceId"] for i in everything["instances"]] == ids
    assert everything["continuationToken"] is None
    named = as_json("instances", "list", "--name", "hello", "--status", "Completed",
                    "--from", "1h", *target)
    assert set(ids) <= {i["instanceId"] for i in named["instances"]}
    assert {i["name"] for i in named["instances"]} == {"hello"}
    assert as_json("instances", "list", "--prefix", prefix, "--to", "2000-01-01",
                   *target)["instances"] == []
    table = cli("instances", "list", "--prefix", prefix, *target).stdout
    assert ids[0] in table and "Completed" in table and "5 instance(s)" in table


def test_restart_and_purge(target: list[str]) -> None:
    item = as_json("instances", "start", "hello", "--wait", *target)
    again = as_json("instances", "restart", item["instanceId"], *target)
    assert again["id"] != item["instanceId"]
    assert finished(target, again["id"])["output"] == item["output"]
    same = as_json("instances", "restart", item["instanceId"], "--same-id", *target)
    assert same["id"] == item["instanceId"]
    finished(target, same["id"])
    assert as_json("instances", "purge", item["instanceId"], "--yes", *target) == {
        "instancesDeleted": 1}
    cli("instances", "show", item["instanceId"], *target, code=EXIT_NOT_FOUND)
    cli("instances", "purge", item["instanceId"], "--yes", *target, code=EXIT_NOT_FOUND)
    purged = as_json("instances", "purge", "--from", "1h", "--status", "Completed", "--yes",
                     *target)
    assert purged["instancesDeleted"] >= 1
    cli("instances", "show", again["id"], *target, code=EXIT_NOT_FOUND)
    cli("instances", "purge", "x", "--from", "1h", "--yes", *target, code=EXIT_USAGE)


def test_a_server_beyond_loopback_wants_the_key(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'keyed.db'}"
    env = {"DURABLE_SYSTEM_KEY": "system-key-for-tests-0123456789"}
    with DurableRun(APP, "--storage", storage, "--host", "0.0.0.0", env=env) as run:
        cli("instances", "list", "--url", run.base, code=EXIT_UNAUTHORIZED)
        cli("instances", "list", "--url", run.base, "--key", "wrong", code=EXIT_UNAUTHORIZED)
        listed = as_json("instances", "list", "--url", run.base, "--key",
                         env["DURABLE_SYSTEM_KEY"])
        assert listed == {"instances": [], "continuationToken": None}
        run.stop()


def test_durable_dashboard_serves_a_task_hub_on_its_own(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    import httpx

    storage = f"sqlite:///{tmp_path / 'alone.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    as_json("instances", "start", "hello", "--id", "queued-1", "--storage", storage)
    process = subprocess.Popen(
        [sys.executable, "-m", "durable.cli", "dashboard", "--storage", storage, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert process.stdout is not None
        seen = []
        found = None
        for line in process.stdout:  # log lines may come first
            seen.append(line)
            found = re.search(r"(http://\S+)/dashboard/", line)
            if found:
                break
        assert found, seen
        response = httpx.get(found.group(1) + "/", follow_redirects=True)
        assert response.status_code == 200 and "queued-1" in response.text
        assert "Pending" in response.text
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


# -- entities, rewind, export-history -------------------------------------------------------


def entity_state(target: list[str], name: str, key: str) -> Any:
    """The entity's state, or None while it has none (``show`` exits 3 then)."""
    result = CliRunner().invoke(main, ["entities", "show", name, key, "--json", *target])
    assert result.exit_code in (0, EXIT_NOT_FOUND), result.output
    return json.loads(result.stdout)["state"] if result.exit_code == 0 else None


def test_signal_show_and_list_entities(target: list[str]) -> None:
    key = "cli-" + target[0].strip("-")
    for amount in (2, 3):
        signaled = as_json("entities", "signal", "Tally", key, "add", "--input", str(amount),
                           *target)
        assert signaled == {"entityId": {"name": "tally", "key": key}, "signaled": "add"}
    wait_until(lambda: entity_state(target, "tally", key) == 5, what="the tally at 5")
    assert "5" in cli("entities", "show", "tally", key, *target).stdout
    listed = as_json("entities", "list", "--name", "TALLY", *target)
    [mine] = [e for e in listed["entities"] if e["entityId"] == {"name": "tally", "key": key}]
    assert mine["state"] == 5
    assert key in cli("entities", "list", *target).stdout
    cli("entities", "show", "tally", "nobody-" + key, *target, code=EXIT_NOT_FOUND)
    if "--url" in target:  # the server knows the app's entities; bare storage does not
        cli("entities", "signal", "unknown", "k", "add", *target, code=EXIT_USAGE)


def test_rewind_from_the_command_line(target: list[str]) -> None:
    done = as_json("instances", "start", "hello", "--wait", *target)
    cli("instances", "rewind", done["instanceId"], *target, code=EXIT_CONFLICT)
    cli("instances", "rewind", "no-such-instance", *target, code=EXIT_NOT_FOUND)
    failing = as_json("instances", "start", "failing", "--input", "7", *target)
    finished(target, failing["id"])
    rewound = as_json("instances", "rewind", failing["id"], "--reason", "try again", *target)
    assert rewound == {"instanceId": failing["id"], "requested": "rewind"}

    def failed_again() -> bool:  # the activity always explodes: it fails once more
        kinds = [e["EventType"] for e in as_json("instances", "history", failing["id"],
                                                 *target)]
        return "ExecutionRewound" in kinds and kinds[-1] == "ExecutionCompleted"

    wait_until(failed_again, what="the rewound instance to fail again")


def test_export_history_writes_replayable_files(server: tuple[DurableRun, str],
                                                tmp_path: Path) -> None:
    from durable.testing import read_history_file, replay
    from tests.ops.ops_app import app

    _, storage = server
    item = as_json("instances", "start", "hello", "--wait", "--storage", storage)
    written = as_json("instances", "export-history", item["instanceId"], "--out",
                      str(tmp_path), "--storage", storage)
    [path] = written["files"]
    instance, _ = read_history_file(path)
    assert instance["instanceId"] == item["instanceId"] and instance["status"] == "Completed"
    assert replay(app, [path]).ok
    cli("instances", "export-history", "missing", "--storage", storage, code=EXIT_NOT_FOUND)
