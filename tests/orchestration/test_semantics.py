"""Replay semantics users rely on, pinned on hand-built histories (no storage, no clock).

- work created in the episode that finishes the orchestration is still sent;
- an event goes to a live waiter, never to one whose ``task_any`` another task already won;
- ``wait_for_external_event(name, timeout=...)``;
- function names match ignoring case;
- what the engine does with history it cannot trust (undecodable payloads, an outcome recorded
  before its task was scheduled, late scheduling events).

Every multi-episode case is checked twice: with the runtime kept between episodes (a worker's
cache) and by a cold replay of the stored history (``Driver.cold``), which must agree.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durable.errors import (
    EventTimeoutError,
    InvalidInputError,
)
from durable.history import (
    EventRaised,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.orchestration.actions import Decision, ScheduleTimer, StartSubOrchestration
from durable.orchestration.context import DurableOrchestrationContext
from durable.orchestration.runtime import OrchestrationRuntime, execute
from durable.status import OrchestrationRuntimeStatus as Status
from tests.orchestration.test_replay import T0, Driver, activities, done, started

Context = DurableOrchestrationContext


def raised(name: str, value: Any) -> EventRaised:
    return EventRaised(timestamp=T0, name=name, input=json.dumps(value))


def fired(timer_id: int, fire_at: float) -> TimerFired:
    return TimerFired(timestamp=fire_at, timer_id=timer_id, fire_at=fire_at)


def timers(decision: Decision) -> list[ScheduleTimer]:
    return [a for a in decision.actions if isinstance(a, ScheduleTimer)]


def both_ways(driver: Driver, *events: HistoryEvent) -> Decision:
    """Run an episode on the cached runtime and check a cold replay decides the same."""
    cold = driver.cold(*events)
    warm = driver.step(*events)
    assert (warm.status, warm.output, activities(warm)) == (
        cold.status, cold.output, activities(cold)
    )
    return warm


# -- work created in the finishing episode ------------------------------------------------------


def race_to_london(context: Context):
    a = context.call_activity("hello", "Tokyo")
    b = context.call_activity("hello", "Seattle")
    first = yield context.task_any([a, b])
    if first is a:
        london = context.call_activity("hello", "London")
        winner = yield context.task_any([b, london])
        return winner.result
    return first.result


def test_work_created_when_both_completions_reach_one_episode_is_sent() -> None:
    driver = Driver(race_to_london)
    assert activities(driver.step(started())) == [(0, "hello", '"Tokyo"'), (1, "hello",
                                                                           '"Seattle"')]
    decision = both_ways(driver, done(0, "Hello Tokyo!"), done(1, "Hello Seattle!"))
    assert decision.status is Status.Completed
    assert decision.output == '"Hello Seattle!"'
    assert activities(decision) == [(2, "hello", '"London"')]
    # History records the scheduling before the completion, so a replay finds it again.
    kinds = [type(e).__name__ for e in decision.history]
    assert kinds.index("TaskScheduled") < kinds.index("ExecutionCompleted")
    replayed = OrchestrationRuntime(race_to_london)
    replayed.replay(driver.history)
    assert replayed.is_done and replayed._failure is None


def test_work_created_when_the_completions_come_in_two_episodes_is_sent() -> None:
    driver = Driver(race_to_london)
    driver.step(started())
    decision = both_ways(driver, done(0, "Hello Tokyo!"))
    assert decision.status is Status.Running
    assert activities(decision) == [(2, "hello", '"London"')]
    decision = both_ways(driver, done(1, "Hello Seattle!"))
    assert decision.status is Status.Completed and decision.output == '"Hello Seattle!"'


def test_an_activity_created_just_before_returning_is_sent() -> None:
    def last_words(context: Context):
        yield context.call_activity("hello", "first")
        context.call_activity("hello", "last-words")
        return "done"

    driver = Driver(last_words)
    driver.step(started())
    decision = both_ways(driver, done(0, "Hello first!"))
    assert decision.status is Status.Completed
    assert activities(decision) == [(1, "hello", '"last-words"')]


def test_a_failing_orchestrator_still_sends_what_it_created_but_timers_are_not_sent() -> None:
    def cleanup_then_fail(context: Context):
        yield context.call_activity("work")
        context.call_activity("cleanup")
        context.create_timer(timedelta(days=1))
        context.call_sub_orchestrator("notify", instance_id="child-1")
        raise ValueError("nope")

    driver = Driver(cleanup_then_fail)
    driver.step(started())
    decision = driver.step(done(0, None))
    assert decision.status is Status.Failed
    assert activities(decision) == [(1, "cleanup", "null")]
    assert [a.instance_id for a in decision.actions if isinstance(a, StartSubOrchestration)] == [
        "child-1"]
    assert timers(decision) == []  # its firing would be discarded: recorded, not sent
    assert any(isinstance(e, TimerCreated) for e in decision.history)


def test_a_terminated_orchestration_sends_nothing_new() -> None:
    from durable.history import ExecutionTerminated

    def busy(context: Context):
        yield context.call_activity("a")
        yield context.call_activity("b")

    driver = Driver(busy)
    driver.step(started())
    decision = driver.step(done(0, 1), ExecutionTerminated(timestamp=T0, reason="stop"))
    assert decision.status is Status.Terminated
    assert decision.actions == []


def test_work_created_before_continue_as_new_is_sent() -> None:
    def eternal(context: Context):
        context.call_activity("side-effect", context.get_input())
        context.continue_as_new(context.get_input() + 1)
        context.continue_as_new(100)  # ignored: the first call decides, as in Azure
        return None
        yield  # a generator

    decision = execute(eternal, [], [started("1")], T0)
    assert decision.continue_as_new is not None
    assert decision.continue_as_new.input == "2"
    assert activities(decision) == [(0, "side-effect", "1")]


def test_history_of_work_after_the_return_point_must_match_the_code() -> None:
    def returns_early(context: Context):
        yield context.call_activity("hello", "first")
        return "done"

    def last_words(context: Context):
        yield context.call_activity("hello", "first")
        context.call_activity("hello", "last-words")
        return "done"

    driver = Driver(last_words)
    driver.step(started())
    driver.step(done(0, "ok"))
    # The code that created the late work replays its history cleanly ...
    same = OrchestrationRuntime(last_words)
    same.replay(driver.history)
    assert same._failure is None
    # ... code that no longer creates it is told so, naming the call.
    changed = OrchestrationRuntime(returns_early)
    changed.replay(driver.history)
    assert changed._failure is not None
    assert "call_activity('hello') after the point where the code now returns" in (
        changed._failure.message)


# -- events and abandoned waiters ---------------------------------------------------------------


def reminder_loop(context: Context):
    """The common reminder loop: a fresh wait and a fresh timer each round."""
    rounds = 0
    while True:
        approval = context.wait_for_external_event("approve")
        timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
        winner = yield context.task_any([approval, timer])
        if winner is approval:
            timer.cancel()
            return {"approved": approval.result, "reminders": rounds}
        rounds += 1


def test_an_event_after_several_timeouts_reaches_the_live_waiter() -> None:
    driver = Driver(reminder_loop)
    decision = driver.step(started())
    for _ in range(3):
        [timer] = timers(decision)
        decision = both_ways(driver, fired(timer.timer_id, timer.fire_at))
        assert decision.status is Status.Running
    decision = both_ways(driver, raised("approve", "yes"))
    assert decision.status is Status.Completed
    assert json.loads(decision.output or "") == {"approved": "yes", "reminders": 3}


def test_abandoned_waiters_do_not_pile_up_in_a_long_reminder_loop() -> None:
    driver = Driver(reminder_loop)
    decision = driver.step(started())
    for _ in range(200):
        [timer] = timers(decision)
        decision = driver.step(fired(timer.timer_id, timer.fire_at))
    state = driver.runtime.state
    assert state is not None and state.events.waiting("approve") == 1


def test_an_event_between_rounds_is_buffered_for_the_next_waiter() -> None:
    def nagging(context: Context):
        while True:
            approval = context.wait_for_external_event("approve")
            timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
            winner = yield context.task_any([approval, timer])
            if winner is approval:
                return approval.result
            yield context.call_activity("send_reminder")

    driver = Driver(nagging)
    [timer] = timers(driver.step(started()))
    decision = both_ways(driver, fired(timer.timer_id, timer.fire_at))
    [(reminder_id, _, _)] = activities(decision)
    # The event arrives while the reminder activity runs: no live waiter, so it is buffered
    # (not swallowed by the timed-out one) and the next round's wait takes it at once.
    decision = both_ways(driver, raised("approve", "late yes"))
    assert decision.status is Status.Running
    decision = both_ways(driver, done(reminder_id, None))
    assert decision.status is Status.Completed and decision.output == '"late yes"'


def test_a_waiter_reused_across_rounds_stays_live() -> None:
    def same_waiter(context: Context):
        approval = context.wait_for_external_event("approve")
        while True:
            timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
            winner = yield context.task_any([approval, timer])
            if winner is approval:
                return approval.result
            yield context.call_activity("send_reminder")

    driver = Driver(same_waiter)
    [timer] = timers(driver.step(started()))
    decision = both_ways(driver, fired(timer.timer_id, timer.fire_at))
    [(reminder_id, _, _)] = activities(decision)
    both_ways(driver, raised("approve", "yes"))  # abandoned for now: buffered
    decision = both_ways(driver, done(reminder_id, None))  # the waiter is yielded again
    assert decision.status is Status.Completed and decision.output == '"yes"'


def test_waiters_that_are_all_live_are_served_first_in_first_out() -> None:
    def two_waiters(context: Context):
        first = context.wait_for_external_event("x")
        second = context.wait_for_external_event("X")
        return (yield context.task_all([first, second]))

    driver = Driver(two_waiters)
    driver.step(started())
    both_ways(driver, raised("x", 1))
    decision = both_ways(driver, raised("x", 2))
    assert decision.output == "[1,2]"


def test_wait_with_a_timeout_returns_the_event_and_cancels_the_timer() -> None:
    def approval(context: Context):
        try:
            return (yield context.wait_for_external_event("approve", timeout=timedelta(hours=1)))
        except EventTimeoutError as error:
            return f"timed out: {error}"

    driver = Driver(approval)
    decision = driver.step(started())
    [timer] = timers(decision)
    assert timer.fire_at == driver.now + 3600
    decision = both_ways(driver, raised("approve", "ok"))
    assert decision.output == '"ok"'


def test_wait_with_a_timeout_fails_when_the_timer_fires_and_cancels_the_waiter() -> None:
    def approval(context: Context):
        try:
            yield context.wait_for_external_event("approve", timeout=30)
        except EventTimeoutError as error:
            late = yield context.wait_for_external_event("approve")
            return [str(error), late]

    driver = Driver(approval)
    [timer] = timers(driver.step(started()))
    decision = both_ways(driver, fired(timer.timer_id, timer.fire_at))
    assert decision.status is Status.Running
    decision = both_ways(driver, raised("approve", "after"))
    assert json.loads(decision.output or "") == [
        "wait_for_external_event('approve') timed out after 30 seconds.", "after"]


def test_a_buffered_event_satisfies_a_timed_wait_without_a_timer() -> None:
    def approval(context: Context):
        yield context.call_activity("prepare")
        return (yield context.wait_for_external_event("approve", timeout=5))

    driver = Driver(approval)
    driver.step(started())
    driver.step(raised("approve", "early"))
    decision = both_ways(driver, done(0, None))
    assert decision.output == '"early"' and timers(decision) == []


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("inf"), "5", True])
def test_bad_timeouts_are_refused_at_the_call(timeout: Any) -> None:
    def approval(context: Context):
        yield context.wait_for_external_event("approve", timeout=timeout)

    decision = execute(approval, [], [started()], T0)
    assert decision.status is Status.Failed
    assert decision.failure is not None and decision.failure.error_type.endswith(
        "InvalidInputError")


# -- names ignore case ----------------------------------------------------------------------------


def test_history_in_the_registered_spelling_replays_code_in_another_case() -> None:
    def shouty(context: Context):
        return (yield context.call_activity("HELLO", "x"))

    resolve = {"hello": "hello"}.get
    decision = execute(shouty, [], [started()], T0, resolve_activity=lambda n: resolve(n.lower()))
    assert activities(decision) == [(0, "hello", '"x"')]  # the registered spelling
    history = [OrchestratorStarted(timestamp=T0), started(),
               TaskScheduled(timestamp=T0, event_id=0, name="hello", input='"x"')]
    # Even without a resolver (pure replay), a case-only difference is not non-determinism.
    decision = execute(shouty, history, [done(0, "hi")], T0 + 1)
    assert decision.status is Status.Completed and decision.output == '"hi"'


def test_calling_an_orchestrator_as_an_activity_is_refused_at_the_call() -> None:
    import durable as df

    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def child(context: Context):
        return 1

    @app.activity_trigger(input_name="x")
    def act(x: Any) -> Any:
        return x

    def wrong_kind(context: Context):
        errors = []
        for call in (lambda: context.call_activity(child),
                     lambda: context.call_sub_orchestrator(act),
                     lambda: context.call_activity("child")):
            try:
                call()
            except InvalidInputError as error:
                errors.append(str(error))
        return errors
        yield  # a generator

    registry = app.registry()
    decision = execute(wrong_kind, [], [started()], T0,
                       resolve_activity=registry.resolve_activity,
                       resolve_orchestrator=registry.resolve_orchestrator)
    assert json.loads(decision.output or "") == [
        "'child' is an orchestrator function, not an activity; use call_sub_orchestrator.",
        "'act' is an activity function, not an orchestrator; use call_activity.",
        "The activity function 'child' doesn't exist. 'child' is an orchestrator: use "
        "call_sub_orchestrator.",
    ]
    assert decision.actions == []


# -- history the engine cannot trust --------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "what"),
    [
        (TaskCompleted(timestamp=T0, task_scheduled_id=0, result="{not json"),
         "result of call_activity('a') (task #0)"),
        (EventRaised(timestamp=T0, name="go", input="[1,"), "payload of event 'go'"),
    ],
)
def test_an_undecodable_payload_fails_the_instance_with_what_and_where(
    event: HistoryEvent, what: str
) -> None:
    def waits(context: Context):
        first = context.call_activity("a")
        go = context.wait_for_external_event("go")
        yield context.task_all([first, go])
        context.call_activity("never-sent")

    driver = Driver(waits)
    driver.step(started())
    decision = driver.step(event)
    assert decision.status is Status.Failed
    assert decision.failure is not None
    assert decision.failure.error_type == "durable.errors.DeserializationError"
    assert what in decision.failure.message
    assert decision.actions == []
    # The stored history replayed cold fails the same way, instead of raising.
    assert execute(waits, driver.history, [], T0 + 10).status is Status.Failed


def test_an_undecodable_input_fails_the_instance_clearly() -> None:
    def reads_input(context: Context):
        return context.get_input()

    decision = execute(reads_input, [], [started("{oops")], T0)
    assert decision.status is Status.Failed
    assert decision.failure is not None
    assert "orchestration input cannot be decoded" in decision.failure.message


def test_an_outcome_recorded_before_its_scheduling_fails_the_replay() -> None:
    def one_step(context: Context):
        return (yield context.call_activity("a"))

    history = [OrchestratorStarted(timestamp=T0), started(), done(0, "x")]
    runtime = OrchestrationRuntime(one_step)
    runtime.replay(history)
    decision = runtime.run_episode([], T0 + 1)
    assert decision.status is Status.Failed
    assert "outcome of task #0 before it was scheduled" in (decision.failure.message
                                                             if decision.failure else "")
    assert decision.actions == []  # not scheduled a second time


def test_a_new_outcome_for_a_task_not_yet_recorded_is_dropped_not_doubled() -> None:
    def one_step(context: Context):
        first = yield context.call_activity("a")
        return first

    runtime = OrchestrationRuntime(one_step)
    # A stray completion arrives in the very episode that schedules task 0.
    decision = runtime.run_episode([started(), done(0, "stray")], T0)
    assert decision.status is Status.Running
    assert activities(decision) == [(0, "a", "null")]
    assert not any(isinstance(e, TaskCompleted) for e in decision.history)


def test_custom_status_mutated_into_something_unserializable_fails_clearly() -> None:
    def mutates(context: Context):
        status: dict[str, Any] = {"step": 1}
        context.set_custom_status(status)
        status["bad"] = object()
        yield context.call_activity("a")

    decision = execute(mutates, [], [started()], T0)
    assert decision.status is Status.Failed
    assert decision.failure is not None and "custom status" in decision.failure.message


# -- small API truths -----------------------------------------------------------------------------


def test_new_guid_uses_the_azure_sdk_algorithm() -> None:
    captured: list[Any] = []

    def guids(context: Context):
        captured.append((context.new_guid(), context.new_uuid(), context.current_utc_datetime))
        return None

    execute(guids, [], [started()], T0)
    [(guid, second, now)] = captured
    assert guid == uuid.uuid5(uuid.NAMESPACE_URL, f"inst_{now}_0")
    assert str(now).endswith("+00:00") and now == datetime.fromtimestamp(T0, UTC)
    assert second != str(guid)  # the counter is shared
