"""End-to-end: real ``durable run`` processes, real HTTP, several client processes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from tests.http.conftest import MGMT, REPO, TIMEOUT, DurableRun, wait_until

EXAMPLE = REPO / "examples" / "singleton" / "function_app.py"
SAMPLE = Path(__file__).with_name("sample_app.py")
CLIENT_PROCESSES = 5
REQUESTS_PER_PROCESS = 10


def status_of(base: str, instance_id: str) -> dict:
    response = httpx.get(f"{base}{MGMT}/instances/{instance_id}", timeout=10)
    assert response.status_code in (200, 202), response.text
    return response.json()


def wait_for_status(base: str, instance_id: str, wanted: str) -> dict:
    return wait_until(
        lambda: (s := status_of(base, instance_id))["runtimeStatus"] == wanted and s,
        what=f"{instance_id} {wanted}",
    )


def runs_of(log: Path, instance_id: str) -> int:
    if not log.exists():
        return 0
    return log.read_text().split().count(instance_id)


def stop_job(base: str, payload: dict, reason: str) -> None:
    url = payload["sendEventPostUri"].replace("{eventName}", "stop")
    assert httpx.post(url, json=reason, timeout=10).status_code == 202


def test_the_singleton_example_unchanged(tmp_path: Path) -> None:
    """The article's flow as examples/singleton ships it, then a 50-request race on one ID."""
    app_file = tmp_path / "function_app.py"
    shutil.copy(EXAMPLE, app_file)  # runs.log and durable.db land beside it, in tmp_path
    log = tmp_path / "runs.log"
    with DurableRun(app_file, cwd=tmp_path) as server:
        assert "http_start_single: [POST]" in server.output()
        assert (tmp_path / "durable.db").exists()  # SQLite by default, beside the app
        url = f"{server.base}/api/orchestrators/singleton_job/nightly"

        first = httpx.post(url, timeout=10)
        assert first.status_code == 202
        payload = first.json()
        assert first.headers["location"] == payload["statusQueryGetUri"]
        assert payload["statusQueryGetUri"].startswith(f"{server.base}{MGMT}/instances/nightly?")
        wait_until(lambda: runs_of(log, "nightly") == 1, what="the job's first run")

        again = httpx.post(url, timeout=10)
        assert again.status_code == 409
        assert again.text == "An instance with ID 'nightly' already exists."
        explicit = httpx.post(url.replace("/api/", "/api/explicit/"), timeout=10)
        assert explicit.status_code == 409 and explicit.json()["runtimeStatus"] == "Running"
        management = httpx.post(f"{server.base}{MGMT}/orchestrators/singleton_job/nightly")
        assert management.status_code == 409
        assert management.json()["ExceptionType"] == "InstanceAlreadyExistsError"

        stop_job(server.base, payload, "first")
        done = wait_for_status(server.base, "nightly", "Completed")
        assert done["output"] == {"run": 1, "stopped": "first"}
        restarted = httpx.post(url, timeout=10)
        assert restarted.status_code == 202
        wait_until(lambda: runs_of(log, "nightly") == 2, what="the second run")
        stop_job(server.base, restarted.json(), "second")
        wait_for_status(server.base, "nightly", "Completed")

        # The race: many client processes POST one new instance ID at the same moment.
        race_url = f"{server.base}/api/orchestrators/singleton_job/race"
        clients = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.http.post_burst", race_url,
                 str(REQUESTS_PER_PROCESS)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            )
            for _ in range(CLIENT_PROCESSES)
        ]
        try:
            for client in clients:
                assert client.stdout is not None and client.stdout.readline().strip() == "ready"
            for client in clients:
                assert client.stdin is not None
                client.stdin.write("go\n")
                client.stdin.flush()
            results = []
            for client in clients:
                out, _ = client.communicate(timeout=TIMEOUT)
                assert client.returncode == 0
                results += json.loads(out.strip().splitlines()[-1])
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
        codes = Counter(code for code, _ in results)
        assert codes == {202: 1, 409: CLIENT_PROCESSES * REQUESTS_PER_PROCESS - 1}, codes
        # 409s answered by the article's own check (text) or by the atomic start (JSON):
        kinds = Counter(kind.split(";")[0] for code, kind in results if code == 409)
        print(f"\n409 answers by kind: {dict(kinds)}")

        wait_until(lambda: runs_of(log, "race") == 1, what="the race winner's run")
        status = wait_for_status(server.base, "race", "Running")
        assert status["customStatus"] == "waiting for stop"
        response = httpx.post(f"{server.base}{MGMT}/instances/race/raiseEvent/stop",
                              json="raced", timeout=10)
        assert response.status_code == 202
        assert wait_for_status(server.base, "race", "Completed")["output"]["run"] == 3
        assert runs_of(log, "race") == 1  # exactly one orchestration executed
        assert httpx.post(race_url, timeout=10).status_code == 202  # and it can start again
        wait_until(lambda: runs_of(log, "race") == 2, what="the run after the race")
        assert server.stop() == 0, server.output()
    assert "Traceback" not in server.output(), server.output()


