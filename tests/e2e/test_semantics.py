"""Replay semantics on a real Host over SQLite: work created as the orchestration finishes,
re-armed event waits, timed waits, function names in any case, undecodable payloads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import durable as df
from durable.history import EventRaised, SubOrchestrationInstanceCreated, TaskScheduled
from durable.storage.base import Message
from tests.e2e.conftest import (
    Journal,
    events_of,
    history_of,
    run_to_end,
    running,
    wait_for_event,
    wait_until,
)

Status = df.OrchestrationRuntimeStatus


def london_app(journal: Journal, gates: dict[str, asyncio.Event]) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="city")
    async def hello(city: str) -> str:
        gate = gates.get(city)
        if gate is not None:
            await gate.wait()
        journal.write(city)
        return f"Hello {city}!"

    @app.orchestration_trigger(context_name="context")
    def race(context: df.DurableOrchestrationContext):
        a = context.call_activity("hello", "Tokyo")
        b = context.call_activity("hello", "Seattle")
        first = yield context.task_any([a, b])
        if first is a:
            london = context.call_activity("hello", "London")
            winner = yield context.task_any([b, london])
            return winner.result
        return first.result

    return app


async def test_work_created_when_both_completions_reach_one_episode_runs(
    db_url: str, journal: Journal
) -> None:
    gates = {"Tokyo": asyncio.Event(), "Seattle": asyncio.Event(), "London": asyncio.Event()}
    async with running(london_app(journal, gates), db_url) as host:
        iid = await host.client.start_new("race")
        await scheduled_count(host, iid, 2)
        # Both results reach the worker in one loop turn, so one episode sees both.
        gates["Tokyo"].set()
        gates["Seattle"].set()
        status = await host.client.wait_for_completion(iid, timeout=20)
        assert status.output == "Hello Seattle!"
        assert await scheduled_names(host, iid) == ["hello"] * 3
        # London was created in the finishing episode: it is sent and runs all the same.
        gates["London"].set()
        await journal_holds(journal, "London")


async def test_work_created_when_the_completions_come_apart_runs(
    db_url: str, journal: Journal
) -> None:
    gates = {"Tokyo": asyncio.Event(), "Seattle": asyncio.Event()}
    async with running(london_app(journal, gates), db_url) as host:
        iid = await host.client.start_new("race")
        await scheduled_count(host, iid, 2)
        gates["Tokyo"].set()
        await scheduled_count(host, iid, 3)  # London, in episode 2
        gates["Seattle"].set()
        status = await host.client.wait_for_completion(iid, timeout=20)
        assert status.output in ("Hello Seattle!", "Hello London!")
        await journal_holds(journal, "London")


async def test_an_activity_created_just_before_returning_runs(
    db_url: str, journal: Journal
) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="word")
    def say(word: str) -> str:
        journal.write(word)
        return word

    @app.orchestration_trigger(context_name="context")
    def last_words(context: df.DurableOrchestrationContext):
        yield context.call_activity("say", "first")
        context.call_activity("say", "last-words")
        return "done"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, last_words)
        assert status.runtime_status is Status.Completed and status.output == "done"
        await journal_holds(journal, "first", "last-words")


async def test_the_reminder_loop_sees_an_event_raised_after_several_timeouts(
    db_url: str, journal: Journal
) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def remind(n: int) -> None:
        journal.write(f"reminder {n}")

    @app.orchestration_trigger(context_name="context")
    def approval(context: df.DurableOrchestrationContext):
        reminders = 0
        while True:
            event = context.wait_for_external_event("approve")
            timer = context.create_timer(context.current_utc_datetime
                                         + timedelta(milliseconds=100))
            winner = yield context.task_any([event, timer])
            if winner is event:
                timer.cancel()
                return {"approved": event.result, "reminders": reminders}
            reminders += 1
            context.set_custom_status(reminders)
            yield context.call_activity("remind", reminders)

    async with running(app, db_url) as host:
        iid = await host.client.start_new("approval")

        async def reminded_three_times() -> bool:
            return ((await host.client.get_status(iid)).custom_status or 0) >= 3

        await wait_until(reminded_three_times, what="three timeouts")
        await host.client.raise_event(iid, "approve", "yes")
        status = await host.client.wait_for_completion(iid, timeout=20)
    assert status.runtime_status is Status.Completed
    assert status.output["approved"] == "yes" and status.output["reminders"] >= 3


async def test_wait_for_external_event_with_a_timeout(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def timed(context: df.DurableOrchestrationContext):
        outcomes = []
        for _ in range(2):
            try:
                value = yield context.wait_for_external_event("go", timeout=0.2)
                outcomes.append(value)
            except df.EventTimeoutError as error:
                outcomes.append(str(error))
                context.set_custom_status("timed out once")
        return outcomes

    async with running(app, db_url) as host:
        iid = await host.client.start_new("timed")

        async def first_timed_out() -> bool:
            return (await host.client.get_status(iid)).custom_status == "timed out once"

        await wait_until(first_timed_out, what="the first wait to time out")
        await host.client.raise_event(iid, "go", 42)
        status = await host.client.wait_for_completion(iid, timeout=20)
    assert status.output == ["wait_for_external_event('go') timed out after 0.2 seconds.", 42]


async def test_function_names_match_ignoring_case_and_keep_the_registered_spelling(
    db_url: str,
) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="city")
    def hello(city: str) -> str:
        return f"Hello {city}!"

    @app.orchestration_trigger(context_name="context")
    def Child(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("HELLO", context.get_input()))

    @app.orchestration_trigger(context_name="context")
    def CaseName(context: df.DurableOrchestrationContext):
        direct = yield context.call_activity("Hello", "Tokyo")
        nested = yield context.call_sub_orchestrator("child", "Seattle")
        return [direct, nested]

    async with running(app, db_url) as host:
        iid = await host.client.start_new("casename")
        status = await host.client.wait_for_completion(iid, timeout=20)
        assert status.output == ["Hello Tokyo!", "Hello Seattle!"]
        assert status.name == "CaseName"
        assert await scheduled_names(host, iid) == ["hello", "Child"]
        history = await history_of(host.client, iid)
        assert [e["FunctionName"] for e in events_of(history, "TaskCompleted")] == ["hello"]
        with pytest.raises(df.FunctionNotFoundError):
            await host.client.start_new("no_such_orchestrator")


def test_names_that_differ_only_in_case_are_refused_at_registration() -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="x", activity="Hello")
    def one(x: str) -> str:
        return x

    @app.activity_trigger(input_name="x", activity="hello")
    def two(x: str) -> str:
        return x

    with pytest.raises(df.InvalidInputError, match="case-insensitive"):
        app.registry()


async def test_an_undecodable_event_fails_only_its_instance_with_a_clear_error(
    db_url: str,
) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def waits(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("go"))

    async with running(app, db_url) as host:
        poisoned = await host.client.start_new("waits")
        healthy = await host.client.start_new("waits")
        await wait_for_event(host.client, poisoned, "ExecutionStarted")
        # Bypass the client's validation, as a corrupted store or another writer would.
        await host.backend.send_message(
            Message(poisoned, EventRaised(timestamp=0.0, name="go", input="{not json"))
        )
        host.worker.hint(poisoned)  # type: ignore[union-attr]
        status = await host.client.wait_for_completion(poisoned, timeout=20)
        await host.client.raise_event(healthy, "go", "fine")
        other = await host.client.wait_for_completion(healthy, timeout=20)
    assert status.runtime_status is Status.Failed
    assert status.failure_details["errorType"] == "durable.errors.DeserializationError"
    assert "payload of event 'go' cannot be decoded" in status.failure_details["message"]
    assert other.output == "fine"


async def scheduled_names(host: df.Host, instance_id: str) -> list[str]:
    """Names in the raw history's scheduling events (the HTTP view folds them away)."""
    return [e.name for e in await host.backend.get_history(instance_id)
            if isinstance(e, TaskScheduled | SubOrchestrationInstanceCreated)]


async def scheduled_count(host: df.Host, instance_id: str, count: int) -> None:
    async def probe() -> bool:
        return len(await scheduled_names(host, instance_id)) >= count

    await wait_until(probe, what=f"{count} scheduled tasks in {instance_id}")


async def journal_holds(journal: Journal, *lines: str) -> None:
    async def probe() -> bool:
        return all(line in journal.lines() for line in lines)

    await wait_until(probe, what=f"{lines} in the journal")
