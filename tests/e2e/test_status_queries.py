"""get_status (with history), get_status_all, get_status_by filters and paging."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import durable as df
from tests.e2e.conftest import Status, running, wait_for_event, wait_for_status


def sample_app() -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def inc(n: int) -> int:
        return n + 1

    @app.orchestration_trigger(context_name="context")
    def sample(context: df.DurableOrchestrationContext):
        n = yield context.call_activity("inc", context.get_input())
        yield context.create_timer(timedelta(milliseconds=1))
        event = yield context.wait_for_external_event("finish")
        context.set_custom_status("finishing")
        try:
            yield context.call_activity("inc", "not a number")
        except df.TaskFailedError as error:
            return {"n": n, "event": event, "error": error.error_type}
        return "not reached"

    @app.orchestration_trigger(context_name="context")
    def parked(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("never"))

    return app


async def test_status_fields_and_history_shape(db_url: str) -> None:
    app = sample_app()
    async with running(app, db_url) as host:
        before = datetime.now(UTC)
        iid = await host.client.start_new("sample", "shape-1", 1)
        await wait_for_event(host.client, iid, "TimerFired")
        await host.client.raise_event(iid, "finish", {"ok": True})
        status = await host.client.wait_for_completion(iid, timeout=20)
        plain = await host.client.get_status(iid)
        full = await host.client.get_status(iid, show_history=True, show_history_output=True)
        no_input = await host.client.get_status(iid, show_input=False)

    assert bool(status) is True
    assert status.name == "sample"
    assert status.instance_id == "shape-1"
    assert status.runtime_status is Status.Completed
    assert status.input_ == 1
    assert status.output == {"n": 2, "event": {"ok": True}, "error": "TypeError"}
    assert status.custom_status == "finishing"
    assert before - timedelta(seconds=1) <= status.created_time <= status.last_updated_time
    assert status.created_time.tzinfo is not None
    assert plain.history is None
    assert no_input.input_ is None and no_input.output == status.output

    history = full.history
    assert full.historyEvents is history  # the Azure SDK's attribute name works too
    assert [e["EventType"] for e in history] == [
        "ExecutionStarted", "TaskCompleted", "TimerFired", "EventRaised", "TaskFailed",
        "ExecutionCompleted",
    ]
    started, completed, timer, raised, failed, done = history
    assert started["FunctionName"] == "sample" and started["Input"] == 1
    assert completed["FunctionName"] == "inc" and completed["Result"] == 2
    assert "ScheduledTime" in completed and "Timestamp" in completed
    assert "FireAt" in timer
    assert raised["Name"] == "finish" and raised["Input"] == {"ok": True}
    assert failed["FunctionName"] == "inc"
    assert failed["FailureDetails"]["errorType"] == "TypeError"
    assert "Traceback" in failed["Details"]
    assert done["OrchestrationStatus"] == "Completed"
    assert done["Result"] == {"n": 2, "event": {"ok": True}, "error": "TypeError"}
    json_view = full.to_json()
    assert json_view["runtimeStatus"] == "Completed"
    assert json_view["historyEvents"] == history


async def test_history_hides_payloads_unless_asked(db_url: str) -> None:
    app = sample_app()
    async with running(app, db_url) as host:
        iid = await host.client.start_new("sample", None, 5)
        await host.client.raise_event(iid, "finish", "secret")
        await host.client.wait_for_completion(iid, timeout=20)
        status = await host.client.get_status(iid, show_history=True)

    for event in status.history:
        assert "Input" not in event and "Result" not in event, event


async def test_unknown_instance_status_is_falsy_not_none(db_url: str) -> None:
    app = sample_app()
    async with running(app, db_url) as host:
        status = await host.client.get_status("does-not-exist")

    assert status is not None
    assert not status
    assert status.runtime_status is None
    assert status.instance_id is None
    assert status.created_time is None
    assert status.runtime_status in (Status.Completed, Status.Failed, None)  # the Azure idiom


async def test_get_status_by_filters_and_get_status_all(db_url: str) -> None:
    app = sample_app()
    async with running(app, db_url) as host:
        client = host.client
        for n in range(3):
            await client.raise_event(await client.start_new("sample", f"done-{n}", n),
                                     "finish", n)
        for n in range(3):
            await client.wait_for_completion(f"done-{n}", timeout=20)
        middle = datetime.now(UTC)
        for n in range(2):
            await client.start_new("parked", f"parked-{n}")
        for n in range(2):
            await wait_for_status(client, f"parked-{n}", Status.Running)

        everyone = await client.get_status_all()
        completed = await client.get_status_by(runtime_status=[Status.Completed])
        running_now = await client.get_status_by(runtime_status=[Status.Running])
        both = await client.get_status_by(runtime_status=[Status.Running, Status.Completed])
        by_prefix = await client.get_status_by(instance_id_prefix="parked-")
        later = await client.get_status_by(created_time_from=middle)
        earlier = await client.get_status_by(created_time_to=middle)
        none = await client.get_status_by(created_time_from=middle + timedelta(days=1))
        for n in range(2):
            await client.terminate(f"parked-{n}")

    def ids(statuses: list[df.DurableOrchestrationStatus]) -> list[str]:
        return sorted(s.instance_id for s in statuses)

    parked = ["parked-0", "parked-1"]
    done = ["done-0", "done-1", "done-2"]
    assert ids(everyone) == sorted(done + parked)
    assert ids(completed) == done
    assert ids(running_now) == parked
    assert ids(both) == sorted(done + parked)
    assert ids(by_prefix) == parked
    assert ids(later) == parked
    assert ids(earlier) == done
    assert none == []


async def test_paging_with_continuation_tokens(db_url: str) -> None:
    app = sample_app()
    async with running(app, db_url, run_worker=False) as front:
        client = front.client
        created = [await client.start_new("parked", f"page-{n:02d}") for n in range(7)]

        pages = []
        token = None
        while True:
            page, token = await client.get_status_page(page_size=3, continuation_token=token)
            pages.append([s.instance_id for s in page])
            if token is None:
                break
        filtered, next_token = await client.get_status_page(
            instance_id_prefix="page-0", page_size=100
        )
        everything = await client.get_status_all()

        with pytest.raises(df.InvalidInputError):
            await client.get_status_page(continuation_token="not a token")
        with pytest.raises(df.InvalidInputError):
            await client.get_status_page(page_size=0)

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == created  # oldest first, no repeats, none missed
    assert len(filtered) == 7 and next_token is None
    assert len(everything) == 7
    assert all(s.runtime_status is Status.Pending for s in everything)


async def test_get_status_all_returns_every_page(db_url: str) -> None:
    app = sample_app()
    async with running(app, db_url, run_worker=False) as front:
        for chunk in range(0, 1001, 100):
            await asyncio.gather(*(
                front.client.start_new("parked", f"many-{n:04d}")
                for n in range(chunk, min(chunk + 100, 1001))
            ))
        everyone = await front.client.get_status_all()

    # More than two pages of the 500 that get_status_by reads at a time.
    assert len(everyone) == 1001
    assert len({s.instance_id for s in everyone}) == 1001