def test_graceful_shutdown_loses_nothing(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'graceful.db'}"
    marker = tmp_path / "slow.log"
    with DurableRun(SAMPLE, "--storage", storage) as server:
        started = httpx.post(f"{server.base}{MGMT}/orchestrators/slow_job/graceful",
                             json=str(marker), timeout=10)
        assert started.status_code == 202
        wait_until(marker.exists, what="the slow activity to start")
        # SIGTERM while the activity runs: it finishes and its result is committed first.
        assert server.stop(signal.SIGTERM) == 0, server.output()
    assert "shutting down" in server.output()
    # Again, naming the app as module:attribute this time.
    with DurableRun("tests.http.sample_app:app", "--storage", storage) as server:
        status = wait_for_status(server.base, "graceful", "Completed")
        assert status["output"] == "finished"
        assert marker.read_text() == "started\n"  # the activity did not have to run again
        assert server.stop(signal.SIGINT) == 0, server.output()


def test_keys_when_listening_beyond_loopback(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'keys.db'}"
    env = {"DURABLE_FUNCTION_KEY": "function-key-from-the-environment-0123456789"}
    with DurableRun(SAMPLE, "--storage", storage, "--host", "0.0.0.0",
                    "--max-request-body", "1000", "--verbose", env=env) as server:
        printed = subprocess.run(
            [sys.executable, "-m", "durable.cli", "keys", "--storage", storage],
            capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"}, check=True,
        ).stdout
        keys = dict(line.split(": ", 1) for line in printed.splitlines())
        system, master = keys["system"].split()[0], keys["master"].split()[0]
        banner = server.output()
        assert "Keys: required" in banner
        for secret in (system, master, env["DURABLE_FUNCTION_KEY"]):
            assert secret not in banner  # shown masked only
        assert system[:4] in banner

        base = server.base
        assert httpx.get(f"{base}{MGMT}/instances").status_code == 401
        assert httpx.get(f"{base}{MGMT}/instances", params={"code": "nope"}).status_code == 401
        assert httpx.get(f"{base}{MGMT}/instances", params={"code": system}).status_code == 200
        assert httpx.get(f"{base}{MGMT}/instances",
                         headers={"x-functions-key": master}).status_code == 200
        function_url = f"{base}/api/function-level"
        assert httpx.get(function_url).status_code == 401
        assert httpx.get(function_url, params={"code": env["DURABLE_FUNCTION_KEY"]}).text == (
            "function ok"
        )
        assert httpx.get(f"{base}/api/admin-level", params={"code": master}).status_code == 200
        # The anonymous starter hands out URLs that carry the system key, and they work.
        started = httpx.post(f"{base}/api/start/echo/keyed", json=7, timeout=10)
        assert started.status_code == 202
        status_url = started.json()["statusQueryGetUri"]
        assert f"code={system}" in status_url
        wait_until(lambda: httpx.get(status_url).json()["runtimeStatus"] == "Completed")
        too_big = httpx.post(f"{base}{MGMT}/orchestrators/echo/big", params={"code": system},
                             content=b'"' + b"x" * 1000 + b'"')
        assert too_big.status_code == 413
        assert server.stop() == 0, server.output()
        # Never logged in full, not even in the access log of a --verbose run.
        log = server.output()
        assert "/runtime/webhooks/durabletask/instances?code=*** HTTP/1.1" in log
        for secret in (system, master, env["DURABLE_FUNCTION_KEY"]):
            assert secret not in log

    with DurableRun(SAMPLE, "--storage", storage,  # loopback: no keys needed
                    "--overridable-states", "AnyState") as server:
        assert "Keys: not required" in server.output()
        assert httpx.get(f"{server.base}{MGMT}/instances/keyed").status_code == 200
        # AnyState: a start replaces even a running instance.
        start_url = f"{server.base}{MGMT}/orchestrators/wait_for_go/any"
        assert httpx.post(start_url, json="first", timeout=10).status_code == 202
        wait_for_status(server.base, "any", "Running")
        assert httpx.post(start_url, json="second", timeout=10).status_code == 202
        assert status_of(server.base, "any")["input"] == "second"
        huge = b'"' + b"x" * (10 * 1024 * 1024) + b'"'  # just over the default 10 MiB
        response = httpx.post(f"{server.base}{MGMT}/orchestrators/echo/huge", content=huge,
                              timeout=30)
        assert response.status_code == 413
        assert httpx.get(f"{server.base}{MGMT}/instances/huge").status_code == 404
        server.stop()


