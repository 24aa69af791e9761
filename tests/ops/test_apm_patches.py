"""Durable's own SQLite storage is out of reach of APM libraries that patch ``sqlite3``.

Each test runs a real ``durable run`` process in which an APM patched ``sqlite3`` for the whole
process before durable was imported (tests/ops/apm/sitecustomize.py), with nothing listening
for its data, and checks that start-up and an orchestration finish within deadlines, that
neither a call of the patched ``sqlite3.connect`` nor a span comes from durable's own storage,
and that the app's own query IS traced (the patch was active).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import TIMEOUT, DurableRun, wait_until

APM = Path(__file__).with_name("apm")
APP = APM / "apm_app.py"
APP_QUERY = "SELECT upper(?)"  # apm_app.APP_QUERY (that module imports durable: not here)
STARTUP_DEADLINE = 15.0  # seconds; about 1 s here, minutes when each statement waits on an APM
RUN_DEADLINE = 15.0  # for an orchestration of two activities; well under 1 s here


@dataclass
class Observed:
    startup: float
    run: float
    connects: list[str]  # databases opened through the patched sqlite3.connect
    sqlite_spans: list[dict[str, Any]]
    threads: set[str]  # the threads anything was recorded on
    store: Path
    app_db: Path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_under(apm: str, tmp_path: Path, env: dict[str, str] | None = None) -> Observed:
    record, app_db, store = tmp_path / "apm.jsonl", tmp_path / "app-own.db", tmp_path / "store.db"
    environment = {"PYTHONPATH": str(APM), "APM_UNDER_TEST": apm, "APM_RECORD": str(record),
                   "APP_DB": str(app_db), **(env or {})}
    began = time.monotonic()
    with DurableRun(APP, "--storage", f"sqlite:///{store}", env=environment,
                    cwd=tmp_path) as server:
        startup = time.monotonic() - began
        response = httpx.post(f"{server.base}/api/start/greet", timeout=TIMEOUT)
        assert response.status_code == 202, response.text
        status_url = response.json()["statusQueryGetUri"]
        began = time.monotonic()
        done = wait_until(
            lambda: (s := httpx.get(status_url, timeout=TIMEOUT).json())["runtimeStatus"]
            in ("Completed", "Failed") and s,
            timeout=RUN_DEADLINE, what="the orchestration to finish")
        run = time.monotonic() - began
        assert done["runtimeStatus"] == "Completed", server.output()
        assert done["output"] == ["Hello TOKYO!", "Hello SEATTLE!"]
        server.stop()
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return Observed(
        startup=startup, run=run,
        connects=[line["connect"] for line in lines if "connect" in line],
        sqlite_spans=[line for line in lines if line.get("system") == "sqlite"],
        threads={line["thread"] for line in lines},
        store=store, app_db=app_db)


def check(observed: Observed) -> None:
    assert observed.startup < STARTUP_DEADLINE
    assert observed.run < RUN_DEADLINE
    # The app's two queries (one per activity) went through the APM: it was active...
    assert observed.connects == [str(observed.app_db)] * 2
    assert [s["statement"] for s in observed.sqlite_spans] == [APP_QUERY] * 2
    # ...and nothing of durable's store did: no connection, no span, nothing on its threads.
    assert str(observed.store) not in observed.connects
    assert not {t for t in observed.threads if t.startswith("durable-sqlite")}


def test_opentelemetry_sqlite3_instrumentation_traces_the_app_not_durable(
        tmp_path: Path) -> None:
    check(run_under("opentelemetry", tmp_path))


@pytest.mark.skipif(importlib.util.find_spec("ddtrace") is None,
                    reason="ddtrace is not a test dependency (about 45 MB, and a pytest plugin "
                           "loaded into every run): pip install ddtrace to run this test")
def test_ddtrace_in_synchronous_mode_with_no_agent_does_not_hold_durable_up(
        tmp_path: Path) -> None:
    """With the two variables Azure Functions sets, ddtrace sends each span before the code that
    ended it goes on: about 3 s each with no agent. Before durable opened its connections
    unpatched, every statement of its writer thread waited so (start-up took minutes); the
    app's own two queries still do (6 s in all)."""
    check(run_under("ddtrace", tmp_path, {
        "FUNCTIONS_WORKER_RUNTIME": "python", "FUNCTIONS_EXTENSION_VERSION": "~4",
        "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{closed_port()}",
        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
        "DD_REMOTE_CONFIGURATION_ENABLED": "false"}))
