"""Timer triggers in one process (SQLite): occurrences fire once each, the function gets its
TimerRequest and the client, start-up runs, schedule changes, and the missed-occurrence rule
across a restart. The multi-worker guarantees are in test_timer_workers.py."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import durable as df
from durable.schedules.timers import INSTANCE_PREFIX, TIMER_ORCHESTRATOR
from tests.e2e.conftest import running, wait_until

Status = df.OrchestrationRuntimeStatus


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timer_app(schedule: str, calls: list[dict[str, Any]], **options: Any) -> df.DFApp:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def job(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("noop", None))

    @app.activity_trigger(input_name="value")
    def noop(value: Any) -> str:
        return "done"

    @app.timer_trigger(arg_name="timer", schedule=schedule, **options)
    @app.durable_client_input(client_name="client")
    async def tick(timer: df.TimerRequest, client: df.DurableOrchestrationClient) -> None:
        started = await client.start_new("job")
        calls.append({"due": timer.schedule_status["Last"], "past_due": timer.past_due,
                      "next": timer.schedule_status["Next"], "started": started})

    return app


async def test_each_occurrence_fires_once_with_request_and_client(db_url: str) -> None:
    calls: list[dict[str, Any]] = []
    app = timer_app("* * * * * *", calls)
    async with running(app, db_url) as host:
        await wait_until(lambda: _async(len(calls) >= 3), what="three occurrences")
        dues = [parse(call["due"]) for call in calls]
        assert len(set(dues)) == len(dues), dues  # never the same occurrence twice
        assert all(b > a for a, b in itertools.pairwise(dues))
        assert all(d.microsecond == 0 for d in dues)  # on the second, as scheduled
        assert not any(call["past_due"] for call in calls)
        assert parse(calls[0]["next"]) > dues[0]
        status = await host.client.wait_for_completion(calls[0]["started"], timeout=10)
        assert status.output == "done"  # the injected client started a real orchestration
        timer = await host.client.get_status(INSTANCE_PREFIX + "tick")
        assert timer.name == TIMER_ORCHESTRATOR
        assert timer.runtime_status in (Status.Running, Status.ContinuedAsNew)
        assert set(timer.custom_status) == {"schedule", "next", "last"}


async def _async(value: Any) -> Any:
    return value


async def test_run_on_startup_runs_once_per_start(db_url: str) -> None:
    calls: list[dict[str, Any]] = []
    app = timer_app("0 0 0 1 1 *", calls, run_on_startup=True)  # next occurrence: New Year
    async with running(app, db_url):
        await wait_until(lambda: _async(len(calls) == 1), what="the start-up run")
    async with running(app, db_url):
        await wait_until(lambda: _async(len(calls) == 2), what="the second start-up run")
    assert not any(call["past_due"] for call in calls)


async def test_a_changed_schedule_takes_effect_at_the_next_start(db_url: str) -> None:
    calls: list[dict[str, Any]] = []
    async with running(timer_app("0 0 0 1 1 *", calls), db_url) as host:
        first = await host.client.get_status(INSTANCE_PREFIX + "tick")
        assert first.input_["schedule"] == "0 0 0 1 1 *"
    async with running(timer_app("* * * * * *", calls), db_url) as host:
        await wait_until(lambda: _async(len(calls) >= 1), what="the new schedule's occurrence")
        status = await host.client.get_status(INSTANCE_PREFIX + "tick")
        assert status.input_["schedule"] == "* * * * * *"
        assert status.runtime_status in (Status.Running, Status.ContinuedAsNew)


async def test_missed_occurrences_after_a_restart(db_url: str) -> None:
    """Downtime across several occurrences: with the schedule monitor, one past-due run (for
    the first missed occurrence), then the schedule resumes from now; without it, the missed
    occurrences are skipped."""
    monitored: list[dict[str, Any]] = []
    unmonitored: list[dict[str, Any]] = []
    app = timer_app("*/2 * * * * *", monitored, use_monitor=True)
    other = timer_app("*/2 * * * * *", unmonitored, use_monitor=False)
    for info in other.functions():
        if info.name == "tick":
            info.explicit_name = "tick_unmonitored"
            app._functions.append(info)
    async with running(app, db_url):
        await wait_until(lambda: _async(monitored and unmonitored), what="first occurrences")
    stopped_at = time.time()
    seen, seen_other = len(monitored), len(unmonitored)
    await asyncio.sleep(8)  # downtime on purpose: occurrences pass with no worker up
    async with running(app, db_url):
        await wait_until(lambda: _async(len(monitored) >= seen + 2
                                        and len(unmonitored) >= seen_other + 1),
                         what="runs after the restart")
    catch_up = monitored[seen]
    assert catch_up["past_due"] is True
    assert parse(catch_up["due"]).timestamp() <= stopped_at + 2.5  # the occurrence it missed
    after = monitored[seen + 1]
    assert after["past_due"] is False
    assert parse(after["due"]).timestamp() > stopped_at + 7  # no runs for the other misses
    dues = [call["due"] for call in monitored]
    assert len(set(dues)) == len(dues)
    skipped = unmonitored[seen_other]
    assert skipped["past_due"] is False
    assert parse(skipped["due"]).timestamp() > stopped_at + 7


def test_bad_schedule_fails_at_decoration() -> None:
    app = df.DFApp()
    with pytest.raises(df.InvalidInputError, match="six fields"):
        app.timer_trigger(arg_name="t", schedule="every minute")


def test_import_durable_as_func_has_the_sample_names() -> None:
    import durable as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    assert isinstance(app, df.DFApp)
    assert func.Blueprint is df.Blueprint
    assert func.HttpRequest and func.HttpResponse and func.TimerRequest


def test_the_injected_client_accepts_being_wrapped(tmp_path: Path) -> None:
    """Ported Azure code wraps its binding: ``df.DurableOrchestrationClient(starter)``."""
    client = df.DurableOrchestrationClient(df.Host(df.DFApp(), f"sqlite:///{tmp_path}/x.db")
                                           .backend)
    assert df.DurableOrchestrationClient(client) is client
