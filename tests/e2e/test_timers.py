"""create_timer: datetime and timedelta due times, firing order, cancellation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

import durable as df
from durable.history import TimerCreated
from tests.e2e.conftest import (
    Status,
    events_of,
    history_of,
    parse_time,
    run_to_end,
    running,
    wait_for_status,
)


async def test_timers_fire_no_earlier_than_their_due_time(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def sleeper(context: df.DurableOrchestrationContext):
        start = context.current_utc_datetime
        due = start + timedelta(milliseconds=150)
        yield context.create_timer(due)  # an aware datetime
        after_first = context.current_utc_datetime
        yield context.create_timer(timedelta(milliseconds=100))  # a delay from now
        after_second = context.current_utc_datetime
        naive_due = (after_second + timedelta(milliseconds=50)).replace(tzinfo=None)
        yield context.create_timer(naive_due)  # naive datetimes are taken as UTC
        end = context.current_utc_datetime
        return [t.isoformat() for t in (start, due, after_first, after_second, end)]

    async with running(app, db_url) as host:
        wall_start = time.time()
        status = await run_to_end(host.client, sleeper)
        wall = time.time() - wall_start
        history = await history_of(host.client, status.instance_id)

    start, due, after_first, after_second, end = map(datetime.fromisoformat, status.output)
    assert due == start + timedelta(milliseconds=150)
    assert after_first >= due
    assert after_second >= after_first + timedelta(milliseconds=100)
    assert end >= after_second + timedelta(milliseconds=50)
    assert wall >= 0.3
    fired = events_of(history, "TimerFired")
    assert len(fired) == 3
    assert parse_time(fired[0]["FireAt"]) == due


async def test_a_timer_in_the_past_fires_at_once(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def past(context: df.DurableOrchestrationContext):
        yield context.create_timer(datetime(2001, 1, 1, tzinfo=UTC))
        yield context.create_timer(timedelta(seconds=-5))
        return "fired"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, past, timeout=5)

    assert status.output == "fired"


async def test_a_cancelled_timer_does_not_hold_the_orchestration(db_url: str) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="x")
    def quick(x: int) -> int:
        return x + 1

    @app.orchestration_trigger(context_name="context")
    def with_timeout(context: df.DurableOrchestrationContext):
        deadline = context.create_timer(timedelta(hours=1))
        work = context.call_activity("quick", 1)
        winner = yield context.task_any([work, deadline])
        if winner is work:
            deadline.cancel()
        try:
            deadline.cancel()  # cancelling twice is harmless
        except ValueError:
            return "unexpected"
        return {"result": work.result, "cancelled": deadline.is_cancelled,
                "completed": deadline.is_completed}

    async with running(app, db_url) as host:
        began = time.monotonic()
        status = await run_to_end(host.client, with_timeout, timeout=10)
        took = time.monotonic() - began
        history = await history_of(host.client, status.instance_id)

    assert status.output == {"result": 2, "cancelled": True, "completed": False}
    assert took < 5
    assert events_of(history, "TimerFired") == []


async def test_an_orchestration_may_finish_with_timers_it_did_not_cancel(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def leaves_a_timer(context: df.DurableOrchestrationContext):
        forgotten = context.create_timer(timedelta(hours=1))
        event = context.wait_for_external_event("go")
        winner = yield context.task_any([forgotten, event])
        return winner is event

    async with running(app, db_url) as host:
        iid = await host.client.start_new(leaves_a_timer)
        await host.client.raise_event(iid, "go")
        status = await host.client.wait_for_completion(iid, timeout=10)

    assert status.runtime_status is Status.Completed
    assert status.output is True


async def test_timers_have_no_maximum_length(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def patient(context: df.DurableOrchestrationContext):
        yield context.create_timer(timedelta(days=400))
        return "a year later"

    async with running(app, db_url) as host:
        iid = await host.client.start_new(patient)
        await wait_for_status(host.client, iid, Status.Running)
        history = await host.backend.get_history(iid)
        await host.client.terminate(iid, "not waiting that long")
        status = await host.client.wait_for_completion(iid, timeout=10)

    [timer] = [e for e in history if isinstance(e, TimerCreated)]
    assert timer.fire_at - timer.timestamp == pytest.approx(400 * 86400)
    assert status.runtime_status is Status.Terminated


async def test_cancelling_a_fired_timer_is_an_error(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        timer = context.create_timer(timedelta(milliseconds=10))
        yield timer
        try:
            timer.cancel()
        except ValueError as error:
            return str(error)
        return "no error"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, orch)

    assert "already fired" in status.output


async def test_many_timers_in_parallel_complete_in_due_order(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def racing_timers(context: df.DurableOrchestrationContext):
        timers = {
            ms: context.create_timer(timedelta(milliseconds=ms)) for ms in (400, 100, 300, 200)
        }
        order = []
        pending = dict(timers)
        while pending:
            done = yield context.task_any(list(pending.values()))
            ms = next(k for k, t in pending.items() if t is done)
            order.append(ms)
            del pending[ms]
        return order

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, racing_timers)

    assert status.output == [100, 200, 300, 400]


@pytest.mark.parametrize("bad", ["tomorrow", 5, None])
async def test_create_timer_rejects_other_types(db_url: str, bad: object) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        try:
            context.create_timer(bad)  # type: ignore[arg-type]
        except df.InvalidInputError as error:
            return str(error)
        yield context.create_timer(timedelta(0))
        return "accepted"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, orch)

    assert status.runtime_status is Status.Completed
    assert "datetime or timedelta" in status.output


async def test_timers_due_together_are_delivered_in_due_order(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def first_timer(context: df.DurableOrchestrationContext):
        late = context.create_timer(timedelta(milliseconds=250))  # created first
        early = context.create_timer(timedelta(milliseconds=50))
        winner = yield context.task_any([late, early])
        return "early" if winner is early else "late"

    async with running(app, db_url) as host:
        iid = await host.client.start_new(first_timer)
        await wait_for_status(host.client, iid, Status.Running)
    await asyncio.sleep(0.4)  # both come due while no Host runs
    async with running(app, db_url) as host:
        status = await host.client.wait_for_completion(iid, timeout=10)

    assert status.output == "early"
