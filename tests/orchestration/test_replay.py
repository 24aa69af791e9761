"""The replay engine on small hand-built histories: no storage, no worker, no clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from durable.errors import FailureDetails, FunctionNotFoundError, TaskFailedError
from durable.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    TaskCompleted,
    TaskFailed,
    TimerFired,
    decode_events,
    encode_events,
)
from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    StartSubOrchestration,
)
from durable.orchestration.context import DurableOrchestrationContext
from durable.orchestration.retry import RetryOptions
from durable.orchestration.runtime import OrchestrationRuntime, execute
from durable.status import OrchestrationRuntimeStatus as Status

T0 = 1_700_000_000.0


def started(data: str | None = None, name: str = "orch") -> ExecutionStarted:
    return ExecutionStarted(timestamp=T0, name=name, instance_id="inst", execution_id="exec",
                            input=data)


def done(task_id: int, result: Any) -> TaskCompleted:
    import json

    return TaskCompleted(timestamp=T0, task_scheduled_id=task_id, result=json.dumps(result))


def failed(task_id: int, message: str = "boom") -> TaskFailed:
    return TaskFailed(timestamp=T0, task_scheduled_id=task_id,
                      failure=FailureDetails("ValueError", message, "trace"))


class Driver:
    """Runs episodes one after another, keeping the full history, like a worker does."""

    def __init__(self, orchestrator: Any, **lookups: Any) -> None:
        self.orchestrator = orchestrator
        self.lookups = lookups
        self.runtime = OrchestrationRuntime(orchestrator, **lookups)
        self.history: list[HistoryEvent] = []
        self.now = T0

    def step(self, *events: HistoryEvent, advance: float = 1.0) -> Decision:
        self.now += advance
        decision = self.runtime.run_episode(list(events), self.now)
        self.history.extend(decision.history)
        return decision

    def cold(self, *events: HistoryEvent, advance: float = 1.0) -> Decision:
        """The same episode computed by a fresh runtime replaying the stored history."""
        stored = decode_events(encode_events(self.history))
        return execute(self.orchestrator, stored, list(events), self.now + advance,
                       **self.lookups)


def activities(decision: Decision) -> list[tuple[int, str, str | None]]:
    return [(a.task_id, a.name, a.input) for a in decision.actions
            if isinstance(a, ScheduleActivity)]


# -- sequencing and replay ------------------------------------------------------------------


def chain(context: DurableOrchestrationContext) -> Any:
    first = yield context.call_activity("hello", context.get_input())
    second = yield context.call_activity("hello", first)
    return [first, second]


def test_chaining_schedules_one_step_per_episode_and_completes() -> None:
    driver = Driver(chain)
    d1 = driver.step(started('"a"'))
    assert (d1.status, activities(d1)) == (Status.Running, [(0, "hello", '"a"')])
    d2 = driver.step(done(0, "b"))
    assert activities(d2) == [(1, "hello", '"b"')]
    d3 = driver.step(done(1, "c"))
    assert (d3.status, d3.output, d3.actions) == (Status.Completed, '["b","c"]', [])


def test_a_cold_replay_decides_exactly_what_the_cached_runtime_decides() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))
    cold = driver.cold(done(0, "b"))
    warm = driver.step(done(0, "b"))
    assert activities(cold) == activities(warm)
    assert [type(e) for e in cold.history] == [type(e) for e in warm.history]


def test_a_duplicate_completion_is_not_recorded_twice() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))
    driver.step(done(0, "b"))
    repeat = driver.step(done(0, "b"))
    assert [type(e).__name__ for e in repeat.history] == ["OrchestratorStarted"]
    assert repeat.actions == []


def test_is_replaying_is_true_only_while_re_running_old_history() -> None:
    seen: list[bool] = []

    def orchestrator(context: DurableOrchestrationContext) -> Any:
        seen.append(context.is_replaying)
        yield context.call_activity("a")
        seen.append(context.is_replaying)
        yield context.call_activity("b")
        seen.append(context.is_replaying)

    driver = Driver(orchestrator)
    driver.step(started())
    driver.step(done(0, None))
    assert seen == [False, False]
    seen.clear()
    driver.cold(done(1, None))
    assert seen == [True, True, False]


def test_time_and_uuids_are_replay_safe() -> None:
    observed: list[tuple[Any, str]] = []

    def orchestrator(context: DurableOrchestrationContext) -> Any:
        observed.append((context.current_utc_datetime, context.new_uuid()))
        yield context.call_activity("a")
        observed.append((context.current_utc_datetime, context.new_uuid()))
        return None

    driver = Driver(orchestrator)
    driver.step(started(), advance=5)
    first_run = list(observed)
    observed.clear()
    driver.cold(done(0, None), advance=7)
    assert observed[0] == first_run[0]
    assert observed[1][0].timestamp() == pytest.approx(T0 + 12)
    assert first_run[0][0].timestamp() == pytest.approx(T0 + 5)
    assert observed[0][1] != observed[1][1]


# -- non-determinism ------------------------------------------------------------------------


def test_a_renamed_activity_fails_the_instance_naming_both_calls() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))

    def changed(context: DurableOrchestrationContext) -> Any:
        yield context.call_activity("goodbye", context.get_input())

    decision = execute(changed, driver.history, [done(0, "b")], T0 + 9)
    assert decision.status is Status.Failed
    assert decision.failure is not None
    assert decision.failure.error_type == "durable.errors.NonDeterminismError"
    assert "call_activity('hello')" in decision.failure.message
    assert "call_activity('goodbye')" in decision.failure.message


def test_a_timer_where_history_has_an_activity_is_detected() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))

    def changed(context: DurableOrchestrationContext) -> Any:
        yield context.create_timer(timedelta(seconds=1))

    decision = execute(changed, driver.history, [], T0 + 9)
    assert decision.status is Status.Failed
    assert "create_timer" in decision.failure.message  # type: ignore[union-attr]


def test_a_removed_call_is_detected() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))

    def changed(context: DurableOrchestrationContext) -> Any:
        return "nothing"
        yield  # pragma: no cover - makes this a generator

    decision = execute(changed, driver.history, [], T0 + 9)
    assert decision.status is Status.Failed
    assert "call_activity('hello')" in decision.failure.message  # type: ignore[union-attr]


# -- composite tasks ------------------------------------------------------------------------


def test_task_all_keeps_order_and_fails_fast() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        try:
            results = yield context.task_all([context.call_activity("w", i) for i in range(3)])
        except TaskFailedError as error:
            return f"failed: {error.failure.message}"
        return results

    driver = Driver(orchestrator)
    assert [a[0] for a in activities(driver.step(started()))] == [0, 1, 2]
    assert driver.step(done(2, "c"), done(0, "a")).status is Status.Running
    assert driver.step(done(1, "b")).output == '["a","b","c"]'

    driver = Driver(orchestrator)
    driver.step(started())
    decision = driver.step(failed(1, "second broke"))
    assert (decision.status, decision.output) == (Status.Completed, '"failed: second broke"')


def test_task_all_of_nothing_is_an_empty_list() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        return (yield context.task_all([]))

    assert Driver(orchestrator).step(started()).output == "[]"


def test_task_any_returns_the_first_task_even_if_it_failed() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        a, b = context.call_activity("a"), context.call_activity("b")
        winner = yield context.task_any([a, b])
        return [winner is b, winner.is_faulted]

    driver = Driver(orchestrator)
    driver.step(started())
    assert driver.step(failed(1)).output == "[true,true]"


# -- timers and events ----------------------------------------------------------------------


def test_human_interaction_event_beats_the_timeout_and_cancels_it() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        timeout = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
        approval = context.wait_for_external_event("Approval")
        winner = yield context.task_any([approval, timeout])
        if winner is approval:
            timeout.cancel()
            return approval.result
        return "timed out"

    driver = Driver(orchestrator)
    first = driver.step(started())
    [timer] = first.actions
    assert isinstance(timer, ScheduleTimer) and timer.fire_at == pytest.approx(T0 + 1 + 3600)
    decision = driver.step(EventRaised(timestamp=T0, name="approval", input='"yes"'))
    assert (decision.status, decision.output) == (Status.Completed, '"yes"')


def test_a_timer_fires_its_task() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        yield context.create_timer(timedelta(seconds=30))
        return "woke"

    driver = Driver(orchestrator)
    [timer] = driver.step(started()).actions
    assert isinstance(timer, ScheduleTimer)
    fired = TimerFired(timestamp=T0, timer_id=timer.timer_id, fire_at=timer.fire_at)
    assert driver.step(fired).output == '"woke"'


def test_events_raised_before_the_wait_are_buffered_in_order_per_name() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        yield context.call_activity("slow")
        first = yield context.wait_for_external_event("Item")
        other = yield context.wait_for_external_event("Other")
        second = yield context.wait_for_external_event("ITEM")
        return [first, second, other]

    driver = Driver(orchestrator)
    driver.step(started())
    driver.step(EventRaised(name="item", input="1"), EventRaised(name="Other", input='"o"'),
                EventRaised(name="Item", input="2"))
    assert driver.step(done(0, None)).output == '[1,2,"o"]'


def test_several_waiters_on_one_name_are_served_first_come_first_served() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        waits = [context.wait_for_external_event("tick") for _ in range(3)]
        return (yield context.task_all(waits))

    driver = Driver(orchestrator)
    driver.step(started())
    decision = driver.step(*(EventRaised(name="tick", input=str(i)) for i in range(3)))
    assert decision.output == "[0,1,2]"


# -- retries --------------------------------------------------------------------------------


def test_retry_waits_with_backoff_then_succeeds() -> None:
    options = RetryOptions(1000, 4, backoff_coefficient=2, max_retry_interval_in_milliseconds=3000)

    def orchestrator(context: DurableOrchestrationContext) -> Any:
        return (yield context.call_activity_with_retry("flaky", options, "x"))

    driver = Driver(orchestrator)
    assert activities(driver.step(started())) == [(0, "flaky", '"x"')]
    delays = []
    task_id = 0
    for _ in range(3):
        decision = driver.step(failed(task_id))
        [timer] = decision.actions
        assert isinstance(timer, ScheduleTimer)
        delays.append(round(timer.fire_at - driver.now, 3))
        decision = driver.step(TimerFired(timer_id=timer.timer_id, fire_at=timer.fire_at))
        [(task_id, _, _)] = activities(decision)
    assert delays == [1.0, 2.0, 3.0]  # 1 s, 2 s, then capped at 3 s
    assert driver.step(done(task_id, "ok")).output == '"ok"'


def test_retry_gives_up_after_the_last_attempt_with_the_last_error() -> None:
    options = RetryOptions(10, 2)

    def orchestrator(context: DurableOrchestrationContext) -> Any:
        try:
            yield context.call_activity_with_retry("flaky", options)
        except TaskFailedError as error:
            return error.failure.message
        return "unreachable"

    driver = Driver(orchestrator)
    driver.step(started())
    [timer] = driver.step(failed(0, "first")).actions
    assert isinstance(timer, ScheduleTimer)
    driver.step(TimerFired(timer_id=timer.timer_id, fire_at=timer.fire_at))
    decision = driver.step(failed(2, "second"))
    assert (decision.status, decision.output) == (Status.Completed, '"second"')


def test_retry_respects_the_handle_predicate_and_the_timeout() -> None:
    never = RetryOptions(10, 5, handle=lambda error: False)
    short = RetryOptions(10, 5, retry_timeout_in_milliseconds=1500)

    def orchestrator(context: DurableOrchestrationContext) -> Any:
        yield context.call_activity_with_retry("flaky", short if context.get_input() else never)

    driver = Driver(orchestrator)
    driver.step(started("false"))
    assert driver.step(failed(0)).status is Status.Failed

    driver = Driver(orchestrator)
    driver.step(started("true"))
    [timer] = driver.step(failed(0), advance=1.0).actions  # 1 s elapsed: retry
    assert isinstance(timer, ScheduleTimer)
    driver.step(TimerFired(timer_id=timer.timer_id, fire_at=timer.fire_at), advance=0.1)
    assert driver.step(failed(2), advance=1.0).status is Status.Failed  # 2.1 s > 1.5 s


# -- lifecycle ------------------------------------------------------------------------------


def test_continue_as_new_restarts_and_can_carry_unconsumed_events() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        count = context.get_input()
        yield context.call_activity("a")
        context.continue_as_new(count + 1, preserve_unprocessed_events=count == 1)

    keep = Driver(orchestrator)
    keep.step(started("1"))
    decision = keep.step(EventRaised(name="e", input="7"), done(0, None),
                         EventRaised(name="late", input="8"))
    assert decision.status is Status.ContinuedAsNew
    assert decision.continue_as_new is not None and decision.continue_as_new.input == "2"
    assert [(e.name, e.input) for e in decision.continue_as_new.carried_events] == [
        ("e", "7"), ("late", "8")]

    drop = Driver(orchestrator)
    drop.step(started("2"))
    decision = drop.step(EventRaised(name="e", input="7"), done(0, None))
    assert decision.continue_as_new is not None
    assert decision.continue_as_new.carried_events == []


def test_terminate_ends_the_instance_with_the_reason() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))
    decision = driver.step(ExecutionTerminated(reason="no longer needed"))
    assert (decision.status, decision.output) == (Status.Terminated, '"no longer needed"')


def test_suspended_instances_hold_events_until_resumed() -> None:
    driver = Driver(chain)
    driver.step(started('"a"'))
    held = driver.step(ExecutionSuspended(reason="pause"), done(0, "b"))
    assert (held.status, held.actions) == (Status.Suspended, [])
    resumed = driver.step(ExecutionResumed(reason="go"))
    assert (resumed.status, activities(resumed)) == (Status.Running, [(1, "hello", '"b"')])
    assert activities(driver.cold(done(1, "c"))) == []
    assert driver.cold(done(1, "c")).output == '["b","c"]'


# -- failures and bad input -----------------------------------------------------------------


def test_an_unhandled_exception_fails_with_details() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        yield context.call_activity("a")
        raise KeyError("missing thing")

    driver = Driver(orchestrator)
    driver.step(started())
    decision = driver.step(done(0, None))
    assert decision.status is Status.Failed
    assert decision.failure is not None
    assert (decision.failure.error_type, decision.failure.message) == ("KeyError",
                                                                       "'missing thing'")
    assert "raise KeyError" in (decision.failure.details or "")
    assert "Orchestrator function 'orch' failed" in (decision.output or "")


def test_activity_failures_are_typed_exceptions_in_the_orchestrator() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        try:
            yield context.call_activity("a")
        except TaskFailedError as error:
            return [error.error_type, error.failure.message, error.details]
        return None

    driver = Driver(orchestrator)
    driver.step(started())
    assert driver.step(failed(0, "bad")).output == '["ValueError","bad","trace"]'


def test_yielding_something_that_is_not_a_task_fails_clearly() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        yield 42

    decision = Driver(orchestrator).step(started())
    assert decision.status is Status.Failed
    assert "must yield durable tasks" in decision.failure.message  # type: ignore[union-attr]


def test_async_orchestrators_are_rejected() -> None:
    async def orchestrator(context: DurableOrchestrationContext) -> Any:
        return 1

    decision = Driver(orchestrator).step(started())
    assert decision.status is Status.Failed
    assert "generators" in decision.failure.message  # type: ignore[union-attr]


def test_unknown_activities_raise_at_the_call_site() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        try:
            context.call_activity("nope")
        except FunctionNotFoundError as error:
            return str(error)
        return None
        yield  # pragma: no cover

    decision = Driver(orchestrator, resolve_activity=lambda name: None).step(started())
    assert decision.output == '"The activity function \'nope\' doesn\'t exist."'


def test_a_non_serializable_output_fails_the_instance() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        return object()
        yield  # pragma: no cover

    decision = Driver(orchestrator).step(started())
    assert decision.status is Status.Failed
    assert "not JSON-serializable" in decision.failure.message  # type: ignore[union-attr]


def test_plain_functions_work_as_orchestrators() -> None:
    decision = Driver(lambda context: context.get_input() * 2).step(started("21"))
    assert decision.output == "42"


def test_sub_orchestrations_get_a_stable_default_instance_id() -> None:
    def orchestrator(context: DurableOrchestrationContext) -> Any:
        yield context.call_activity("first")
        return (yield context.call_sub_orchestrator("child", {"k": 1}))

    driver = Driver(orchestrator)
    driver.step(started())
    [child] = driver.step(done(0, None)).actions
    assert isinstance(child, StartSubOrchestration)
    assert (child.instance_id, child.name, child.input) == ("exec:1", "child", '{"k":1}')
