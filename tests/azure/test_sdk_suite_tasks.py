"""The Azure SDK's orchestrator suites, ported (continued): fan-out/fan-in, task_any,
external events, create_timer, the is_replaying flag, continue_as_new, sub-orchestrators.

See test_sdk_suite.py for how the scenarios are driven and checked. Each test's docstring names
the SDK test (of the SDK file named in the section heading) it mirrors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import pytest

from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    StartSubOrchestration,
)
from durable.status import OrchestrationRuntimeStatus as Status
from tests.azure.driver import sdk_input
from tests.azure.sdk_suite import SuiteDriver, activity_error, atomic, top_level

CITIES = ["Tokyo", "Seattle", "London"]
DEADLINE = datetime(2020, 7, 23, 21, 56, 54, 936700, tzinfo=UTC)  # the SDK suite's moment


@pytest.fixture(params=[True, False], ids=["session", "replay"])
def live(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def output(decision: Decision) -> Any:
    return json.loads(decision.output or "null")


def task_ids(decision: Decision) -> list[int | None]:
    return [getattr(a, "task_id", getattr(a, "timer_id", None)) for a in decision.actions]


# -- test_fan_out_fan_in.py ---------------------------------------------------------------------


def fan_out(context: df.DurableOrchestrationContext):
    count = yield context.call_activity("GetActivityCount")
    values = yield context.task_all([context.call_activity("ParrotValue", str(i))
                                     for i in range(count)])
    return (yield context.call_activity("ShowMeTheSum", values))


ACTIVITIES = {
    "GetActivityCount": lambda _: 5,
    "ParrotValue": lambda text: int(text),
    "ShowMeTheSum": lambda values: f"Well that's nice {sum(values)}!",
}


def test_fan_out_fan_in(live: bool) -> None:
    """test_initial_call, test_get_activity_count_success, test_parrot_value_success,
    test_show_me_the_sum_success: one activity, five at once (IDs 1-5), their sum (ID 6)."""
    driver = SuiteDriver(df.Orchestrator.create(fan_out), activities=ACTIVITIES,
                         live_session=live)
    first = driver.start()
    assert first.actions == [ScheduleActivity(0, "GetActivityCount", "null")]
    assert atomic(driver.sdk) == [("CallActivity", "GetActivityCount", "null")]
    fan = driver.finish(0, 5)
    assert fan.actions == [ScheduleActivity(i + 1, "ParrotValue", json.dumps(str(i)))
                           for i in range(5)]
    for task_id in (4, 1, 5, 3):  # any order
        assert driver.finish(task_id, task_id - 1).actions == []
    gathered = driver.finish(2, 1)
    (total,) = gathered.actions
    assert isinstance(total, ScheduleActivity) and total.task_id == 6
    assert json.loads(total.input or "") == [0, 1, 2, 3, 4]
    assert total.input == atomic(driver.sdk)[-1][2]  # the SDK's text, as it wrote it
    done = driver.run_activities()
    assert done is not None and done.status is Status.Completed
    assert output(done) == driver.sdk["output"] == "Well that's nice 10!"
    assert [a[1] for a in atomic(driver.sdk)] == ["GetActivityCount"] + ["ParrotValue"] * 5 + [
        "ShowMeTheSum"]


def test_fan_out_with_a_failure(live: bool) -> None:
    """test_failed_parrot_value: the third of the five fails; task_all fails at once."""
    driver = SuiteDriver(df.Orchestrator.create(fan_out), live_session=live)
    driver.start()
    driver.finish(0, 5)
    driver.finish(1, 0)
    driver.finish(2, 1)
    failed = driver.flunk(3)
    assert failed.status is Status.Failed
    assert driver.sdk["error"] == activity_error("ParrotValue")
    assert len(atomic(driver.sdk)) == 6 and output(failed).endswith(driver.sdk["error"])


# -- test_task_any.py ---------------------------------------------------------------------------


def first_of_three(context: df.DurableOrchestrationContext):
    winner = yield context.task_any([context.call_activity("Hello", str(i)) for i in range(3)])
    try:
        return (yield winner)
    except Exception:
        return "exception"


def test_task_any_of_nothing(live: bool) -> None:
    """test_continues_on_zero_inner_tasks."""

    def nothing(context: df.DurableOrchestrationContext):
        yield context.task_any([])
        return "Done!"

    driver = SuiteDriver(df.Orchestrator.create(nothing), live_session=live)
    done = driver.start()
    assert done.status is Status.Completed and output(done) == "Done!" and done.actions == []


def test_task_any_waits_for_the_first(live: bool) -> None:
    """test_continues_on_zero_results, test_succeeds_on_one_result."""
    driver = SuiteDriver(df.Orchestrator.create(first_of_three), live_session=live)
    first = driver.start()
    assert task_ids(first) == [0, 1, 2] and not driver.sdk["isDone"]
    assert atomic(driver.sdk) == [("CallActivity", "Hello", json.dumps(str(i)))
                                  for i in range(3)]
    done = driver.finish(0, "1")
    assert done.status is Status.Completed and output(done) == driver.sdk["output"] == "1"


def test_task_any_whose_first_fails(live: bool) -> None:
    """test_continues_on_one_failure: the winner failed; awaiting it raises."""
    driver = SuiteDriver(df.Orchestrator.create(first_of_three), live_session=live)
    driver.start()
    done = driver.flunk(0)
    assert done.status is Status.Completed and output(done) == "exception"


# -- test_external_event.py ---------------------------------------------------------------------


def test_waiting_for_an_event_is_no_work(live: bool) -> None:
    """test_continue_when_no_payload, test_succeeds_on_payload: the event's JSON (raised
    with a JSON body, as the SDK test stores it) is the result."""

    def wait_a(context: df.DurableOrchestrationContext):
        return (yield context.wait_for_external_event("A"))

    driver = SuiteDriver(df.Orchestrator.create(wait_a), live_session=live)
    first = driver.start()
    assert first.status is Status.Running and first.actions == []
    assert atomic(driver.sdk) == [("WaitForExternalEvent", "A", None)]
    done = driver.raise_event("A", '{"test":"somecontent"}')
    assert output(done) == driver.sdk["output"] == {"test": "somecontent"}


@pytest.mark.parametrize("together", [False, True], ids=["apart", "together"])
@pytest.mark.filterwarnings("ignore:Potential duplicate Task completion")  # the SDK's, as ever
def test_an_event_raised_before_its_wait(together: bool, live: bool) -> None:
    """test_succeeds_on_out_of_order_payload: A arrives while the code still waits for B."""
    from durable.history import EventRaised

    def b_then_a(context: df.DurableOrchestrationContext):
        yield context.wait_for_external_event("B")
        return (yield context.wait_for_external_event("A"))

    driver = SuiteDriver(df.Orchestrator.create(b_then_a), live_session=live)
    driver.start()
    a = EventRaised(timestamp=driver.now, name="A", input='{"test":"a"}')
    b = EventRaised(timestamp=driver.now, name="B", input='{"test":"b"}')
    if together:
        done = driver.episode([a, b])
    else:
        assert driver.episode([a]).status is Status.Running
        done = driver.episode([b])
    assert done.status is Status.Completed and output(done) == {"test": "a"}
    assert atomic(driver.sdk) == [("WaitForExternalEvent", "B", None),
                                  ("WaitForExternalEvent", "A", None)]


# -- test_create_timer.py -----------------------------------------------------------------------


def test_a_timer_at_a_fixed_moment(live: bool) -> None:
    """test_timers_comparison_with_relaxed_precision: a timer at 2020-07-23T21:56:54.9367Z
    (durable writes it with its six digits; no host here drops the zeros)."""

    def at_moment(context: df.DurableOrchestrationContext):
        yield context.create_timer(DEADLINE)
        return "Done!"

    driver = SuiteDriver(df.Orchestrator.create(at_moment), live_session=live)
    assert driver.start().actions == [ScheduleTimer(0, DEADLINE.timestamp())]
    assert atomic(driver.sdk) == [("CreateTimer", None, None)]
    done = driver.fire(0)
    assert done.status is Status.Completed and output(done) == "Done!"


def test_the_losing_timer_is_cancelled(live: bool) -> None:
    """test_timers_can_be_cancelled, test_timers_can_be_cancelled_replayV2: two timers race;
    the first to fire wins and the other is cancelled (``isCanceled`` in the SDK's answer;
    durable sends no more work)."""

    def race(context: df.DurableOrchestrationContext):
        soon = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
        later = context.create_timer(context.current_utc_datetime + timedelta(minutes=10))
        winner = yield context.task_any([soon, later])
        if winner == soon:
            later.cancel()
            return "Done!"
        raise Exception("the sooner timer should win")

    driver = SuiteDriver(df.Orchestrator.create(race), live_session=live)
    first = driver.start()
    assert first.actions == [ScheduleTimer(0, driver.now + 300), ScheduleTimer(1, driver.now + 600)]
    done = driver.fire(0)
    assert done.status is Status.Completed and output(done) == "Done!" and done.actions == []
    (race_action,) = driver.sdk["actions"][0]
    assert [t.get("isCanceled") for t in race_action["compoundActions"]] == [False, True]


# -- test_is_replaying_flag.py ------------------------------------------------------------------


@pytest.mark.parametrize("keep", [False, True])
def test_is_replaying_flag(live: bool, keep: bool) -> None:
    """test_is_replaying_initial_value, test_is_replaying_one_replayed_event,
    test_is_replaying_one_replayed_one_not: the flag after each timer, as the code saw it.
    A full replay sees True where the event that resumed it was played (an earlier episode's)
    and False for this episode's; a live session runs only the new part: False. A session
    ends after the episode that first reads the flag (full replays from then on), unless it
    is kept regardless (``extendedSessionsEnabled: true``)."""
    drivers: list[SuiteDriver] = []

    def three_timers(context: df.DurableOrchestrationContext):
        drivers[0].note(context.is_replaying)
        deadline = DEADLINE
        for _ in range(3):
            deadline += timedelta(seconds=30)
            yield context.create_timer(deadline)
            drivers[0].note(context.is_replaying)

    drivers.append(SuiteDriver(df.Orchestrator.create(three_timers), live_session=live,
                               keep_session=keep))
    driver = drivers[0]
    driver.start()
    assert driver.replay_notes[-1] == [False]
    driver.fire(0)
    assert driver.replay_notes[-1] == [True, False]
    driver.fire(1)
    assert driver.replay_notes[-1] == [True, True, False]
    if live and keep:
        assert driver.session_notes == [False, False, False]
    elif live:
        assert driver.session_notes == [False]  # the first episode's, then full replays
    else:
        assert driver.session_notes == []


def test_is_replaying_after_a_compound_task(live: bool) -> None:
    """test_is_replaying_propagates_in_compound_task: after a task_any whose winner fired in
    an earlier episode, the replay sees True."""
    drivers: list[SuiteDriver] = []

    def any_timer(context: df.DurableOrchestrationContext):
        deadlines = [DEADLINE + timedelta(seconds=30 * n) for n in (1, 2, 3)]
        yield context.task_any([context.create_timer(d) for d in deadlines])
        drivers[0].note(context.is_replaying)
        yield context.create_timer(DEADLINE)
        drivers[0].note(context.is_replaying)

    drivers.append(SuiteDriver(df.Orchestrator.create(any_timer), live_session=live))
    driver = drivers[0]
    assert task_ids(driver.start()) == [0, 1, 2]
    assert task_ids(driver.fire(0)) == [3]
    assert driver.replay_notes[-1] == [False]
    done = driver.fire(3)
    assert done.status is Status.Completed and driver.replay_notes[-1] == [True, False]


# -- test_continue_as_new.py --------------------------------------------------------------------


def test_continue_as_new(live: bool) -> None:
    """test_initial_orchestration_state, test_tokyo_state (continue-as-new file): the SDK's
    ContinueAsNew action ends the execution; durable stores the new input as the Azure host
    does (a JSON string of the SDK's JSON text)."""

    def again(context: df.DurableOrchestrationContext):
        yield context.call_activity("Hello", "Tokyo")
        context.continue_as_new("Cause I can")

    driver = SuiteDriver(df.Orchestrator.create(again), live_session=live)
    assert driver.start().actions == [ScheduleActivity(0, "Hello", '"Tokyo"')]
    done = driver.finish(0, "Hello Tokyo!")
    assert done.status is Status.ContinuedAsNew and done.actions == []
    assert done.continue_as_new is not None
    assert done.continue_as_new.input == sdk_input("Cause I can")
    assert atomic(driver.sdk) == [("CallActivity", "Hello", '"Tokyo"'),
                                  ("ContinueAsNew", None, '"Cause I can"')]
    assert driver.sdk["isDone"] is True


# -- test_sub_orchestrator.py -------------------------------------------------------------------


def greet_by_sub_orchestrators(context: df.DurableOrchestrationContext):
    results = []
    for city in CITIES:
        results.append((yield context.call_sub_orchestrator("HelloSubOrchestrator", city)))
    return results


def hello_sub_orchestrator(context: df.DurableOrchestrationContext):
    return f"Hello {context.get_input()}!"
    yield  # a generator


def run_child(action: Any, live: bool) -> Decision:
    """Run a sub-orchestration the parent asked for, as durable starts it: its own instance,
    the input as the parent's StartSubOrchestration carries it."""
    assert isinstance(action, StartSubOrchestration)
    child = SuiteDriver(df.Orchestrator.create(hello_sub_orchestrator), name=action.name,
                        instance_id=action.instance_id, input_text=action.input,
                        live_session=live)
    return child.start()


def test_sub_orchestrators(live: bool) -> None:
    """test_tokyo_and_seattle_and_london_state (sub-orchestrator file): three children in
    turn, IDs 0-2, default instance IDs ``<execution>:<task ID>``; each child is run by its
    own runtime and its output completes the parent's task."""
    driver = SuiteDriver(df.Orchestrator.create(greet_by_sub_orchestrators), live_session=live)
    decision = driver.start()
    for task_id, city in enumerate(CITIES):
        (action,) = decision.actions
        assert action == StartSubOrchestration(task_id, "HelloSubOrchestrator",
                                               f"exec:{task_id}", json.dumps(json.dumps(city)))
        child = run_child(action, live)
        assert child.status is Status.Completed
        decision = driver.finish(task_id, output(child))
    assert output(decision) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert atomic(driver.sdk) == [("CallSubOrchestrator", "HelloSubOrchestrator",
                                   json.dumps(city)) for city in CITIES]
    assert top_level(driver.sdk) == ["CallSubOrchestrator"] * 3
