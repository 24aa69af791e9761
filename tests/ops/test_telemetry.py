"""Telemetry: OpenTelemetry spans (in-memory exporter), Prometheus /metrics, console lines."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

import durable as df
from durable.http.app import create_app
from durable.http.keys import KeyRing
from durable.telemetry import Observers
from durable.telemetry.console import ConsoleObserver, Verbosity
from durable.telemetry.metrics import MetricsEndpoint, MetricsObserver
from durable.telemetry.tracebacks import user_frames
from durable.telemetry.tracing import TracingObserver, parse_traceparent
from tests.e2e.conftest import wait_until
from tests.ops.ops_app import app

Status = df.OrchestrationRuntimeStatus


def tracing() -> tuple[TracingObserver, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingObserver(provider), exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def url_in(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


async def test_a_failing_orchestration_is_one_trace(tmp_path: Path) -> None:
    observer, exporter = tracing()
    async with df.Host(app, storage=url_in(tmp_path), observer=observer) as host:
        instance_id = await host.client.start_new("failing", None, 42)
        status = await host.client.wait_for_completion(instance_id, timeout=20)
    assert status.runtime_status is Status.Failed
    spans = by_name(exporter.get_finished_spans())
    [create] = spans["create_orchestration:failing"]
    [orchestration] = spans["orchestration:failing"]  # one per execution, not per episode
    [hello] = spans["activity:say_hello"]
    [explode] = spans["activity:explode"]
    trace_id = create.context.trace_id
    assert {s.context.trace_id for s in (orchestration, hello, explode)} == {trace_id}
    assert orchestration.parent is not None and hello.parent is not None
    assert orchestration.parent.span_id == create.context.span_id
    assert hello.parent.span_id == explode.parent.span_id == orchestration.context.span_id
    assert orchestration.attributes["durabletask.task.instance_id"] == instance_id
    assert orchestration.attributes["durabletask.task.status"] == "Failed"
    assert orchestration.status.status_code is StatusCode.ERROR
    assert explode.status.status_code is StatusCode.ERROR
    assert hello.status.status_code is StatusCode.UNSET
    [error] = [e for e in explode.events if e.name == "exception"]
    assert "cannot handle 42" in error.attributes["exception.message"]
    stack = error.attributes["exception.stacktrace"]
    assert "ops_app.py" in stack and "durable/worker" not in stack
    assert orchestration.start_time <= hello.start_time <= explode.end_time
    assert explode.end_time <= orchestration.end_time


async def test_traceparent_travels_from_an_http_starter_through_storage(tmp_path: Path
                                                                        ) -> None:
    """A front end (no worker) takes the request; a separate host, sharing only the storage
    file, runs the orchestration, its sub-orchestration and activities: one trace."""
    front_observer, front_spans = tracing()
    back_observer, back_spans = tracing()
    url = url_in(tmp_path)
    caller_trace, caller_span = 0x1234567890ABCDEF1234567890ABCDEF, 0x1122334455667788
    header = f"00-{caller_trace:032x}-{caller_span:016x}-01"
    async with df.Host(app, storage=url, run_worker=False, observer=front_observer) as front, \
            df.Host(app, storage=url, observer=back_observer):
        asgi = create_app(app, front.client)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                     base_url="http://test") as http:
            response = await http.post("/api/start/parent", json={},
                                       headers={"traceparent": header})
        assert response.status_code == 202, response.text
        instance_id = response.json()["id"]
        status = await front.client.wait_for_completion(instance_id, timeout=20,
                                                        poll_interval=0.05)
    assert status.runtime_status is Status.Completed
    [create] = by_name(front_spans.get_finished_spans())["create_orchestration:parent"]
    assert create.context.trace_id == caller_trace
    assert create.parent is not None and create.parent.span_id == caller_span
    back = by_name(back_spans.get_finished_spans())
    [parent_span] = back["orchestration:parent"]
    sub_spans = back["orchestration:hello"]  # the parent's view and the child's own span
    assert len(sub_spans) == 2
    child_call = next(s for s in sub_spans if s.kind.name == "CLIENT")
    child_run = next(s for s in sub_spans if s.kind.name == "SERVER")
    activities = back["activity:say_hello"]
    [timer] = back["orchestration:parent:timer"]
    everything = [parent_span, child_call, child_run, timer, *activities]
    assert {s.context.trace_id for s in everything} == {caller_trace}
    assert parent_span.parent is not None and parent_span.parent.span_id == create.context.span_id
    assert child_call.parent is not None and timer.parent is not None
    assert child_call.parent.span_id == timer.parent.span_id == parent_span.context.span_id
    assert child_run.parent is not None and child_run.parent.span_id == child_call.context.span_id
    assert len(activities) == 3
    assert {a.parent.span_id for a in activities if a.parent} == {child_run.context.span_id}
    stored = parse_traceparent(header)
    assert stored is not None and stored[0] == caller_trace


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_parse_and_move_as_work_is_done(tmp_path: Path) -> None:
    metrics = MetricsObserver()
    async with df.Host(app, storage=url_in(tmp_path), observer=metrics) as host:
        endpoint = MetricsEndpoint(metrics, host.backend)
        asgi = create_app(app, host.client, mounts=[("/metrics", endpoint)])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                     base_url="http://test") as http:

            async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                response = await http.get("/metrics")
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/plain")
                return samples(response.text)

            before = await scrape()
            assert before[("durable_instances", (("status", "Completed"),))] == 0
            assert before[("durable_episodes_total", ())] == 0
            first = await host.client.start_new("hello")
            await host.client.wait_for_completion(first, timeout=20)
            failed = await host.client.start_new("failing", None, 1)
            await host.client.wait_for_completion(failed, timeout=20)
            waiting = await host.client.start_new("approval")
            deadline = time.monotonic() + 20
            while (await host.client.get_status(waiting)).custom_status is None:
                assert time.monotonic() < deadline, "approval never reached its wait"
                await asyncio.sleep(0.01)
            metrics._last_refresh = 0.0  # no caching between these scrapes
            after = await scrape()
            await host.client.terminate(waiting, "test over")
            await host.client.wait_for_completion(waiting, timeout=20)
    finished = "durable_orchestrations_finished_total"
    assert after[(finished, (("name", "hello"), ("status", "Completed")))] == 1
    assert after[(finished, (("name", "failing"), ("status", "Failed")))] == 1
    assert after[("durable_instances", (("status", "Completed"),))] == 1
    assert after[("durable_instances", (("status", "Failed"),))] == 1
    assert after[("durable_instances", (("status", "Running"),))] == 1
    assert after[("durable_activities_finished_total",
                  (("name", "say_hello"), ("outcome", "completed")))] >= 4
    assert after[("durable_activities_finished_total",
                  (("name", "explode"), ("outcome", "failed")))] == 1
    assert after[("durable_episodes_total", ())] >= 9
    assert after[("durable_commits_total", ())] >= 1
    assert after[("durable_episode_duration_seconds_count", ())] >= 8
    assert after[("durable_activity_duration_seconds_count", (("name", "say_hello"),))] >= 4
    assert ("durable_orchestration_backlog", ()) in after
    assert ("durable_activity_backlog_oldest_seconds", ()) in after
    assert after[("durable_workers_live", ())] >= 1  # this host leases the waiting instance


async def test_metrics_want_a_key_beyond_loopback(tmp_path: Path) -> None:
    metrics = MetricsObserver()
    keys = KeyRing(function="f" * 20, system="s" * 20, master="m" * 20, required=True)
    async with df.Host(app, storage=url_in(tmp_path), run_worker=False) as host:
        asgi = create_app(app, host.client, keys=keys,
                          mounts=[("/metrics", MetricsEndpoint(metrics, host.backend, keys))])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                     base_url="http://test") as http:
            assert (await http.get("/metrics")).status_code == 401
            assert (await http.get("/metrics", params={"code": "f" * 20})).status_code == 401
            assert (await http.get("/metrics", params={"code": "s" * 20})).status_code == 200


async def test_console_logs_starts_completions_and_failures_with_user_frames(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="durable.functions")
    observer = Observers([ConsoleObserver(Verbosity.NORMAL)])
    async with df.Host(app, storage=url_in(tmp_path), observer=observer) as host:
        ok = await host.client.start_new("hello")
        await host.client.wait_for_completion(ok, timeout=20)
        bad = await host.client.start_new("retrying")
        await host.client.wait_for_completion(bad, timeout=20)
    lines = [r.getMessage() for r in caplog.records if r.name == "durable.functions"]
    assert f"orchestration hello ({ok}) started" in lines
    assert any(line.startswith(f"orchestration hello ({ok}) completed in ") for line in lines)
    [failed] = [line for line in lines if f"retrying ({bad}) FAILED" in line]
    assert "ValueError: cannot handle 'again'" in failed
    assert "ops_app.py" in failed and "durable/orchestration" not in failed
    assert any("activity explode of retrying" in line and "a retry is scheduled" in line
               for line in lines)
    assert any(line.endswith(f"activity explode of retrying ({bad}): retrying")
               for line in lines)
    quiet = ConsoleObserver(Verbosity.QUIET)
    assert quiet.verbosity < Verbosity.NORMAL


async def test_the_console_keeps_nothing_for_idle_entities_or_finished_work(
    tmp_path: Path,
) -> None:
    """It remembers activity names only while activities are in flight: an entry per entity
    (entities never finish) once grew an idle worker by ~350 bytes per entity."""
    console = ConsoleObserver(Verbosity.NORMAL)
    async with df.Host(app, storage=url_in(tmp_path), observer=Observers([console])) as host:
        for key in range(50):
            await host.client.signal_entity(df.EntityId("tally", f"k{key}"), "add", 1)
        done = await host.client.start_new("hello")
        await host.client.wait_for_completion(done, timeout=20)

        async def applied() -> bool:
            state = await host.client.read_entity_state(df.EntityId("tally", "k49"))
            return state.entity_exists and host.worker is not None and host.worker.is_idle
        await wait_until(applied, what="the signals applied")
    assert console._tasks == {} and console._failed == {}


def test_user_frames_drop_durables_own() -> None:
    import durable

    internal = str(Path(durable.__file__).parent / "worker" / "activities.py")
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{internal}", line 180, in _thread_main\n'
        "    outcome = self._result(item, self._call(info, item), None)\n"
        "                                 ^^^^^^^^^^^^^^^^^^^^^^\n"
        '  File "/srv/app/function_app.py", line 12, in charge\n'
        "    raise ValueError('card declined')\n"
        "ValueError: card declined\n"
    )
    trimmed = user_frames(text)
    assert trimmed == (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/function_app.py", line 12, in charge\n'
        "    raise ValueError('card declined')\n"
        "ValueError: card declined\n"
    )
    assert user_frames(None) is None


def test_durable_worker_serves_metrics_on_its_own_port(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    from tests.http.conftest import wait_until

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = url_in(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "durable.cli", "worker", str(Path(__file__).with_name(
            "ops_app.py")), "--storage", storage, "--metrics-port", str(port), "-q",
         "--poll-interval", "0.05"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
            except httpx.HTTPError:
                return None
            # 503 while the worker still waits for storage (the port listens from the start).
            return samples(answer.text) if answer.status_code == 200 else None

        assert wait_until(scrape, what="the worker's metrics port")
        from click.testing import CliRunner

        from durable.cli import main

        started = CliRunner().invoke(main, ["instances", "start", "hello", "--storage",
                                            storage, "--wait", "--timeout", "20"])
        assert started.exit_code == 0, started.output
        key = ("durable_orchestrations_finished_total",
               (("name", "hello"), ("status", "Completed")))
        found = wait_until(lambda: (scrape() or {}).get(key) == 1 and scrape(),
                           what="the finished counter to move")
        assert found is not None
        assert wait_until(lambda: (scrape() or {}).get(
            ("durable_instances", (("status", "Completed"),))) == 1, what="the storage gauge")
    finally:
        worker.terminate()
        assert worker.wait(timeout=20) == 0
