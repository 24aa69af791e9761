"""wait_for_external_event and raise_event: buffering, order, names, timeouts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import durable as df
from tests.e2e.conftest import Status, events_of, running, wait_for_event, wait_for_status


def collector_app() -> df.DFApp:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def collect(context: df.DurableOrchestrationContext):
        """Wait for 'start', then take ``n`` 'data' events one wait at a time."""
        n = context.get_input()
        start = yield context.wait_for_external_event("start")
        got = []
        for _ in range(n):
            got.append((yield context.wait_for_external_event("data")))
        return {"start": start, "data": got}

    return app


async def test_events_raised_before_the_wait_are_buffered_first_in_first_out(db_url: str) -> None:
    app = collector_app()
    async with running(app, db_url) as host:
        iid = await host.client.start_new("collect", client_input=3)
        await wait_for_status(host.client, iid, Status.Running)
        # All three arrive while the orchestrator still waits for 'start'.
        for n in (1, 2, 3):
            await host.client.raise_event(iid, "data", {"n": n})
        await wait_for_event(host.client, iid, "EventRaised", count=3)
        await host.client.raise_event(iid, "start", "go")
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.output == {"start": "go", "data": [{"n": 1}, {"n": 2}, {"n": 3}]}


async def test_events_raised_before_the_instance_ran_are_kept(db_url: str) -> None:
    app = collector_app()
    async with running(app, db_url, run_worker=False) as front:
        # No worker: the instance stays Pending while events pile up in its inbox.
        iid = await front.client.start_new("collect", client_input=2)
        await front.client.raise_event(iid, "data", "first")
        await front.client.raise_event(iid, "start", None)
        await front.client.raise_event(iid, "data", "second")
        assert (await front.client.get_status(iid)).runtime_status is Status.Pending
    async with running(app, db_url) as host:
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.output == {"start": None, "data": ["first", "second"]}


async def test_event_names_are_case_insensitive(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def approval(context: df.DurableOrchestrationContext):
        first = yield context.wait_for_external_event("Approval")
        second = yield context.wait_for_external_event("APPROVAL")
        return [first, second]

    async with running(app, db_url) as host:
        iid = await host.client.start_new(approval)
        await host.client.raise_event(iid, "approval", 1)
        await host.client.raise_event(iid, "aPPROVAL", 2)
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.output == [1, 2]


async def test_several_waiters_on_one_name_are_served_in_order(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def many_waiters(context: df.DurableOrchestrationContext):
        first = context.wait_for_external_event("vote")
        second = context.wait_for_external_event("vote")
        other = context.wait_for_external_event("other")
        results = yield context.task_all([second, other, first])
        return results

    async with running(app, db_url) as host:
        iid = await host.client.start_new(many_waiters)
        await wait_for_status(host.client, iid, Status.Running)
        await host.client.raise_event(iid, "vote", "A")
        await host.client.raise_event(iid, "other", "X")
        await host.client.raise_event(iid, "vote", "B")
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.output == ["B", "X", "A"]


async def test_payloads_are_delivered_as_values(db_url: str) -> None:
    app = df.DFApp()
    payloads: list[Any] = [None, 0, "", "text", [1, {"a": None}], {"nested": {"x": 1.5}}]

    @app.orchestration_trigger(context_name="context")
    def receive(context: df.DurableOrchestrationContext):
        got = []
        for _ in range(len(payloads)):
            got.append((yield context.wait_for_external_event("p")))
        return got

    async with running(app, db_url) as host:
        iid = await host.client.start_new(receive)
        for payload in payloads:
            await host.client.raise_event(iid, "p", payload)
        status = await host.client.wait_for_completion(iid, timeout=20)

    assert status.output == payloads


@pytest.mark.parametrize("approve", [True, False])
async def test_event_versus_timeout(db_url: str, approve: bool) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def approval(context: df.DurableOrchestrationContext):
        # Long enough that the event surely wins when it is raised; short when it is not.
        timeout = context.create_timer(timedelta(seconds=30 if approve else 0.3))
        answer = context.wait_for_external_event("answer")
        winner = yield context.task_any([answer, timeout])
        if winner is answer:
            timeout.cancel()
            return {"answered": answer.result}
        return {"timed_out": True, "answer_pending": not answer.is_completed}

    async with running(app, db_url) as host:
        iid = await host.client.start_new(approval)
        if approve:
            await host.client.raise_event(iid, "answer", "yes")
        status = await host.client.wait_for_completion(iid, timeout=20)
        history = (await host.client.get_status(iid, show_history=True)).history

    if approve:
        assert status.output == {"answered": "yes"}
        assert events_of(history, "TimerFired") == []
    else:
        assert status.output == {"timed_out": True, "answer_pending": True}
        assert len(events_of(history, "TimerFired")) == 1


async def test_raise_event_errors(db_url: str) -> None:
    app = collector_app()
    async with running(app, db_url) as host:
        with pytest.raises(df.InstanceNotFoundError, match="nobody"):
            await host.client.raise_event("nobody", "data", 1)

        iid = await host.client.start_new("collect", client_input=0)
        with pytest.raises(df.InvalidInputError):
            await host.client.raise_event(iid, "", 1)
        with pytest.raises(df.SerializationError):
            await host.client.raise_event(iid, "start", object())
        await host.client.raise_event(iid, "start", "valid")
        done = await host.client.wait_for_completion(iid, timeout=20)
        assert done.output == {"start": "valid", "data": []}  # the bad payload never arrived

        with pytest.raises(df.InstanceNotRunningError) as info:
            await host.client.raise_event(iid, "start", "too late")
        assert info.value.status == "Completed"
