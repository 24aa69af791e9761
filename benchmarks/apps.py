"""The orchestrators and activities every benchmark workload uses, in one ``DFApp``.

The module is importable by the benchmark processes and loadable by ``durable worker
benchmarks/apps.py:app`` (W8 runs separate worker processes on PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import durable as df

app = df.DFApp()

# Activity timestamps recorded in this process (W7 per-step timing; W5 run counting).
MARKS: list[tuple[int, float]] = []
RUNS: list[Any] = []

Orchestration = Generator[Any, Any, Any]


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext) -> Orchestration:
    """W1/W4/W8: three sequential activities (the DBOS ``hello_seq`` shape)."""
    a = yield context.call_activity("say_hello", "Tokyo")
    b = yield context.call_activity("say_hello", "Seattle")
    c = yield context.call_activity("say_hello", "London")
    return [a, b, c]


@app.orchestration_trigger(context_name="context")
def hello_cities5(context: df.DurableOrchestrationContext) -> Orchestration:
    """W2: Netherite's HelloCities5, five sequential activities."""
    out = []
    for city in ("Tokyo", "Seattle", "London", "Cairo", "Lima"):
        out.append((yield context.call_activity("say_hello", city)))
    return out


@app.activity_trigger(input_name="value")
def identity(value: int) -> int:
    return value


@app.orchestration_trigger(context_name="context")
def fan_out_sum(context: df.DurableOrchestrationContext) -> Orchestration:
    """W3: schedule ``n`` activities at once, wait for all, sum the results."""
    n = context.get_input()
    results = yield context.task_all([context.call_activity("identity", i) for i in range(n)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def wait_for_go(context: df.DurableOrchestrationContext) -> Orchestration:
    """W6: wait for the external event ``go`` and return its payload."""
    value = yield context.wait_for_external_event("go")
    return value


@app.activity_trigger(input_name="tag")
def count_run(tag: Any) -> Any:
    RUNS.append(tag)
    return tag


@app.orchestration_trigger(context_name="context")
def singleton(context: df.DurableOrchestrationContext) -> Orchestration:
    """W5: stays Running until ``release`` arrives, then records one run of its input."""
    yield context.wait_for_external_event("release")
    result = yield context.call_activity("count_run", context.get_input())
    return result


@app.activity_trigger(input_name="step")
def mark_step(step: int) -> int:
    MARKS.append((step, time.perf_counter()))
    return step


@app.orchestration_trigger(context_name="context")
def long_chain(context: df.DurableOrchestrationContext) -> Orchestration:
    """W7: ``n`` sequential activities in one instance."""
    n = context.get_input()
    last = -1
    for i in range(n):
        last = yield context.call_activity("mark_step", i)
    return last


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:
    """W9: a counter entity. ``add`` returns the new value (so every call gets a distinct
    one, which W9 checks), ``get`` the current value."""
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
        context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def call_counter(context: df.DurableOrchestrationContext) -> Orchestration:
    """W9(c): ``calls`` sequential ``call_entity(add, 1)`` on one counter; the results."""
    key, calls = context.get_input()
    counter = df.EntityId("Counter", key)
    results = []
    for _ in range(calls):
        results.append((yield context.call_entity(counter, "add", 1)))
    return results
