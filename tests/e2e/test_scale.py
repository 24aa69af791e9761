"""Large fan-outs complete, with every activity run and every result in order.

The time of the 10,000-activity fan-out is printed (``pytest -s``) and attached to the test's
report as the ``fan_out_seconds`` property; the bound asserted here only catches a hang or a
quadratic blow-up, benchmarks/ measures speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import durable as df
from tests.e2e.conftest import Status, events_of, history_of, running

FAN_OUT = 10_000


async def test_fan_out_of_ten_thousand_activities(
    db_url: str, record_property: Callable[[str, object], None]
) -> None:
    app = df.DFApp()
    calls: list[int] = []
    lock = threading.Lock()

    @app.activity_trigger(input_name="n")
    def square(n: int) -> int:
        with lock:
            calls.append(n)
        return n * n

    @app.orchestration_trigger(context_name="context")
    def fan_out(context: df.DurableOrchestrationContext):
        count = context.get_input()
        results = yield context.task_all([context.call_activity("square", n)
                                          for n in range(count)])
        return {"count": len(results), "sum": sum(results), "in_order": results == sorted(results)}

    async with running(app, db_url) as host:
        began = time.perf_counter()
        iid = await host.client.start_new(fan_out, "big-fan-out", FAN_OUT)
        status = await host.client.wait_for_completion(iid, timeout=120)
        elapsed = time.perf_counter() - began
        history = await history_of(host.client, iid)

    record_property("fan_out_seconds", round(elapsed, 3))
    print(f"\n{FAN_OUT} activity fan-out completed in {elapsed:.2f}s")
    assert status.runtime_status is Status.Completed
    assert status.output == {
        "count": FAN_OUT, "sum": sum(n * n for n in range(FAN_OUT)), "in_order": True,
    }
    assert sorted(calls) == list(range(FAN_OUT))  # each ran exactly once
    assert len(events_of(history, "TaskCompleted")) == FAN_OUT
    assert elapsed < 60


@pytest.mark.parametrize("width", [200])
async def test_fan_out_of_sub_orchestrations_with_async_activities(
    db_url: str, width: int
) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    async def triple(n: int) -> int:
        return n * 3

    @app.orchestration_trigger(context_name="context")
    def leaf(context: df.DurableOrchestrationContext):
        n = context.get_input()
        parts = yield context.task_all([context.call_activity(triple, n + k) for k in range(5)])
        return sum(parts)

    @app.orchestration_trigger(context_name="context")
    def root(context: df.DurableOrchestrationContext):
        results = yield context.task_all(
            [context.call_sub_orchestrator(leaf, n) for n in range(context.get_input())]
        )
        return sum(results)

    async with running(app, db_url) as host:
        iid = await host.client.start_new(root, client_input=width)
        status = await host.client.wait_for_completion(iid, timeout=60)
        children = await host.client.get_status_all()

    expected = sum(3 * (n + k) for n in range(width) for k in range(5))
    assert status.output == expected
    assert len(children) == width + 1
    assert all(c.runtime_status is Status.Completed for c in children)
