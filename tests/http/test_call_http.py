"""``context.call_http`` against a real local HTTP server, including the 202 polling pattern."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import durable as df
from durable.history import TimerCreated
from durable.orchestration.http_task import build_request, retry_after_seconds
from tests.http.conftest import FAST, TIMEOUT, eventually

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def fetch(context: df.DurableOrchestrationContext):
    request = context.get_input()
    response = yield context.call_http(
        request["method"], request["uri"], request.get("content"), request.get("headers"),
        is_raw_str=request.get("raw", False),
        asynchronous_patterns=request.get("async", True),
    )
    return response


@app.orchestration_trigger(context_name="context")
def fetch_or_report(context: df.DurableOrchestrationContext):
    try:
        yield context.call_http("GET", context.get_input())
    except df.TaskFailedError as error:
        return f"failed: {error.error_type}"
    return "unexpected success"


@app.orchestration_trigger(context_name="context")
def fetch_both(context: df.DurableOrchestrationContext):
    base = context.get_input()
    first, second = yield context.task_all([
        context.call_http("GET", f"{base}/hello"),
        context.call_http("POST", f"{base}/jobs?fast=1", {"job": 2}),
    ])
    return [first["content"], second["content"]]


class Recorder(BaseHTTPRequestHandler):
    """A tiny real HTTP server: plain answers, an echo, and a job that answers 202 twice."""

    requests: list[dict[str, Any]]
    polls: dict[str, int]

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _record(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append({  # type: ignore[attr-defined]
            "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
            "body": body.decode(),
        })
        return body

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        polls: dict[str, int] = self.server.polls  # type: ignore[attr-defined]
        if self.path == "/hello":
            self._send(200, b"hello", {"Content-Type": "text/plain", "X-Custom": "1"})
        elif self.path.startswith("/jobs/status"):
            polls[self.path] = polls.get(self.path, 0) + 1
            if polls[self.path] < 3:
                wait = "0" if "fast" in self.path or polls[self.path] > 1 else "1"
                self._send(202, b"", {"Location": self.path, "Retry-After": wait})
            else:
                self._send(200, b'{"result": "done"}', {"Content-Type": "application/json"})
        elif self.path == "/accepted-no-location":
            self._send(202, b"queued")
        else:
            self._send(404, b"no")

    def do_POST(self) -> None:
        body = self._record()
        if self.path.startswith("/jobs"):
            suffix = "?fast=1" if "fast" in self.path else ""
            self._send(202, b"", {"Location": f"/jobs/status{suffix}", "Retry-After": "0"})
        else:
            echoed = json.dumps({"body": body.decode(), "type": self.headers.get("content-type")})
            self._send(200, echoed.encode(), {"Content-Type": "application/json"})


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.requests = []  # type: ignore[attr-defined]
    httpd.polls = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def base_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


async def run(tmp_path: Path, orchestrator: str, payload: Any) -> df.DurableOrchestrationStatus:
    async with df.Host(app, storage=f"sqlite:///{tmp_path / 'http.db'}", **FAST) as host:
        instance_id = await host.client.start_new(orchestrator, None, payload)
        return await host.client.wait_for_completion(instance_id, timeout=TIMEOUT)


async def test_a_simple_get(tmp_path: Path, server: ThreadingHTTPServer) -> None:
    status = await run(tmp_path, "fetch", {"method": "GET", "uri": f"{base_of(server)}/hello"})
    assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed
    response = status.output
    assert response["statusCode"] == 200 and response["content"] == "hello"
    assert response["headers"]["X-Custom"] == "1"
    assert response["headers"]["Content-Type"] == "text/plain"


async def test_content_is_sent_as_json_unless_raw(tmp_path: Path, server) -> None:
    uri = f"{base_of(server)}/echo"
    as_json = await run(tmp_path, "fetch", {"method": "POST", "uri": uri, "content": {"a": 1}})
    assert json.loads(as_json.output["content"]) == {"body": '{"a": 1}', "type": "application/json"}
    raw = await run(tmp_path, "fetch", {"method": "POST", "uri": uri, "content": "a=1",
                                        "raw": True, "headers": {"Content-Type": "text/x"}})
    assert json.loads(raw.output["content"]) == {"body": "a=1", "type": "text/x"}


async def test_the_202_pattern_is_polled_with_durable_timers(tmp_path: Path, server) -> None:
    uri = f"{base_of(server)}/jobs"
    headers = {"Authorization": "Bearer t", "x-functions-key": "secret"}
    async with df.Host(app, storage=f"sqlite:///{tmp_path / 'poll.db'}", **FAST) as host:
        instance_id = await host.client.start_new(
            "fetch", None, {"method": "POST", "uri": uri, "content": {"job": 1},
                            "headers": headers})
        status = await host.client.wait_for_completion(instance_id, timeout=TIMEOUT)
        history = await host.backend.get_history(instance_id)
    assert status.output["statusCode"] == 200
    assert json.loads(status.output["content"]) == {"result": "done"}
    seen = [(r["method"], r["path"]) for r in server.requests]  # type: ignore[attr-defined]
    assert seen == [("POST", "/jobs"), ("GET", "/jobs/status"), ("GET", "/jobs/status"),
                    ("GET", "/jobs/status")]
    polls = server.requests[1:]  # type: ignore[attr-defined]
    assert all(r["headers"].get("Authorization") == "Bearer t" for r in polls)
    assert all("x-functions-key" not in {k.lower() for k in r["headers"]} for r in polls)
    timers = [e for e in history if isinstance(e, TimerCreated)]
    assert len(timers) == 3  # Retry-After 0, 1, 0: one durable timer before every poll
    assert timers[1].fire_at - timers[1].timestamp == pytest.approx(1.0, abs=0.05)


async def test_polling_survives_a_restart(tmp_path: Path, server) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    uri = f"{base_of(server)}/jobs"
    async with df.Host(app, storage=url, **FAST) as host:
        instance_id = await host.client.start_new("fetch", None, {"method": "POST", "uri": uri})
        # Stop while the orchestration waits on its 1-second timer between polls.
        async def polled() -> bool:
            return len(server.requests) >= 2  # type: ignore[attr-defined]

        await eventually(polled, what="the first poll")
    async with df.Host(app, storage=url, **FAST) as host:
        status = await host.client.wait_for_completion(instance_id, timeout=TIMEOUT)
    assert json.loads(status.output["content"]) == {"result": "done"}
    assert len(server.requests) == 4  # type: ignore[attr-defined]


async def test_without_asynchronous_patterns_the_202_is_returned(tmp_path: Path, server):
    status = await run(tmp_path, "fetch", {"method": "POST", "uri": f"{base_of(server)}/jobs",
                                           "async": False})
    assert status.output["statusCode"] == 202
    assert status.output["headers"]["Location"] == "/jobs/status"


async def test_a_202_without_location_is_final(tmp_path: Path, server) -> None:
    status = await run(tmp_path, "fetch", {"method": "GET",
                                           "uri": f"{base_of(server)}/accepted-no-location"})
    assert status.output["statusCode"] == 202 and status.output["content"] == "queued"


async def test_calls_run_in_parallel(tmp_path: Path, server) -> None:
    status = await run(tmp_path, "fetch_both", base_of(server))
    assert status.output == ["hello", '{"result": "done"}']


async def test_a_transport_error_fails_the_task(tmp_path: Path, server) -> None:
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    status = await run(tmp_path, "fetch_or_report", f"http://127.0.0.1:{port}/gone")
    assert status.output.startswith("failed: httpx.")


@pytest.mark.parametrize("args", [
    ("", "http://x"), ("GET POST", "http://x"), ("GET", "/relative"), ("GET", "ftp://x/y"),
    ("GET", 42), ("GET", "http://x", None, {"a": 1}), ("GET", "http://x", {1, 2}),
])
def test_bad_requests_fail_at_the_call_site(args: tuple) -> None:
    with pytest.raises(df.InvalidInputError):
        build_request(*args)


def test_raw_content_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        build_request("POST", "http://x", {"a": 1}, None, True)


def test_retry_after_values() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds("5", now.timestamp()) == 5
    assert retry_after_seconds(later, now.timestamp()) == pytest.approx(90)
    assert retry_after_seconds("-3", 0) == 0
    assert retry_after_seconds("soon", 0) is None
    assert retry_after_seconds(None, 0) is None
    assert retry_after_seconds("inf", 0) is None
