"""Client instance management: suspend, resume, terminate, restart, purge, waiting."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

import durable as df
from tests.conftest import BACKEND_URLS
from tests.e2e.conftest import (
    Journal,
    Status,
    events_of,
    history_of,
    run_to_end,
    running,
    wait_for_event,
    wait_for_status,
)


def waiting_app(journal: Journal | None = None) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="value")
    def note(value: str) -> str:
        if journal is not None:
            journal.write(value)
        return value

    @app.orchestration_trigger(context_name="context")
    def waiter(context: df.DurableOrchestrationContext):
        """Wait for 'go', then run one activity with the event's payload."""
        payload = yield context.wait_for_external_event("go")
        return (yield context.call_activity("note", f"{context.get_input()}:{payload}"))

    return app


async def test_suspended_instances_hold_events_until_resumed(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        client = host.client
        iid = await client.start_new("waiter", client_input="in")
        await wait_for_status(client, iid, Status.Running)

        await client.suspend(iid, "maintenance")
        await wait_for_status(client, iid, Status.Suspended)
        await client.raise_event(iid, "go", "payload")
        await wait_for_event(client, iid, "EventRaised")  # recorded, but not delivered
        held = await client.get_status(iid)

        await client.resume(iid, "done")
        status = await client.wait_for_completion(iid, timeout=20)
        history = await history_of(client, iid)

    assert held.runtime_status is Status.Suspended
    assert held.output is None
    assert status.runtime_status is Status.Completed
    assert status.output == "in:payload"
    reasons = [(e["EventType"], e["Reason"]) for e in history
               if e["EventType"] in ("ExecutionSuspended", "ExecutionResumed")]
    assert reasons[0] == ("ExecutionSuspended", "maintenance")
    assert reasons[-1] == ("ExecutionResumed", "done")


async def test_suspend_and_resume_refuse_an_instance_in_the_wrong_status(
    storage_url: str,
) -> None:
    """A suspend of a Suspended instance and a resume of one that is not Suspended raise
    InstanceStatusConflictError (as Durable Functions throws) and send nothing; a finished
    instance is still left alone, an unknown one is still InstanceNotFoundError."""
    app = waiting_app()
    async with running(app, storage_url) as host:
        client = host.client
        iid = await client.start_new("waiter", client_input="in")
        await wait_for_status(client, iid, Status.Running)
        with pytest.raises(df.InstanceStatusConflictError) as not_suspended:
            await client.resume(iid, "too early")

        await client.suspend(iid, "hold")
        await wait_for_status(client, iid, Status.Suspended)
        with pytest.raises(df.InstanceStatusConflictError) as suspended:
            await client.suspend(iid, "twice")
        await client.resume(iid, "go on")
        await wait_for_status(client, iid, Status.Running)
        with pytest.raises(df.InstanceStatusConflictError):
            await client.resume(iid, "twice")
        history = await history_of(client, iid)

        await client.raise_event(iid, "go", "x")
        done = await client.wait_for_completion(iid, timeout=20)
        await client.suspend(iid)  # finished: nothing happens, nothing is raised (as before)
        await client.resume(iid)
        with pytest.raises(df.InstanceNotFoundError):
            await client.resume("no-such-instance")

    assert not_suspended.value.status == "Running"
    assert not_suspended.value.operation == "resume"
    assert str(not_suspended.value) == (
        f"Cannot resume the orchestration instance '{iid}' because it is Running; "
        "only a Suspended instance can be resumed.")
    assert suspended.value.status == "Suspended" and suspended.value.instance_id == iid
    assert "Cannot suspend the orchestration instance" in str(suspended.value)
    # The refused calls sent nothing: one suspend and one resume, with the accepted reasons.
    controls = [(e["EventType"], e["Reason"]) for e in history
                if e["EventType"] in ("ExecutionSuspended", "ExecutionResumed")]
    assert controls == [("ExecutionSuspended", "hold"), ("ExecutionResumed", "go on")]
    assert done.runtime_status is Status.Completed and done.output == "in:x"


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store two hosts can share (not memory://, which lives in one backend object)."""
    return BACKEND_URLS[request.param](tmp_path)


async def test_a_suspend_not_yet_applied_can_be_sent_again_and_applies_once(
    shared_url: str,
) -> None:
    """The check reads the stored status, as Durable Functions does: until a worker applies a
    suspend, the instance is not Suspended, so a second suspend is accepted and a resume is
    refused. The duplicate then changes nothing. (Regression: a second suspend was held like
    an event and replayed by the resume, so the instance never resumed.)"""
    app = waiting_app()
    async with running(app, shared_url, run_worker=False) as clients:
        client = clients.client
        iid = await client.start_new("waiter", client_input="in")  # Pending: no worker yet
        await client.suspend(iid, "first")
        await client.suspend(iid, "second")  # the first is not applied: still Pending
        with pytest.raises(df.InstanceStatusConflictError) as early:
            await client.resume(iid)
        await client.raise_event(iid, "go", "payload")
        assert (await client.get_status(iid)).runtime_status is Status.Pending

    async with running(app, shared_url) as host:
        client = host.client
        await wait_for_status(client, iid, Status.Suspended)
        await wait_for_event(client, iid, "EventRaised")  # recorded, but not delivered
        held = await client.get_status(iid)
        await client.resume(iid, "done")
        status = await client.wait_for_completion(iid, timeout=20)
        history = await history_of(client, iid)

    assert early.value.status == "Pending"
    assert held.runtime_status is Status.Suspended
    assert status.runtime_status is Status.Completed and status.output == "in:payload"
    reasons = [(e["EventType"], e["Reason"]) for e in history
               if e["EventType"] in ("ExecutionSuspended", "ExecutionResumed")]
    assert reasons[0] == ("ExecutionSuspended", "first")
    assert reasons[-1] == ("ExecutionResumed", "done")


async def test_suspend_holds_activity_results_and_timers(db_url: str) -> None:
    app = df.DFApp()
    started = asyncio.Event()
    gate = asyncio.Event()

    @app.activity_trigger(input_name="x")
    async def slow_echo(x: int) -> int:
        started.set()
        await gate.wait()
        return x

    @app.orchestration_trigger(context_name="context")
    def busy(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("slow_echo", 1)
        yield context.create_timer(timedelta(milliseconds=500))
        return a

    async with running(app, db_url) as host:
        client = host.client
        iid = await client.start_new(busy)
        await asyncio.wait_for(started.wait(), 20)

        # An activity result that arrives while suspended is recorded but not delivered.
        await client.suspend(iid)
        await wait_for_status(client, iid, Status.Suspended)
        gate.set()
        await wait_for_event(client, iid, "TaskCompleted")
        assert (await client.get_status(iid)).runtime_status is Status.Suspended
        await client.resume(iid)
        await wait_for_status(client, iid, Status.Running)  # and the timer is now scheduled

        # So is a timer that fires while suspended.
        await client.suspend(iid)
        await wait_for_status(client, iid, Status.Suspended)
        await wait_for_event(client, iid, "TimerFired")
        held = await client.get_status(iid)
        await client.resume(iid)
        status = await client.wait_for_completion(iid, timeout=20)

    assert held.runtime_status is Status.Suspended
    assert status.runtime_status is Status.Completed
    assert status.output == 1


async def test_terminate(db_url: str, journal: Journal) -> None:
    app = waiting_app(journal)
    async with running(app, db_url) as host:
        client = host.client
        iid = await client.start_new("waiter", client_input="x")
        await wait_for_status(client, iid, Status.Running)
        await client.terminate(iid, "no longer needed")
        status = await client.wait_for_completion(iid, timeout=20)
        history = await history_of(client, iid)

        # Finished instances: terminate, suspend and resume do nothing (as in Azure) ...
        await client.terminate(iid, "again")
        await client.suspend(iid, "again")
        await client.resume(iid, "again")
        after = await client.get_status(iid)
        # ... but unknown instances are an error.
        with pytest.raises(df.InstanceNotFoundError):
            await client.terminate("no-such-instance", "why")
        with pytest.raises(df.InstanceNotFoundError):
            await client.suspend("no-such-instance")

    assert status.runtime_status is Status.Terminated
    assert status.output == "no longer needed"
    assert events_of(history, "ExecutionTerminated")[0]["Reason"] == "no longer needed"
    assert after.runtime_status is Status.Terminated
    assert after.output == "no longer needed"
    assert journal.lines() == []


async def test_terminate_a_suspended_instance(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        iid = await host.client.start_new("waiter")
        await wait_for_status(host.client, iid, Status.Running)
        await host.client.suspend(iid)
        await wait_for_status(host.client, iid, Status.Suspended)
        await host.client.terminate(iid, "stop")
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.runtime_status is Status.Terminated


async def test_restart(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        client = host.client
        iid = await client.start_new("waiter", "original", {"n": 1})
        await client.raise_event(iid, "go", "a")
        first = await client.wait_for_completion(iid, timeout=20)

        new_id = await client.restart(iid)
        assert new_id != iid
        await client.raise_event(new_id, "go", "b")
        second = await client.wait_for_completion(new_id, timeout=20)

        same_id = await client.restart(iid, restart_with_new_instance_id=False)
        assert same_id == iid
        # The restarted instance is running again: restarting it in place is refused.
        with pytest.raises(df.InstanceAlreadyExistsError):
            await client.restart(iid, restart_with_new_instance_id=False)
        await client.raise_event(iid, "go", "c")
        third = await client.wait_for_completion(iid, timeout=20)

        with pytest.raises(df.InstanceNotFoundError):
            await client.restart("never-existed")

    assert first.output == "{'n': 1}:a"
    assert second.output == "{'n': 1}:b"
    assert second.input_ == {"n": 1}
    assert third.output == "{'n': 1}:c"


async def test_purge_by_id_and_by_filter(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        client = host.client
        done_ids = []
        for n in range(3):
            iid = await client.start_new("waiter", f"done-{n}")
            await client.raise_event(iid, "go", n)
            await client.wait_for_completion(iid, timeout=20)
            done_ids.append(iid)
        terminated = await client.start_new("waiter", "terminated-1")
        running_id = await client.start_new("waiter", "still-running")
        await client.terminate(terminated, "make it terminal")
        await client.wait_for_completion(terminated, timeout=20)
        await wait_for_status(client, running_id, Status.Running)

        one = await client.purge_instance_history(done_ids[0])
        again = await client.purge_instance_history(done_ids[0])
        gone = await client.get_status(done_ids[0])
        # Only terminal instances are purged by filter, even when asked for Running ones.
        by_status = await client.purge_instance_history_by(
            runtime_status=[Status.Completed, Status.Running]
        )
        left = sorted(s.instance_id for s in await client.get_status_all())
        everything = await client.purge_instance_history_by()
        remaining = [s.instance_id for s in await client.get_status_all()]
        await client.terminate(running_id, "cleanup")

    assert one.instances_deleted == 1
    assert again.instances_deleted == 0
    assert not gone and gone.runtime_status is None
    assert by_status.instances_deleted == 2
    assert left == sorted([terminated, running_id])
    assert everything.instances_deleted == 1
    assert remaining == [running_id]


async def test_purged_running_instance_id_can_be_reused(db_url: str) -> None:
    # Regression: the worker kept the purged instance cached and, seeing the new instance's
    # lower revision, re-leased it in a busy loop forever instead of running it.
    app = waiting_app()
    async with running(app, db_url) as host:
        iid = await host.client.start_new("waiter", "reuse", "first")
        await wait_for_status(host.client, iid, Status.Running)
        await host.client.purge_instance_history(iid)  # purge works on a running instance too
        assert not await host.client.get_status(iid)
        await host.client.start_new("waiter", "reuse", "second")
        await host.client.raise_event("reuse", "go", "x")
        status = await host.client.wait_for_completion("reuse", timeout=20)

    assert status.output == "second:x"


async def test_wait_for_completion_timeout_and_unknown_instance(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        iid = await host.client.start_new("waiter")
        began = time.monotonic()
        with pytest.raises(df.OrchestrationTimeoutError) as info:
            await host.client.wait_for_completion(iid, timeout=0.3)
        waited = time.monotonic() - began
        with pytest.raises(df.InstanceNotFoundError):
            await host.client.wait_for_completion("nobody", timeout=1)
        await host.client.terminate(iid)

    assert isinstance(info.value, TimeoutError)
    assert iid in str(info.value)
    assert 0.3 <= waited < 2


async def test_start_new_replaces_finished_instances_but_not_running_ones(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        client = host.client
        await client.start_new("waiter", "single", "one")
        with pytest.raises(df.InstanceAlreadyExistsError) as info:
            await client.start_new("waiter", "single", "two")
        assert info.value.status in ("Pending", "Running")
        await client.raise_event("single", "go", 1)
        first = await client.wait_for_completion("single", timeout=20)

        await client.start_new("waiter", "single", "three")  # Completed: replaced
        await client.raise_event("single", "go", 3)
        second = await client.wait_for_completion("single", timeout=20)

        await client.start_new("waiter", "single", "four")
        await client.start_new(
            "waiter", "single", "five", overridable_states=df.OverridableStates.AnyState
        )
        await client.raise_event("single", "go", 5)
        third = await client.wait_for_completion("single", timeout=20)
        history = await history_of(client, "single", show_output=True)

    assert first.output == "one:1"
    assert second.output == "three:3"
    assert third.output == "five:5"
    assert [e["Input"] for e in events_of(history, "ExecutionStarted")] == ["five"]


async def test_run_to_end_helper_sanity(db_url: str) -> None:
    app = waiting_app()
    async with running(app, db_url) as host:
        with pytest.raises(df.OrchestrationTimeoutError):
            await run_to_end(host.client, "waiter", timeout=0.1)
