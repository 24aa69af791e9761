"""A whole app on durable.testing's in-memory store and virtual time: a 30-day timer, a retry
back-off and a monitor loop run to completion without waiting (the real worker, real storage
logic; only the clock is virtual)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

import durable as df
from durable.testing import advance, run_app, run_until_done

pytest_plugins = ["durable.testing.pytest_plugin"]

START = datetime(2030, 1, 1, tzinfo=UTC)
app = df.DFApp()
calls: list[str] = []


@app.orchestration_trigger(context_name="context")
def monthly(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(days=30))
    return context.current_utc_datetime.isoformat()


@app.activity_trigger(input_name="name")
def flaky(name: str) -> str:
    calls.append(name)
    if calls.count(name) < 3:
        raise ConnectionError("try later")
    return "ok"


@app.orchestration_trigger(context_name="context")
def with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=300_000,
                              max_number_of_attempts=5)
    return (yield context.call_activity_with_retry("flaky", options, context.instance_id))


@app.activity_trigger(input_name="hour")
def check(hour: int) -> bool:
    return hour >= 5


@app.orchestration_trigger(context_name="context")
def monitor(context: df.DurableOrchestrationContext):
    hour = 0
    while not (yield context.call_activity("check", hour)):
        hour += 1
        yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return hour


@pytest.fixture
def durable_app() -> df.DFApp:
    return app


async def test_a_thirty_day_timer_completes_without_waiting() -> None:
    began = time.monotonic()
    async with run_app(app, start=START) as host:
        instance_id = await host.client.start_new("monthly")
        status = await run_until_done(host, instance_id)
        assert host.clock.now() - START.timestamp() >= 30 * 86400
    assert status.output == (START + timedelta(days=30)).isoformat()
    assert time.monotonic() - began < 10  # real seconds, for thirty virtual days


async def test_a_retry_back_off_of_five_minutes_runs_on_virtual_time() -> None:
    async with run_app(app, start=START) as host:
        instance_id = await host.client.start_new("with_retry", "retry-1")
        status = await run_until_done(host, instance_id)
        elapsed = host.clock.now() - START.timestamp()
    assert status.output == "ok" and calls.count("retry-1") == 3
    assert 600 <= elapsed < 900  # two back-offs of five minutes


async def test_a_monitor_loop_through_the_fixture(durable_host: df.Host) -> None:
    instance_id = await durable_host.client.start_new("monitor")
    status = await run_until_done(durable_host, instance_id)
    assert status.output == 5


async def test_advance_moves_time_by_steps() -> None:
    async with run_app(app, start=START) as host:
        instance_id = await host.client.start_new("monthly")
        await advance(host, timedelta(days=29))
        assert (await host.client.get_status(instance_id)).runtime_status is (
            df.OrchestrationRuntimeStatus.Running)
        await advance(host, timedelta(days=1))
        status = await host.client.wait_for_completion(instance_id, timeout=10)
    assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed


async def test_waiting_for_an_event_is_reported_not_skipped() -> None:
    waiter = df.DFApp()

    @waiter.orchestration_trigger(context_name="context")
    def waits(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("go"))

    async with run_app(waiter) as host:
        instance_id = await host.client.start_new("waits")
        with pytest.raises(df.OrchestrationTimeoutError, match="other than time"):
            await run_until_done(host, instance_id)
