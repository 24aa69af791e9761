"""The orchestration context's own members: input, IDs, custom status, time, UUIDs, replay.

Replay-safety is checked by forcing a cold replay on every episode
(``max_cached_orchestrations=0``): the orchestrator runs its code from the top each time, and
every value it derives from the context must come out the same on every run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import durable as df
from tests.e2e.conftest import Status, run_to_end, running, wait_until


def observing_app(seen: list[tuple[str, bool, datetime, str]]) -> df.DFApp:
    app = df.DFApp()

    @app.activity_trigger(input_name="unused")
    def noop(unused: Any) -> None:
        return None

    @app.orchestration_trigger(context_name="context")
    def observed(context: df.DurableOrchestrationContext):
        def note(step: str) -> list[Any]:
            now, made = context.current_utc_datetime, context.new_uuid()
            seen.append((step, context.is_replaying, now, made))
            return [now.isoformat(), made]

        out = [note("start")]
        yield context.call_activity("noop")
        out.append(note("after activity"))
        yield context.create_timer(timedelta(milliseconds=30))
        out.append(note("after timer"))
        yield context.call_activity(noop)
        out.append(note("end"))
        return out

    return app


async def test_time_and_uuid_are_stable_across_cold_replays(db_url: str) -> None:
    seen: list[tuple[str, bool, datetime, str]] = []
    app = observing_app(seen)
    async with running(app, db_url, max_cached_orchestrations=0) as host:
        status = await run_to_end(host.client, "observed")

    assert status.runtime_status is Status.Completed
    steps = ["start", "after activity", "after timer", "end"]
    for index, step in enumerate(steps):
        committed = tuple(status.output[index])
        runs = [(now.isoformat(), made, replaying) for name, replaying, now, made in seen
                if name == step]
        replays = [r[:2] for r in runs if r[2]]
        # Replayed at least once per later episode: 'start' 3+ times, 'end' never.
        assert len(replays) >= len(steps) - index - 1, step
        assert set(replays) <= {committed}, f"{step}: time or UUID changed on replay"
        # The first run was live. (A worker may also run an episode whose commit then loses
        # the fence; such a run is live too, and its values are discarded with it.)
        assert committed in [r[:2] for r in runs if not r[2]], step
    output_times = [datetime.fromisoformat(t) for t, _ in status.output]
    output_uuids = [u for _, u in status.output]
    assert output_times == sorted(output_times)
    assert output_times[0].tzinfo is not None
    assert output_times[2] - output_times[1] >= timedelta(milliseconds=30)
    assert len(set(output_uuids)) == 4
    assert all(uuid.UUID(u).version == 5 for u in output_uuids)


async def test_is_replaying_across_host_restarts(db_url: str) -> None:
    app = df.DFApp()
    seen: list[tuple[str, bool, str, str]] = []

    @app.orchestration_trigger(context_name="context")
    def stepwise(context: df.DurableOrchestrationContext):
        values = []

        def note(step: str) -> None:
            now, made = context.current_utc_datetime.isoformat(), context.new_uuid()
            seen.append((step, context.is_replaying, now, made))
            values.append([step, now, made])

        note("start")
        yield context.wait_for_external_event("next")
        note("after event")
        yield context.create_timer(timedelta(milliseconds=20))
        note("after timer")
        yield context.wait_for_external_event("next")
        note("end")
        return values

    async def reached(step: str) -> bool:
        return any(s[0] == step for s in seen)

    phases: list[set[tuple[str, bool]]] = []
    everything: list[tuple[str, bool, str, str]] = []
    async with running(app, db_url) as host:
        iid = await host.client.start_new(stepwise)
        await wait_until(lambda: reached("start"))
    phases.append({(s[0], s[1]) for s in seen})
    everything += seen
    del seen[:]
    async with running(app, db_url) as host:
        await host.client.raise_event(iid, "next")
        await wait_until(lambda: reached("after timer"))
    phases.append({(s[0], s[1]) for s in seen})
    everything += seen
    del seen[:]
    async with running(app, db_url) as host:
        await host.client.raise_event(iid, "next")
        status = await host.client.wait_for_completion(iid, timeout=20)
    phases.append({(s[0], s[1]) for s in seen})
    everything += seen

    # Each new Host replays what happened before it (is_replaying) and runs the rest live.
    # (Sets, because a worker may run an episode that then loses its commit fence; that run
    # repeats the same steps with the same flags and its results are discarded.)
    assert phases == [
        {("start", False)},
        {("start", True), ("after event", False), ("after timer", False)},
        {("start", True), ("after event", True), ("after timer", True), ("end", False)},
    ]
    committed = {step: (now, made) for step, now, made in status.output}
    assert list(committed) == ["start", "after event", "after timer", "end"]
    for step, replaying, now, made in everything:
        if replaying:
            assert (now, made) == committed[step], f"{step} changed on replay"


async def test_a_cached_instance_is_not_replayed(db_url: str) -> None:
    seen: list[tuple[str, bool, datetime, str]] = []
    app = observing_app(seen)
    async with running(app, db_url) as host:
        status = await run_to_end(host.client, "observed")

    assert status.runtime_status is Status.Completed
    # Every step ran live and nothing was replayed between episodes. (At most one extra replay
    # is tolerated: a duplicate work item read before the last commit; cold replays on every
    # episode would show six.)
    assert {(s[0], s[1]) for s in seen if not s[1]} == {
        ("start", False), ("after activity", False), ("after timer", False), ("end", False)
    }
    assert sum(1 for s in seen if s[1]) <= 3


async def test_new_uuid_differs_between_instances_and_matches_the_azure_algorithm(
    db_url: str,
) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def make_ids(context: df.DurableOrchestrationContext):
        stamp = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"ids": [context.new_uuid(), context.new_uuid()], "stamp": stamp}
        yield  # a generator, though it never waits

    async with running(app, db_url) as host:
        a = await run_to_end(host.client, make_ids, instance_id="uuid-a")
        b = await run_to_end(host.client, make_ids, instance_id="uuid-b")

    namespace = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    expected = [str(uuid.uuid5(namespace, f"uuid-a_{a.output['stamp']}_{n}")) for n in (0, 1)]
    assert a.output["ids"] == expected
    assert set(a.output["ids"]).isdisjoint(b.output["ids"])


@dataclass
class Order:
    item: str
    quantity: int


async def test_input_instance_id_and_typed_input(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def who_am_i(context: df.DurableOrchestrationContext):
        order = context.get_input(Order)
        return {
            "instance_id": context.instance_id,
            "parent": context.parent_instance_id,
            "name": context.function_name,
            "order": [type(order).__name__, order.item, order.quantity],
            "raw": context.get_input(),
        }

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, who_am_i, {"item": "tea", "quantity": 2}, "me-1")
        no_input = await run_to_end(host.client, "who_am_i", None, "me-2")

    assert status.output == {
        "instance_id": "me-1", "parent": None, "name": "who_am_i",
        "order": ["Order", "tea", 2], "raw": {"item": "tea", "quantity": 2},
    }
    # get_input(Order) of None fails: the orchestrator sees None and touches .item.
    assert no_input.runtime_status is Status.Failed
    assert no_input.input_ is None


async def test_custom_status_is_visible_while_running_and_after(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def staged(context: df.DurableOrchestrationContext):
        context.set_custom_status({"stage": "waiting", "progress": 0.5})
        yield context.wait_for_external_event("continue")
        context.set_custom_status(0)  # falsy values are reported too
        try:
            context.set_custom_status({1, 2})
        except df.SerializationError:
            return "done"  # the stored status stays 0
        return "a set was accepted"

    async with running(app, db_url) as host:
        iid = await host.client.start_new(staged)

        async def waiting() -> Any:
            status = await host.client.get_status(iid)
            return status.custom_status

        assert await wait_until(waiting) == {"stage": "waiting", "progress": 0.5}
        await host.client.raise_event(iid, "continue")
        final = await host.client.wait_for_completion(iid, timeout=20)

    assert final.output == "done"
    assert final.custom_status == 0


async def test_current_utc_datetime_is_near_the_wall_clock(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def clock(context: df.DurableOrchestrationContext):
        return context.current_utc_datetime.isoformat()
        yield

    before = datetime.now(UTC)
    async with running(app, db_url) as host:
        status = await run_to_end(host.client, clock)
    after = datetime.now(UTC)

    seen = datetime.fromisoformat(status.output)
    assert seen.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= seen <= after


@pytest.mark.parametrize("yielded", [42, "text", None])
async def test_yielding_something_that_is_not_a_task_fails_clearly(
    db_url: str, yielded: object
) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def wrong(context: df.DurableOrchestrationContext):
        yield yielded

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, wrong)

    assert status.runtime_status is Status.Failed
    assert status.failure_details["errorType"] == "TypeError"
    assert "must yield durable tasks" in status.failure_details["message"]


async def test_a_plain_function_orchestrator_completes_at_once(db_url: str) -> None:
    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def plain(context: df.DurableOrchestrationContext):
        return f"plain {context.get_input()}"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, plain, 1)

    assert status.output == "plain 1"


def test_async_orchestrators_are_rejected_at_registration() -> None:
    app = df.DFApp()
    with pytest.raises(df.InvalidInputError, match="generator"):

        @app.orchestration_trigger(context_name="context")
        async def not_allowed(context: df.DurableOrchestrationContext) -> None:
            return None
