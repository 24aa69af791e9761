"""Rewind of failed instances on a real Host (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

import durable as df
from tests.e2e.conftest import running

Status = df.OrchestrationRuntimeStatus


class Switch:
    """Whether the flaky dependency works yet (set by the test: 'the bug was fixed')."""

    fixed = False
    runs: list[str] = []


app = df.DFApp()


@app.activity_trigger(input_name="name")
def step(name: str) -> str:
    Switch.runs.append(name)
    if name.startswith("flaky") and not Switch.fixed:
        raise ConnectionError(f"{name} is down")
    return name.upper()


@app.orchestration_trigger(context_name="context")
def pipeline(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("step", "one")
    second = yield context.call_activity("step", "flaky-two")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("step", "flaky-child"))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    done = yield context.call_activity("step", "parent-one")
    nested = yield context.call_sub_orchestrator("child", instance_id=f"{context.instance_id}-c")
    return [done, nested]


@pytest.fixture(autouse=True)
def broken() -> None:
    Switch.fixed = False
    Switch.runs = []


async def test_a_failed_activity_runs_again_and_completed_work_is_kept(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        iid = await host.client.start_new("pipeline")
        failed = await host.client.wait_for_completion(iid, timeout=30)
        assert failed.runtime_status is Status.Failed
        Switch.fixed = True
        await host.client.rewind(iid, "the service is back")
        status = await host.client.wait_for_completion(iid, timeout=30)
    assert status.runtime_status is Status.Completed and status.output == ["ONE", "FLAKY-TWO"]
    assert Switch.runs == ["one", "flaky-two", "flaky-two"]  # "one" did not run again


async def test_a_failed_sub_orchestration_is_rewound_recursively(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        iid = await host.client.start_new("parent", "family")
        assert (await host.client.wait_for_completion(iid, timeout=30)).runtime_status is (
            Status.Failed)
        assert (await host.client.get_status("family-c")).runtime_status is Status.Failed
        Switch.fixed = True
        await host.client.rewind(iid)
        status = await host.client.wait_for_completion(iid, timeout=30)
        kid = await host.client.get_status("family-c")
    assert status.output == ["PARENT-ONE", "FLAKY-CHILD"]
    assert kid.runtime_status is Status.Completed
    assert Switch.runs.count("parent-one") == 1 and Switch.runs.count("flaky-child") == 2


async def test_only_failed_instances_can_be_rewound(storage_url: str) -> None:
    async with running(app, storage_url) as host:
        with pytest.raises(df.InstanceNotFoundError):
            await host.client.rewind("nobody")
        Switch.fixed = True
        iid = await host.client.start_new("pipeline")
        await host.client.wait_for_completion(iid, timeout=30)
        with pytest.raises(df.InstanceNotFailedError) as refused:
            await host.client.rewind(iid)
    assert refused.value.status == "Completed"
