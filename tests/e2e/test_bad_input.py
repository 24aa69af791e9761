"""Bad input gets a clear, typed error, and nothing is stored half-way."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

import durable as df
from tests.e2e.conftest import Status, run_to_end, running


def simple_app() -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="x")
    def echo(x: Any) -> Any:
        return x

    @app.orchestration_trigger(context_name="context")
    def simple(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("echo", context.get_input()))

    return app


BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("x" * 257, id="257-chars"),
    pytest.param("@entity", id="at-prefix"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a#b", id="hash"),
    pytest.param("a?b", id="question-mark"),
    pytest.param("line\nbreak", id="newline"),
    pytest.param("nul\x00", id="nul"),
    pytest.param("del\x7f", id="del"),
    pytest.param("c1\x85", id="c1-control"),
    pytest.param(42, id="not-a-string"),
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_invalid_instance_ids_are_refused_and_nothing_is_stored(
    db_url: str, bad_id: Any
) -> None:
    async with running(simple_app(), db_url) as host:
        with pytest.raises(df.InvalidInstanceIdError) as info:
            await host.client.start_new("simple", bad_id, 1)
        stored = await host.client.get_status_all()

    assert isinstance(info.value, ValueError)  # also a ValueError, as Azure raises
    assert "Instance ID" in str(info.value)
    assert stored == []


async def test_boundary_instance_ids_are_accepted(db_url: str) -> None:
    ids = ["x" * 256, "a@b", "with space", "ünïcødé-✓", "dots.and:colons", "-", "a" + "@"]
    async with running(simple_app(), db_url) as host:
        for iid in ids:
            await host.client.start_new("simple", iid, iid)
        outputs = [(await host.client.wait_for_completion(i, timeout=20)).output for i in ids]

    assert outputs == ids


async def test_unknown_orchestrator_and_non_function_are_refused(db_url: str) -> None:
    def not_registered(context: df.DurableOrchestrationContext) -> None:
        return None

    async with running(simple_app(), db_url) as host:
        with pytest.raises(df.FunctionNotFoundError, match="no_such_orchestrator"):
            await host.client.start_new("no_such_orchestrator", "x", 1)
        with pytest.raises(df.InvalidInputError, match="not a registered durable function"):
            await host.client.start_new(not_registered, "y")
        with pytest.raises(df.FunctionNotFoundError):
            await host.client.start_new("echo", "z")  # an activity, not an orchestrator
        stored = await host.client.get_status_all()

    assert stored == []


class NotJson:
    pass


def circular() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({1, 2}, id="set"),
        pytest.param(NotJson(), id="object"),
        pytest.param(b"bytes", id="bytes"),
        pytest.param(circular(), id="circular"),
        pytest.param({"when": timedelta(1)}, id="nested-timedelta"),
        pytest.param(float("nan"), id="nan"),
        pytest.param([float("inf")], id="infinity"),
    ],
)
async def test_non_json_inputs_are_refused_and_nothing_is_stored(
    db_url: str, value: Any
) -> None:
    async with running(simple_app(), db_url) as host:
        with pytest.raises(df.SerializationError) as info:
            await host.client.start_new("simple", "not-json", value)
        status = await host.client.get_status("not-json")
        stored = await host.client.get_status_all()

    assert isinstance(info.value, TypeError)
    assert "orchestration input" in str(info.value)
    assert not status
    assert stored == []


async def test_special_floats_round_trip(db_url: str) -> None:
    async with running(simple_app(), db_url) as host:
        status = await run_to_end(host.client, "simple", [1e308, -0.0, 1.5])

    assert status.output == [1e308, -0.0, 1.5]
    assert math.copysign(1, status.output[1]) == -1


async def test_bad_calls_inside_an_orchestrator_are_typed_errors(db_url: str) -> None:
    app = simple_app()

    @app.orchestration_trigger(context_name="context")
    def misuse(context: df.DurableOrchestrationContext):
        attempts = {
            "unknown activity": lambda: context.call_activity("no_such_activity"),
            "unregistered function": lambda: context.call_activity(print),
            "orchestrator as activity": lambda: context.call_activity("simple"),
            "non-json activity input": lambda: context.call_activity("echo", {1}),
            "retry options": lambda: context.call_activity_with_retry("echo", {"max": 3}),
            "empty event name": lambda: context.wait_for_external_event(""),
            "custom status": lambda: context.set_custom_status(object()),
        }
        errors = {}
        for label, attempt in attempts.items():
            try:
                attempt()
                errors[label] = "accepted"
            except df.DurableError as error:
                errors[label] = type(error).__name__
        try:
            context.task_any([])
        except ValueError:
            errors["empty task_any"] = "ValueError"
        try:
            context.task_all(["not a task"])  # type: ignore[list-item]
        except TypeError:
            errors["task_all of a string"] = "TypeError"
        yield context.create_timer(timedelta(0))
        return errors

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, misuse)

    assert status.runtime_status is Status.Completed
    assert status.output == {
        "unknown activity": "FunctionNotFoundError",
        "unregistered function": "InvalidInputError",
        "orchestrator as activity": "FunctionNotFoundError",
        "non-json activity input": "SerializationError",
        "retry options": "InvalidInputError",
        "empty event name": "InvalidInputError",
        "custom status": "SerializationError",
        "empty task_any": "ValueError",
        "task_all of a string": "TypeError",
    }


async def test_an_uncaught_bad_call_fails_only_that_instance(db_url: str) -> None:
    app = simple_app()

    @app.orchestration_trigger(context_name="context")
    def calls_a_ghost(context: df.DurableOrchestrationContext):
        yield context.call_activity("ghost_activity")

    async with running(app, db_url) as host:
        bad = await run_to_end(host.client, calls_a_ghost)
        good = await run_to_end(host.client, "simple", "still fine")

    assert bad.runtime_status is Status.Failed
    assert bad.failure_details["errorType"] == "durable.errors.FunctionNotFoundError"
    assert "ghost_activity" in bad.failure_details["message"]
    assert good.output == "still fine"


def test_registration_mistakes_are_caught_early(db_url: str) -> None:
    app = df.DFApp()

    def both(context: Any) -> None:
        return None

    app.activity_trigger(input_name="x")(both)
    with pytest.raises(df.InvalidInputError, match="both"):
        app.orchestration_trigger(context_name="context")(both)

    twins = df.DFApp()

    @twins.activity_trigger(input_name="x", activity="same")
    def first(x: Any) -> None:
        return None

    @twins.activity_trigger(input_name="x", activity="same")
    def second(x: Any) -> None:
        return None

    with pytest.raises(df.InvalidInputError, match="same"):
        df.Host(twins, storage=db_url)

    with pytest.raises(df.InvalidInputError, match="Unknown storage URL"):
        df.Host(simple_app(), storage="mysql://nope")
