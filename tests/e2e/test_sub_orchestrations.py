"""call_sub_orchestrator: child IDs, parent links, results and failures."""

from __future__ import annotations

import durable as df
from tests.e2e.conftest import (
    Status,
    events_of,
    history_of,
    run_to_end,
    running,
    wait_for_status,
)


def family_app() -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def square(n: int) -> int:
        return n * n

    @app.orchestration_trigger(context_name="context")
    def child(context: df.DurableOrchestrationContext):
        n = context.get_input()
        if n < 0:
            raise ArithmeticError(f"negative input {n}")
        squared = yield context.call_activity("square", n)
        return {
            "squared": squared,
            "me": context.instance_id,
            "parent": context.parent_instance_id,
        }

    @app.orchestration_trigger(context_name="context")
    def grandchild_parent(context: df.DurableOrchestrationContext):
        inner = yield context.call_sub_orchestrator("child", context.get_input())
        return {"inner": inner, "me": context.instance_id, "parent": context.parent_instance_id}

    return app


async def test_explicit_and_generated_child_ids(db_url: str) -> None:
    app = family_app()

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        explicit = yield context.call_sub_orchestrator("child", 3, instance_id="kid-explicit")
        generated = yield context.call_sub_orchestrator("child", 4)
        nested = yield context.call_sub_orchestrator(grandchild_parent_fn, 5)
        return {"explicit": explicit, "generated": generated, "nested": nested,
                "execution": context.execution_id}

    grandchild_parent_fn = app.orchestrators["grandchild_parent"].fn

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, parent, instance_id="the-parent")
        generated_id = status.output["generated"]["me"]
        generated_status = await host.client.get_status(generated_id)
        explicit_status = await host.client.get_status("kid-explicit")
        history = await history_of(host.client, "the-parent")

    out = status.output
    assert out["explicit"] == {"squared": 9, "me": "kid-explicit", "parent": "the-parent"}
    assert out["generated"]["squared"] == 16
    assert out["generated"]["parent"] == "the-parent"
    # Durable Task's default child ID: "<parent execution id>:<task sequence number>".
    assert generated_id == f"{out['execution']}:1"
    nested = out["nested"]
    assert nested["parent"] == "the-parent"
    assert nested["inner"]["squared"] == 25
    assert nested["inner"]["parent"] == nested["me"]
    assert explicit_status.runtime_status is Status.Completed
    assert explicit_status.name == "child"
    assert generated_status.runtime_status is Status.Completed
    created = events_of(history, "SubOrchestrationInstanceCompleted")
    assert [e["FunctionName"] for e in created] == ["child", "child", "grandchild_parent"]
    assert created[0]["InstanceId"] == "kid-explicit"


async def test_child_failure_surfaces_as_task_failed_error(db_url: str) -> None:
    app = family_app()

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        try:
            yield context.call_sub_orchestrator("child", -1, instance_id="bad-kid")
        except df.TaskFailedError as error:
            return {
                "type": error.error_type,
                "message": error.failure.message,
                "details_has_traceback": "Traceback" in (error.details or ""),
                "text": str(error),
            }
        return "not reached"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, parent)
        child = await host.client.get_status("bad-kid")

    assert status.runtime_status is Status.Completed
    assert status.output["type"] == "ArithmeticError"
    assert status.output["message"] == "negative input -1"
    assert status.output["details_has_traceback"] is True
    assert "call_sub_orchestrator('child')" in status.output["text"]
    assert child.runtime_status is Status.Failed
    assert child.failure_details["errorType"] == "ArithmeticError"


async def test_uncaught_child_failure_fails_the_parent(db_url: str) -> None:
    app = family_app()

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        return (yield context.call_sub_orchestrator("child", -2))

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, parent)

    assert status.runtime_status is Status.Failed
    assert status.failure_details["errorType"] == "durable.errors.TaskFailedError"
    assert "negative input -2" in status.failure_details["message"]
    assert "negative input -2" in status.output


async def test_child_id_already_running_fails_the_call(db_url: str) -> None:
    app = family_app()

    @app.orchestration_trigger(context_name="context")
    def waits(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("never"))

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        try:
            yield context.call_sub_orchestrator("child", 1, instance_id="busy")
        except df.TaskFailedError as error:
            return error.error_type
        return "not reached"

    async with running(app, db_url) as host:
        await host.client.start_new(waits, "busy")
        status = await run_to_end(host.client, parent)
        busy = await host.client.get_status("busy")
        await host.client.terminate("busy", "cleanup")

    assert status.output == "durable.errors.InstanceAlreadyExistsError"
    assert busy.runtime_status is Status.Running
    assert busy.name == "waits"


async def test_sub_orchestrator_arguments_are_checked_in_the_parent(db_url: str) -> None:
    app = family_app()

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        errors = []
        for kwargs in ({"name": "no_such_orchestrator"},
                       {"name": "child", "instance_id": "bad/id"},
                       {"name": "child", "instance_id": context.instance_id},
                       {"name": "child", "input_": {1, 2}}):
            try:
                context.call_sub_orchestrator(**kwargs)
            except df.InvalidInputError as error:
                errors.append(type(error).__name__)
        yield context.call_sub_orchestrator("child", 2)
        return errors

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, parent)

    assert status.output == [
        "FunctionNotFoundError", "InvalidInstanceIdError", "InvalidInputError",
        "SerializationError",
    ]


async def test_terminating_a_child_fails_the_parents_task_and_does_not_cascade(
    db_url: str,
) -> None:
    app = family_app()

    @app.orchestration_trigger(context_name="context")
    def sleeper(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("wake"))

    @app.orchestration_trigger(context_name="context")
    def parent(context: df.DurableOrchestrationContext):
        try:
            yield context.call_sub_orchestrator("sleeper", instance_id="sleepy-kid")
        except df.TaskFailedError as error:
            return error.failure.message
        return "not reached"

    async with running(app, db_url) as host:
        iid = await host.client.start_new(parent, "sleepy-parent")
        await wait_for_status(host.client, "sleepy-kid", Status.Running)
        await host.client.terminate("sleepy-kid", "enough")
        status = await host.client.wait_for_completion(iid, timeout=20)

        # Terminating a parent leaves its running child alone.
        other = await host.client.start_new(parent, "parent-2")
        await wait_for_status(host.client, "sleepy-kid", Status.Running)
        await host.client.terminate(other, "stop parent only")
        await wait_for_status(host.client, other, Status.Terminated)
        kid = await host.client.get_status("sleepy-kid")
        await host.client.raise_event("sleepy-kid", "wake", "ok")
        kid_done = await host.client.wait_for_completion("sleepy-kid", timeout=20)

    assert status.runtime_status is Status.Completed
    assert "enough" in status.output
    assert kid.runtime_status is Status.Running
    assert kid_done.output == "ok"
