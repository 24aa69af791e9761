"""call_activity, task_all and task_any end to end, through a Host on a SQLite file."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import durable as df
from tests.e2e.conftest import Journal, Status, events_of, history_of, run_to_end, running


async def test_sync_and_async_activities_by_name_and_by_function(db_url: str) -> None:
    app = df.DFApp()
    threads: dict[str, str] = {}

    @app.activity_trigger(input_name="name")
    def greet(name: str) -> str:
        threads["greet"] = threading.current_thread().name
        return f"Hello {name}!"

    @app.activity_trigger(input_name="n")
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        threads["double"] = threading.current_thread().name
        return n * 2

    @app.activity_trigger(input_name="unused")
    def no_argument() -> str:
        return "called without an argument"

    @app.orchestration_trigger(context_name="context")
    def chain(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("greet", context.get_input())
        b = yield context.call_activity(double, 21)  # the decorated function itself
        c = yield context.call_activity(greet, "by object")
        d = yield context.call_activity(no_argument)
        return [a, b, c, d]

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, chain, "Tokyo")

    assert status.runtime_status is Status.Completed
    assert status.output == ["Hello Tokyo!", 42, "Hello by object!", "called without an argument"]
    assert status.input_ == "Tokyo"
    # Plain functions run on worker threads; async def ones on the event loop's thread.
    assert threads["greet"] != threading.main_thread().name
    assert threads["double"] == threading.main_thread().name


async def test_structured_values_round_trip_without_double_encoding(db_url: str) -> None:
    app = df.DFApp()
    seen: list[Any] = []

    @app.activity_trigger(input_name="payload")
    def echo(payload: Any) -> Any:
        seen.append(payload)
        return {"got": payload, "unicode": "ü✓"}

    @app.orchestration_trigger(context_name="context")
    def orch(context: df.DurableOrchestrationContext):
        value = context.get_input()
        echoed = yield context.call_activity("echo", value)
        return echoed

    payload = {"list": [1, 2.5, None, True], "text": "a \"quoted\" string", "nested": {"k": []}}
    async with running(app, db_url) as host:
        status = await run_to_end(host.client, "orch", payload)

    assert seen == [payload]  # the activity got the value itself, not a JSON string of it
    assert status.input_ == payload
    assert status.output == {"got": payload, "unicode": "ü✓"}


async def test_activity_failure_is_a_task_failed_error_the_orchestrator_can_catch(
    db_url: str,
) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="x")
    def explode(x: int) -> int:
        raise KeyError(f"no key {x}")

    @app.orchestration_trigger(context_name="context")
    def careful(context: df.DurableOrchestrationContext):
        try:
            yield context.call_activity("explode", 7)
        except df.TaskFailedError as error:
            return {
                "type": error.error_type,
                "message": error.failure.message,
                "has_traceback": "Traceback" in (error.details or ""),
                "text": str(error),
            }
        return "not reached"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, careful)

    assert status.runtime_status is Status.Completed
    assert status.output["type"] == "KeyError"
    assert status.output["message"] == "'no key 7'"
    assert status.output["has_traceback"] is True
    assert "call_activity('explode')" in status.output["text"]


async def test_task_all_returns_results_in_input_order(db_url: str) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    async def later_for_smaller(n: int) -> int:
        # Smaller inputs finish last, so completion order is the reverse of input order.
        await asyncio.sleep((10 - n) * 0.005)
        return n * n

    @app.orchestration_trigger(context_name="context")
    def fan(context: df.DurableOrchestrationContext):
        tasks = [context.call_activity("later_for_smaller", n) for n in range(10)]
        results = yield context.task_all(tasks)
        empty = yield context.task_all([])
        return {"results": results, "empty": empty}

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, fan)

    assert status.output == {"results": [n * n for n in range(10)], "empty": []}


async def test_task_all_fails_fast_with_the_first_failure(db_url: str, journal: Journal) -> None:
    app = df.DFApp()
    release = asyncio.Event()

    @app.activity_trigger(input_name="n")
    async def step(n: int) -> int:
        if n == 1:
            raise ValueError("step 1 failed")
        if n == 2:
            await release.wait()  # still running when task_all gives up
        journal.write(f"step {n}")
        return n

    @app.orchestration_trigger(context_name="context")
    def fan(context: df.DurableOrchestrationContext):
        tasks = [context.call_activity("step", n) for n in range(3)]
        try:
            yield context.task_all(tasks)
        except df.TaskFailedError as error:
            return {"error": error.failure.message, "slow_done": tasks[2].is_completed}
        return "not reached"

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, fan)
        finished_before_release = journal.lines()
        release.set()

    assert status.output == {"error": "step 1 failed", "slow_done": False}
    assert "step 2" not in finished_before_release


async def test_task_any_returns_the_winning_task_even_if_it_failed(db_url: str) -> None:
    app = df.DFApp()
    gate = asyncio.Event()  # the slow tasks finish only after the orchestration did

    @app.activity_trigger(input_name="slow")
    async def fail(slow: bool) -> None:
        if slow:
            await gate.wait()
        raise RuntimeError(f"failed (slow={slow})")

    @app.activity_trigger(input_name="slow")
    async def answer(slow: bool) -> str:
        if slow:
            await gate.wait()
        return f"answered (slow={slow})"

    @app.orchestration_trigger(context_name="context")
    def race(context: df.DurableOrchestrationContext):
        fast_ok = context.call_activity("answer", False)
        slow_fail = context.call_activity("fail", True)
        winner = yield context.task_any([slow_fail, fast_ok])
        first = {"is_ok": winner is fast_ok, "result": winner.result}

        fast_fail = context.call_activity("fail", False)
        slow_ok = context.call_activity("answer", True)
        winner = yield context.task_any([slow_ok, fast_fail])  # does not raise
        second = {
            "is_fail": winner is fast_fail,
            "faulted": winner.is_faulted,
            "error": str(winner.exception.failure.message),
        }
        return [first, second]

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, race)
        gate.set()

    assert status.output == [
        {"is_ok": True, "result": "answered (slow=False)"},
        {"is_fail": True, "faulted": True, "error": "failed (slow=False)"},
    ]


async def test_tasks_are_scheduled_when_created_not_when_yielded(
    db_url: str, journal: Journal
) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="tag")
    def record(tag: str) -> str:
        journal.write(tag)
        return tag

    @app.orchestration_trigger(context_name="context")
    def fire_and_forget(context: df.DurableOrchestrationContext):
        context.call_activity("record", "never yielded")
        yield context.create_timer(timedelta(milliseconds=100))
        return "done"

    async with running(app, db_url) as host:
        iid = await host.client.start_new(fire_and_forget)
        status = await host.client.wait_for_completion(iid, timeout=20)
        history = await history_of(host.client, iid)

    assert status.output == "done"
    assert journal.lines() == ["never yielded"]
    assert [e["FunctionName"] for e in events_of(history, "TaskCompleted")] == ["record"]


async def test_many_instances_run_concurrently_and_each_gets_its_own_result(db_url: str) -> None:
    app = df.DFApp()

    @app.activity_trigger(input_name="n")
    def square(n: int) -> int:
        return n * n

    @app.orchestration_trigger(context_name="context")
    def one(context: df.DurableOrchestrationContext):
        n = context.get_input()
        a = yield context.call_activity("square", n)
        b = yield context.call_activity("square", a)
        return b

    async with running(app, db_url) as host:
        ids = [await host.client.start_new(one, f"inst-{n}", n) for n in range(50)]
        statuses = await asyncio.gather(
            *(host.client.wait_for_completion(i, timeout=20) for i in ids)
        )

    assert [s.output for s in statuses] == [n**4 for n in range(50)]
    assert [s.instance_id for s in statuses] == ids


class Money:
    """A user class that crosses durable boundaries through to_json/from_json."""

    def __init__(self, amount: int, currency: str) -> None:
        self.amount = amount
        self.currency = currency

    @staticmethod
    def to_json(value: Money) -> dict[str, Any]:
        return {"amount": value.amount, "currency": value.currency}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Money:
        return Money(data["amount"], data["currency"])


async def test_objects_with_to_json_and_from_json_round_trip(db_url: str) -> None:
    app = df.DFApp()
    received: list[Any] = []

    @app.activity_trigger(input_name="price")
    def double(price: Money) -> Money:
        received.append(price)
        return Money(price.amount * 2, price.currency)

    @app.orchestration_trigger(context_name="context")
    def pricing(context: df.DurableOrchestrationContext):
        price = context.get_input()
        doubled = yield context.call_activity("double", price)
        return {"input_type": type(price).__name__, "doubled": doubled}

    async with running(app, db_url) as host:
        status = await run_to_end(host.client, pricing, Money(21, "EUR"))

    assert isinstance(received[0], Money) and received[0].amount == 21
    assert status.output["input_type"] == "Money"
    doubled = status.output["doubled"]
    assert isinstance(doubled, Money)
    assert (doubled.amount, doubled.currency) == (42, "EUR")
    assert isinstance(status.input_, Money)