def test_a_front_end_without_a_worker_leaves_the_work_to_durable_worker(tmp_path: Path) -> None:
    """`durable run --no-worker` accepts starts; only a `durable worker` process runs them."""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    with DurableRun(SAMPLE, "--no-worker", "--storage", storage) as front:
        started = httpx.post(f"{front.base}{MGMT}/orchestrators/doubler/front-1", json=21,
                             timeout=10)
        assert started.status_code == 202
        assert status_of(front.base, "front-1")["runtimeStatus"] == "Pending"
        worker = subprocess.Popen(
            [sys.executable, "-m", "durable.cli", "worker", str(SAMPLE), "--storage", storage],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            done = wait_for_status(front.base, "front-1", "Completed")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=TIMEOUT) == 0
    assert done["output"] == 42


COUNTER_EXAMPLE = REPO / "examples" / "counter" / "function_app.py"


def test_the_counter_entity_example_over_http(tmp_path: Path) -> None:
    """examples/counter under `durable run`: concurrent signals lose no update, reads agree
    through the app's route and the management API, an orchestration locks and doubles it."""
    app_file = tmp_path / "function_app.py"
    shutil.copy(COUNTER_EXAMPLE, app_file)
    with DurableRun(app_file, cwd=tmp_path) as server:
        api = f"{server.base}/api/counters"
        with httpx.Client(timeout=10) as http:
            assert http.get(f"{api}/c1").status_code == 404
            for _ in range(20):
                assert http.post(f"{api}/c1/add/5").status_code == 202
            wait_until(lambda: http.get(f"{api}/c1").text == "100", what="the counter at 100")
            management = http.get(f"{server.base}{MGMT}/entities/Counter/c1")
            assert management.status_code == 200 and management.json() == 100
            doubled = http.post(f"{api}/c1/double")
            assert doubled.status_code == 200 and doubled.json() == 200
            listed = http.get(f"{server.base}{MGMT}/entities", params={"fetchState": "true"})
            assert listed.json()[0]["entityId"] == {"name": "counter", "key": "c1"}
            assert listed.json()[0]["state"] == 200
        assert server.stop() == 0
