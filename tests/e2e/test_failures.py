"""Orchestrations that fail: unhandled exceptions, non-deterministic code, missing functions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import durable as df
from tests.e2e.conftest import Status, run_to_end, running, wait_for_event


async def test_unhandled_exception_fails_the_instance_with_details(db_url: str) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def half(n: int) -> float:
        return n / 2

    @app.orchestration_trigger(context_name="context")
    def fragile(context: df.DurableOrchestrationContext):
        value = yield context.call_activity("half", context.get_input())
        if value < 10:
            raise ValueError(f"value {value} is too small")
        return value

    @app.orchestration_trigger(context_name="context")
    def fails_at_once(context: df.DurableOrchestrationContext):
        raise LookupError("before the first yield")
        yield context.call_activity("half", 1)

    async with running(app, db_url) as host:
        failed = await run_to_end(host.client, fragile, 4)
        early = await run_to_end(host.client, fails_at_once)
        fine = await run_to_end(host.client, fragile, 40)

    assert failed.runtime_status is Status.Failed
    assert failed.output == "Orchestrator function 'fragile' failed: value 2.0 is too small"
    details = failed.failure_details
    assert details["errorType"] == "ValueError"
    assert details["message"] == "value 2.0 is too small"
    assert "Traceback" in details["details"] and "in fragile" in details["details"]
    assert early.runtime_status is Status.Failed
    assert early.failure_details["errorType"] == "LookupError"
    assert early.output == "Orchestrator function 'fails_at_once' failed: before the first yield"
    assert fine.runtime_status is Status.Completed and fine.failure_details is None


def original_workflow(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("step_a", 1)
    go = yield context.wait_for_external_event("continue")
    last = yield context.call_activity("step_b", first)
    return [first, go, last]


def renamed_activity(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("step_b", 1)  # was step_a
    go = yield context.wait_for_external_event("continue")
    return [first, go]


def activity_became_timer(context: df.DurableOrchestrationContext):
    yield context.create_timer(timedelta(0))  # was call_activity('step_a')
    go = yield context.wait_for_external_event("continue")
    return go


def dropped_call(context: df.DurableOrchestrationContext):
    go = yield context.wait_for_external_event("continue")  # no longer calls step_a first
    return go


def extended_later(context: df.DurableOrchestrationContext):
    """Same as the original up to where the instance is; differs only after that point."""
    first = yield context.call_activity("step_a", 1)
    go = yield context.wait_for_external_event("continue")
    extra = yield context.call_activity("step_a", 100)
    return [first, go, extra]


def workflow_app(orchestrator: Callable[..., Any]) -> df.DFApp:
    app = df.DFApp()
    app.activity_trigger(input_name="n")(step_a)
    app.activity_trigger(input_name="n")(step_b)
    app.orchestration_trigger(context_name="context", orchestration="workflow")(orchestrator)
    return app


def step_a(n: int) -> int:
    return n + 1


def step_b(n: int) -> int:
    return n * 10


@pytest.mark.parametrize(
    ("changed", "expected", "actual"),
    [
        (renamed_activity, "call_activity('step_a')", "call_activity('step_b')"),
        (activity_became_timer, "call_activity('step_a')", "create_timer"),
        (dropped_call, "call_activity('step_a')", None),
    ],
)
async def test_changed_code_fails_with_non_determinism_error_after_restart(
    db_url: str, changed: Callable[..., Any], expected: str, actual: str | None
) -> None:
    async with running(workflow_app(original_workflow), db_url) as host:
        iid = await host.client.start_new("workflow")
        await wait_for_event(host.client, iid, "TaskCompleted")

    # The code registered for "workflow" changes while the instance waits for its event.
    async with running(workflow_app(changed), db_url) as host:
        await host.client.raise_event(iid, "continue", "go")
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.runtime_status is Status.Failed
    details = status.failure_details
    assert details["errorType"] == "durable.errors.NonDeterminismError"
    assert expected in details["message"]
    if actual is not None:
        assert actual in details["message"]
    assert "Non-deterministic" in status.output


async def test_code_changed_only_after_the_current_point_replays_fine(db_url: str) -> None:
    async with running(workflow_app(original_workflow), db_url) as host:
        iid = await host.client.start_new("workflow")
        await wait_for_event(host.client, iid, "TaskCompleted")
    async with running(workflow_app(extended_later), db_url) as host:
        await host.client.raise_event(iid, "continue", "go")
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.runtime_status is Status.Completed
    assert status.output == [2, "go", 101]


async def test_an_orchestrator_missing_from_the_app_fails_its_instances(db_url: str) -> None:
    old_app = df.DFApp()

    @old_app.orchestration_trigger(context_name="context")
    def retired(context: df.DurableOrchestrationContext):
        return "old code"
        yield

    async with running(old_app, db_url, run_worker=False) as front:
        iid = await front.client.start_new(retired)

    new_app = workflow_app(original_workflow)
    async with running(new_app, db_url) as host:
        status = await host.client.wait_for_completion(iid, timeout=20)
        with pytest.raises(df.FunctionNotFoundError):
            await host.client.start_new("retired")

    assert status.runtime_status is Status.Failed
    assert status.failure_details["errorType"] == "durable.errors.FunctionNotFoundError"
    assert "retired" in status.failure_details["message"]


async def test_non_serializable_results_fail_clearly(db_url: str) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="unused")
    def returns_a_set(unused: Any) -> set[int]:
        return {1, 2}

    @app.orchestration_trigger(context_name="context")
    def bad_activity_output(context: df.DurableOrchestrationContext):
        try:
            yield context.call_activity("returns_a_set")
        except df.TaskFailedError as error:
            return [error.error_type, error.failure.message]
        return "not reached"

    @app.orchestration_trigger(context_name="context")
    def bad_orchestration_output(context: df.DurableOrchestrationContext):
        yield context.create_timer(timedelta(0))
        return object()

    @app.orchestration_trigger(context_name="context")
    def bad_activity_input(context: df.DurableOrchestrationContext):
        yield context.call_activity("returns_a_set", {"when": timedelta(1)})

    async with running(app, db_url) as host:
        activity_output = await run_to_end(host.client, bad_activity_output)
        orchestration_output = await run_to_end(host.client, bad_orchestration_output)
        activity_input = await run_to_end(host.client, bad_activity_input)

    error_type, message = activity_output.output
    assert error_type == "durable.errors.SerializationError"
    assert "output of activity 'returns_a_set'" in message
    assert orchestration_output.runtime_status is Status.Failed
    assert orchestration_output.failure_details["errorType"] == "durable.errors.SerializationError"
    assert "orchestration output" in orchestration_output.failure_details["message"]
    assert activity_input.runtime_status is Status.Failed
    assert "input of activity 'returns_a_set'" in activity_input.failure_details["message"]
