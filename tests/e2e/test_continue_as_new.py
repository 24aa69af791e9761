"""continue_as_new: fresh history per generation, event carry-over modes, dropped work."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import durable as df
from tests.e2e.conftest import (
    Journal,
    Status,
    events_of,
    history_of,
    run_to_end,
    running,
    wait_for_event,
)


async def test_each_generation_starts_with_fresh_history(db_url: str, journal: Journal) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def record(n: int) -> int:
        journal.write(str(n))
        return n

    @app.orchestration_trigger(context_name="context")
    def counter(context: df.DurableOrchestrationContext):
        n = context.get_input()
        yield context.call_activity("record", n)
        if n < 5:
            yield context.create_timer(timedelta(milliseconds=5))
            context.continue_as_new(n + 1)
            return "ignored: the instance continues"
        return {"final": n, "execution": context.execution_id}

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, counter, 0, "eternal")
        history = await history_of(host.client, "eternal", show_output=True)

    assert status.runtime_status is Status.Completed
    assert status.output["final"] == 5
    assert status.input_ == 5
    assert journal.lines() == ["0", "1", "2", "3", "4", "5"]
    started = events_of(history, "ExecutionStarted")
    assert len(started) == 1 and started[0]["Input"] == 5
    assert [e["Result"] for e in events_of(history, "TaskCompleted")] == [5]
    assert events_of(history, "TimerFired") == []


async def test_continue_as_new_without_yielding(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def countdown(context: df.DurableOrchestrationContext):
        n = context.get_input()
        if n > 0:
            context.continue_as_new(n - 1)
            return None
        return "liftoff"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, countdown, 20)

    assert status.output == "liftoff"
    assert status.input_ == 0


@pytest.mark.parametrize("preserve", [True, False])
async def test_unconsumed_events_are_carried_over_only_when_asked(
    db_url: str, preserve: bool
) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def generations(context: df.DurableOrchestrationContext):
        generation = context.get_input()
        if generation == 0:
            yield context.wait_for_external_event("go")
            context.continue_as_new(1, preserve_unprocessed_events=preserve)
            return None
        got = []
        for _ in range(2):
            extra = context.wait_for_external_event("extra")
            timeout = context.create_timer(timedelta(milliseconds=200))
            winner = yield context.task_any([extra, timeout])
            if winner is not extra:
                return {"generation": generation, "extras": got, "timed_out": True}
            timeout.cancel()
            got.append(extra.result)
        return {"generation": generation, "extras": got, "timed_out": False}

    async with running(app, db_url) as host:
        iid = await host.client.start_new(generations, client_input=0)
        await host.client.raise_event(iid, "extra", "first")
        await host.client.raise_event(iid, "extra", "second")
        await wait_for_event(host.client, iid, "EventRaised", count=2)
        await host.client.raise_event(iid, "go")
        status = await host.client.wait_for_completion(iid, timeout=20)

    if preserve:
        assert status.output == {"generation": 1, "extras": ["first", "second"],
                                 "timed_out": False}
    else:
        assert status.output == {"generation": 1, "extras": [], "timed_out": True}


async def test_work_created_before_continue_as_new_is_sent(db_url: str, journal: Journal
                                                         ) -> None:
    """Durable Task sends the work an episode created, even the one that continues as new; the
    first continue_as_new decides (as in Azure), and scheduling after it is refused."""
    app = df.DFApp()

    @app.activity_trigger(input_name="tag")
    def record(tag: str) -> str:
        journal.write(tag)
        return tag

    @app.orchestration_trigger(context_name="context")
    def restless(context: df.DurableOrchestrationContext):
        if context.get_input() is None:
            context.call_activity("record", "scheduled before continue_as_new")
            context.continue_as_new("first call")
            try:
                context.call_activity("record", "scheduled after continue_as_new")
            except df.InvalidInputError as error:
                context.set_custom_status(str(error))
                context.continue_as_new("second call")  # ignored: the first call decides
            return None
        done = yield context.call_activity("record", "second generation")
        return [context.get_input(), done]

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, restless)
        deadline = time.monotonic() + 10
        while len(journal.lines()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    assert status.output == ["first call", "second generation"]
    assert status.custom_status == "No work can be scheduled after continue_as_new."
    assert sorted(journal.lines()) == ["scheduled before continue_as_new", "second generation"]


async def test_custom_status_survives_generations(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def keeps_status(context: df.DurableOrchestrationContext):
        n = context.get_input()
        if n == 0:
            context.set_custom_status("set in generation 0")
            context.continue_as_new(1)
            return None
        yield context.create_timer(timedelta(0))
        return context.custom_status

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, keeps_status, 0)

    # The orchestrator's own view starts empty in each generation; the stored status is kept
    # until a generation sets a new one.
    assert status.output is None
    assert status.custom_status == "set in generation 0"
