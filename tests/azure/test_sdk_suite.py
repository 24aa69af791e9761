"""The Azure SDK's orchestrator suites, ported: each scenario driven through durable.

Every scenario of ``tests/orchestrator/*.py`` in Azure/azure-functions-durable-python (the
1.x SDK) that applies to durable, with the orchestrator rewritten here with the same behaviour.
The SDK suite builds each history by hand and checks the SDK's answer; here durable builds the
history (:class:`tests.azure.sdk_suite.SuiteDriver`: durable assigns work and task IDs, the
driver completes it, fires timers, raises events), and each test checks what the SDK test
checks, on the SDK's answer to a cold full replay (its actions, ``isDone``, ``output``,
``error``, ``customStatus``), plus what durable made of it (the work and its task IDs, the
status, output and custom status it stores). Every test runs with a live session and with full
replays; the driver also compares each episode's decision between the two.

This file: sequential, custom status, serialization, fan-out/fan-in, task_any, external
events, create_timer, is_replaying, continue_as_new, sub-orchestrators. Retries and call_http:
test_sdk_suite_retries.py. Entities: test_sdk_suite_entities.py.

Not ported (nothing of durable's to check): the SDK suites' ``assert_valid_schema`` (the JSON
schema of the SDK's own answer) and ``test_timers_comparison_with_relaxed_precision``'s point,
a host writing ``FireAt`` without trailing zeros (durable writes every timestamp the same way;
the scenario's timer is still run below).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from durable.orchestration.actions import (
    Decision,
    ScheduleActivity,
    StartSubOrchestration,
)
from durable.status import OrchestrationRuntimeStatus as Status
from tests.azure.driver import T0
from tests.azure.sdk_suite import (
    SuiteDriver,
    activity_error,
    atomic,
    top_level,
    v2_activity,
    v2_specs,
)

CITIES = ["Tokyo", "Seattle", "London"]


@pytest.fixture(params=[True, False], ids=["session", "replay"])
def live(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def hello(city: str) -> ScheduleActivity:
    """A durable activity action's expected shape is checked with this (task ID aside)."""
    return ScheduleActivity(0, "Hello", json.dumps(city))


def call(name: str, value: Any) -> tuple[str, str, str]:
    """An SDK CallActivity action, as :func:`atomic` lists it."""
    return ("CallActivity", name, json.dumps(value))


def output(decision: Decision) -> Any:
    return json.loads(decision.output or "null")


# -- the orchestrators, in our words ------------------------------------------------------------


def greet_each(context: df.DurableOrchestrationContext):
    greetings = []
    for city in CITIES:
        greetings.append((yield context.call_activity("Hello", city)))
    return greetings


def greet_then_fail(context: df.DurableOrchestrationContext):
    for city in CITIES:
        yield context.call_activity("Hello", city)
    raise ValueError("Oops!")


app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def greet_each_v2(context: df.DurableOrchestrationContext):
    greetings = []
    for city in CITIES:
        greetings.append((yield context.call_activity("Hello", city)))
    return greetings


@app.orchestration_trigger(context_name="context")
def greet_then_fail_v2(context: df.DurableOrchestrationContext):
    for city in CITIES:
        yield context.call_activity("Hello", city)
    raise ValueError("Oops!")


@app.activity_trigger(input_name="city")
def Hello(city: str) -> str:
    return "Hello" + city


@app.activity_trigger(input_name="city")
def hello_return_none(city: str) -> str | None:
    return None if city == "London" else "Hello" + city


@app.orchestration_trigger(context_name="context")
def greet_by_function(context: df.DurableOrchestrationContext):
    results = []
    for city in CITIES:
        results.append((yield context.call_activity(Hello, city)))
    return results


@app.orchestration_trigger(context_name="context")
def greet_none_by_function(context: df.DurableOrchestrationContext):
    results = []
    for city in CITIES:
        results.append((yield context.call_activity(hello_return_none, city)))
    return results


@app.orchestration_trigger(context_name="context")
def call_an_orchestrator_as_activity(context: df.DurableOrchestrationContext):
    return (yield context.call_activity(greet_then_fail_v2, "Tokyo"))


@app.orchestration_trigger(context_name="context")
def greet_by_sub_orchestrator_function(context: df.DurableOrchestrationContext):
    results = []
    for city in CITIES:
        results.append((yield context.call_sub_orchestrator(HelloSubOrchestrator, city)))
    return results


@app.orchestration_trigger(context_name="context")
def HelloSubOrchestrator(context: df.DurableOrchestrationContext):
    return f"Hello {context.get_input()}!"
    yield  # a generator


SPECS = v2_specs(app)
V2_ACTIVITIES = {name: v2_activity(SPECS[name]) for name in ("Hello", "hello_return_none")}


# -- test_sequential_orchestrator.py ------------------------------------------------------------


def test_sequential_chain(live: bool) -> None:
    """test_initial_orchestration_state, test_tokyo_state, test_tokyo_and_seattle_state,
    test_tokyo_and_seattle_and_london_state: one activity at a time, IDs 0, 1, 2."""
    driver = SuiteDriver(df.Orchestrator.create(greet_each), name="test_simple_function",
                         live_session=live)
    expected: list[tuple[str, str, str]] = []
    decision = driver.start()
    for task_id, city in enumerate(CITIES):
        expected.append(call("Hello", city))
        assert decision.status is Status.Running
        assert decision.actions == [ScheduleActivity(task_id, "Hello", json.dumps(city))]
        assert atomic(driver.sdk) == expected and driver.sdk["isDone"] is False
        decision = driver.finish(task_id, f"Hello {city}!")
    assert decision.status is Status.Completed and decision.actions == []
    assert atomic(driver.sdk) == expected and driver.sdk["isDone"] is True
    assert driver.sdk["output"] == output(decision) == ["Hello Tokyo!", "Hello Seattle!",
                                                         "Hello London!"]


def test_sequential_chain_v2(live: bool) -> None:
    """test_tokyo_and_seattle_and_london_state_pystein: the decorated (v2) orchestrator,
    indexed and called as durable's loader does, its real activity run by the driver."""
    driver = SuiteDriver.v2(SPECS["greet_each_v2"], activities=V2_ACTIVITIES, live_session=live)
    driver.start()
    done = driver.run_activities()
    assert done is not None and done.status is Status.Completed
    assert output(done) == ["HelloTokyo", "HelloSeattle", "HelloLondon"]
    assert atomic(driver.sdk) == [call("Hello", city) for city in CITIES]
    assert [d.actions[0].task_id for d in driver.decisions[:3]] == [0, 1, 2]  # type: ignore


@pytest.mark.parametrize(("orchestrator", "outcome"), [
    ("greet_by_function", ["HelloTokyo", "HelloSeattle", "HelloLondon"]),
    ("greet_none_by_function", ["HelloTokyo", "HelloSeattle", None]),
])
def test_call_activity_by_function(orchestrator: str, outcome: list[Any], live: bool) -> None:
    """test_call_activity_with_name, test_call_activity_with_none_return: an activity given
    as the decorated function is called by its name; one that returns None gives None."""
    driver = SuiteDriver.v2(SPECS[orchestrator], activities=V2_ACTIVITIES, live_session=live)
    name = "Hello" if orchestrator == "greet_by_function" else "hello_return_none"
    assert driver.start().actions == [ScheduleActivity(0, name, '"Tokyo"')]
    done = driver.run_activities()
    assert done is not None and done.status is Status.Completed
    assert output(done) == driver.sdk["output"] == outcome
    assert atomic(driver.sdk) == [call(name, city) for city in CITIES]


def test_a_failed_activity_fails_the_orchestration(live: bool) -> None:
    """test_failed_tokyo_state: the SDK raises ``f"{Reason} \\n {Details}"`` of the failure,
    here with the Reason and Details the Azure host writes (durable's wording)."""
    driver = SuiteDriver(df.Orchestrator.create(greet_each), name="test_simple_function",
                         live_session=live)
    driver.start()
    failed = driver.flunk(0)
    assert failed.status is Status.Failed and failed.actions == []
    assert driver.sdk["error"] == activity_error("Hello")
    assert atomic(driver.sdk) == [call("Hello", "Tokyo")]
    assert output(failed) == f"Orchestrator function 'test_simple_function' failed: " \
                             f"{activity_error('Hello')}"


@pytest.mark.parametrize(("orchestrator", "message"), [
    ("call_a_plain_function", "The `call_activity` API received a `Callable` without an "
                              "associated Azure Functions trigger-type."),
    ("call_an_orchestrator_as_activity", "Received function with Trigger-type "
                                         "`orchestrationTrigger` but expected `ActivityTrigger`."),
])
def test_call_activity_with_a_function_that_is_no_activity(orchestrator: str, message: str,
                                                            live: bool) -> None:
    """test_call_activity_function_callable_exception,
    test_call_activity_function_with_orchestrator_exception: the SDK refuses at the call; the
    instance fails with its message and nothing is scheduled."""
    if orchestrator == "call_a_plain_function":
        def call_a_plain_function(context: df.DurableOrchestrationContext):
            return (yield context.call_activity(greet_each, "Tokyo"))

        driver = SuiteDriver(df.Orchestrator.create(call_a_plain_function), live_session=live)
    else:
        driver = SuiteDriver.v2(SPECS[orchestrator], live_session=live)
    failed = driver.start()
    assert failed.status is Status.Failed and failed.actions == []
    assert driver.sdk["error"].startswith(message) and atomic(driver.sdk) == []
    assert output(failed).endswith(driver.sdk["error"])


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_user_code_raises(v2: bool, live: bool) -> None:
    """test_user_code_raises_exception, test_user_code_raises_exception_with_pystein."""
    driver = (SuiteDriver.v2(SPECS["greet_then_fail_v2"], live_session=live) if v2 else
              SuiteDriver(df.Orchestrator.create(greet_then_fail), name="greet_then_fail",
                          live_session=live))
    driver.start()
    driver.finish(0, "Hello Tokyo!")
    driver.finish(1, "Hello Seattle!")
    failed = driver.finish(2, "Hello London!")
    assert failed.status is Status.Failed
    assert driver.sdk["error"] == "Oops!"
    assert atomic(driver.sdk) == [call("Hello", city) for city in CITIES]
    assert failed.failure is not None and failed.failure.error_type == "ValueError"
    name = "greet_then_fail_v2" if v2 else "greet_then_fail"
    assert output(failed) == f"Orchestrator function '{name}' failed: Oops!"


def test_a_task_yielded_in_two_task_alls(live: bool) -> None:
    """test_multi_when_all_yield: a task awaited twice is scheduled once."""

    def twice(context: df.DurableOrchestrationContext):
        greeting = context.call_activity("Hello", "Tokyo")
        yield context.task_all([greeting])
        return (yield context.task_all([greeting]))

    driver = SuiteDriver(df.Orchestrator.create(twice), live_session=live)
    assert driver.start().actions == [ScheduleActivity(0, "Hello", '"Tokyo"')]
    done = driver.finish(0, "Hello Tokyo!")
    assert done.status is Status.Completed and output(done) == ["Hello Tokyo!"]
    assert atomic(driver.sdk) == [call("Hello", "Tokyo")]


def replaying_flags(context: df.DurableOrchestrationContext):
    flags = [context.is_replaying]
    yield context.call_activity("Hello", "Tokyo")
    flags.append(context.is_replaying)
    yield context.call_activity("Hello", "Seattle")
    flags.append(context.is_replaying)
    yield context.call_activity("Hello", "London")
    return flags


@pytest.mark.parametrize(("session", "keep", "expected"), [
    (False, False, [True, True, True]),  # a full replay every episode: the SDK suite, Azure
    # the live session, replayed in full from the episode after the first read of the flag
    (True, False, [True, True, True]),
    # extendedSessionsEnabled: true (Azure's extended sessions): kept whatever it reads
    (True, True, [False, False, False]),
])
def test_is_replaying_kept_in_the_output(session: bool, keep: bool,
                                         expected: list[bool]) -> None:
    """test_sequential_is_replaying: flags read before each yield, returned at the end. In
    the final episode of a full replay the SDK replays the first three points from played
    events: all True. A session that reads ``is_replaying`` is ended after that episode, so
    the result is Azure's; one kept regardless ran each point once, live, and kept what it
    read then (docs/azure-apps.md, "Speed"). The flag at each point, and the work, are the
    same every way."""
    driver = SuiteDriver(df.Orchestrator.create(replaying_flags), live_session=session,
                         compare_cold=not keep, keep_session=keep)
    driver.start()
    driver.finish(0, "a")
    driver.finish(1, "b")
    done = driver.finish(2, "c")
    assert output(done) == expected
    assert driver.sdk["output"] == [True, True, True]  # the SDK's full replay, for reference


def test_tasks_never_yielded_are_never_scheduled(live: bool) -> None:
    """test_sequential_orchestration_no_yield: the SDK numbers a task when it is yielded, so
    the only one yielded takes ID 0."""

    def only_london(context: df.DurableOrchestrationContext):
        context.call_activity("Hello", "Tokyo")
        context.call_activity("Hello", "Seattle")
        return (yield context.call_activity("Hello", "London"))

    driver = SuiteDriver(df.Orchestrator.create(only_london), live_session=live)
    assert driver.start().actions == [ScheduleActivity(0, "Hello", '"London"')]
    done = driver.finish(0, "Hello London!")
    assert output(done) == "Hello London!" and atomic(driver.sdk) == [call("Hello", "London")]


class Place:
    """A custom class the SDK serializes (``to_json``/``from_json``), as the suite's
    ``SerializableClass``."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def to_json(obj: object) -> str:
        assert isinstance(obj, Place)
        return obj.name

    @staticmethod
    def from_json(text: str) -> Place:
        return Place(text)


def test_custom_class_inputs_are_sent_as_the_sdk_encodes_them(live: bool) -> None:
    """test_tokyo_and_seattle_and_london_with_serialization_state: the activity input durable
    schedules is the SDK's own encoding of the object (class, module and its ``to_json``)."""
    def places(context: df.DurableOrchestrationContext):
        greetings = []
        for city in CITIES:
            greetings.append((yield context.call_activity("Hello", Place(city))))
        return greetings

    driver = SuiteDriver(df.Orchestrator.create(places), live_session=live)
    decision = driver.start()
    for task_id, city in enumerate(CITIES):
        (action,) = decision.actions
        assert isinstance(action, ScheduleActivity) and action.task_id == task_id
        assert action.input == atomic(driver.sdk)[task_id][2]
        assert json.loads(action.input or "") == {
            "__class__": "Place", "__module__": __name__, "__data__": city}
        decision = driver.finish(task_id, f"Hello {city}!")
    assert output(decision) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_current_utc_datetime_is_each_episodes_start(live: bool) -> None:
    """test_utc_time_is_never_none, test_utc_time_updates_correctly: the time each step reads
    is the start of the episode that ran it (durable's episodes here start a second apart)."""

    def times(context: df.DurableOrchestrationContext):
        seen = [context.current_utc_datetime.strftime("%m/%d/%Y, %H:%M:%S")]
        for city in CITIES:
            yield context.call_activity("Hello", city)
            seen.append(context.current_utc_datetime.strftime("%m/%d/%Y, %H:%M:%S"))
        return seen

    driver = SuiteDriver(df.Orchestrator.create(times), live_session=live)
    driver.start()
    for task_id in range(3):
        done = driver.finish(task_id, "hi")
    expected = [datetime.fromtimestamp(T0 + n, UTC).strftime("%m/%d/%Y, %H:%M:%S")
                for n in (1, 2, 3, 4)]
    assert output(done) == expected


def test_new_guid_is_replay_safe(live: bool) -> None:
    """test_new_guid_orchestrator: three different GUIDs, the same ones on every run of the
    same history."""

    def guids(context: df.DurableOrchestrationContext):
        first = [str(context.new_guid()) for _ in range(3)]
        yield context.call_activity("Hello", "Tokyo")
        return [*first, str(context.new_guid())]

    outputs = []
    for _ in range(2):
        driver = SuiteDriver(df.Orchestrator.create(guids), live_session=live)
        driver.start()
        outputs.append(output(driver.finish(0, "hi")))
    assert len(set(outputs[0])) == 4 and outputs[0] == outputs[1]


def test_duplicate_yields_do_not_add_duplicate_actions(live: bool) -> None:
    """test_duplicate_yields_do_not_add_duplicate_actions."""

    def yield_twice(context: df.DurableOrchestrationContext):
        greeting = context.call_activity("Hello", "Tokyo")
        yield greeting
        yield greeting
        return ""

    driver = SuiteDriver(df.Orchestrator.create(yield_twice), live_session=live)
    assert driver.start().actions == [ScheduleActivity(0, "Hello", '"Tokyo"')]
    done = driver.finish(0, "Hello Tokyo!")
    assert done.status is Status.Completed and done.actions == [] and output(done) == ""
    assert atomic(driver.sdk) == [call("Hello", "Tokyo")]


@pytest.mark.parametrize("add_london_to_the_second_any", [False, True],
                         ids=["reducing", "reusing"])
def test_task_any_over_tasks_already_scheduled(add_london_to_the_second_any: bool,
                                               live: bool) -> None:
    """test_reducing_when_any_pattern (both of the SDK file's tests of that name): a second
    task_any over a task the first one scheduled schedules nothing again; new work still
    gets the next ID."""

    def reducing(context: df.DurableOrchestrationContext):
        pending = [context.call_activity("Hello", "Tokyo"),
                   context.call_activity("Hello", "Seattle")]
        first = yield context.task_any(pending)
        pending.remove(first)
        if add_london_to_the_second_any:
            yield context.task_any([*pending, context.call_activity("Hello", "London")])
            return ""
        yield context.task_any(pending)
        yield context.call_activity("Hello", "London")
        return ""

    driver = SuiteDriver(df.Orchestrator.create(reducing), live_session=live)
    assert [a.task_id for a in driver.start().actions] == [0, 1]  # type: ignore[union-attr]
    second = driver.finish(0, "Hello Tokyo!")
    if add_london_to_the_second_any:
        assert second.actions == [ScheduleActivity(2, "Hello", '"London"')]
        done = driver.finish(2, "Hello London!")
        assert top_level(driver.sdk) == ["WhenAny", "WhenAny"]
    else:
        assert second.actions == []
        assert driver.finish(1, "Hello Seattle!").actions == [
            ScheduleActivity(2, "Hello", '"London"')]
        done = driver.finish(2, "Hello London!")
        assert top_level(driver.sdk) == ["WhenAny", "CallActivity"]
    assert done.status is Status.Completed and output(done) == ""
    assert atomic(driver.sdk) == [call("Hello", city) for city in CITIES]


def test_compound_tasks(live: bool) -> None:
    """test_compound_tasks_return_single_action_in_V2: any(all(a, b, any(c))) is one compound
    action for the SDK; durable schedules its three activities, numbered depth-first."""

    def nested(context: df.DurableOrchestrationContext):
        yield context.call_activity("Hello", "Tokyo")
        a, b, c = (context.call_activity("Hello", "Tokyo") for _ in range(3))
        yield context.task_any([context.task_all([a, b, context.task_any([c])])])
        return ""

    driver = SuiteDriver(df.Orchestrator.create(nested), live_session=live)
    driver.start()
    second = driver.finish(0, "hi")
    assert [a.task_id for a in second.actions] == [1, 2, 3]  # type: ignore[union-attr]
    assert top_level(driver.sdk) == ["CallActivity", "WhenAny"]
    assert atomic(driver.sdk) == [call("Hello", "Tokyo")] * 4 and not driver.sdk["isDone"]
    driver.finish(3, "c")
    driver.finish(1, "a")
    done = driver.finish(2, "b")
    assert done.status is Status.Completed and output(done) == ""


# -- test_sequential_orchestrator_custom_status.py, test_serialization.py --------------------


def test_custom_status_follows_each_step(live: bool) -> None:
    """test_initial_orchestration_state, test_custom_status_tokyo,
    test_custom_status_tokyo_seattle (custom status file): the status set after each step;
    the orchestrator returns nothing."""

    def statuses(context: df.DurableOrchestrationContext):
        yield context.call_activity("Hello", "Tokyo")
        context.set_custom_status("--- Tokyo ->")
        yield context.call_activity("Hello", "Seattle")
        context.set_custom_status("Seattle ->")
        yield context.call_activity("Hello", "London")
        context.set_custom_status("London ---")

    driver = SuiteDriver(df.Orchestrator.create(statuses), live_session=live)
    first = driver.start()
    assert "customStatus" not in driver.sdk and first.custom_status is None
    for task_id, status in enumerate(["--- Tokyo ->", "Seattle ->"]):
        step = driver.finish(task_id, "hi")
        assert driver.sdk["customStatus"] == status
        assert json.loads(step.custom_status or "") == status
    done = driver.finish(2, "hi")
    assert done.status is Status.Completed and output(done) is None
    assert json.loads(done.custom_status or "") == driver.sdk["customStatus"] == "London ---"


def test_custom_status_as_object(live: bool) -> None:
    """test_custom_status_as_object."""

    def object_status(context: df.DurableOrchestrationContext):
        yield context.call_activity("Hello", "Tokyo")
        context.set_custom_status({"tokyo": "completed"})

    driver = SuiteDriver(df.Orchestrator.create(object_status), live_session=live)
    driver.start()
    done = driver.finish(0, "hi")
    assert done.status is Status.Completed and driver.sdk["isDone"] is True
    assert json.loads(done.custom_status or "") == driver.sdk["customStatus"] == {
        "tokyo": "completed"}


def test_an_orchestrator_can_return_false(live: bool) -> None:
    """test_serialization_of_False."""

    def no(context: df.DurableOrchestrationContext):
        return False
        yield  # a generator

    driver = SuiteDriver(df.Orchestrator.create(no), live_session=live)
    done = driver.start()
    assert done.status is Status.Completed and done.output == "false"
    assert driver.sdk["output"] is False and driver.sdk["isDone"] is True


# -- test_sub_orchestrator.py -------------------------------------------------------------------


def test_call_sub_orchestrator_by_function(live: bool) -> None:
    """test_call_suborchestrator_by_name: the decorated child given as the function is called
    by its name; each child runs as durable starts it (its v2 function, the parent's input)."""
    driver = SuiteDriver.v2(SPECS["greet_by_sub_orchestrator_function"], live_session=live)
    decision = driver.start()
    for task_id in range(len(CITIES)):
        (action,) = decision.actions
        assert isinstance(action, StartSubOrchestration) and action.task_id == task_id
        assert (action.name, action.instance_id) == ("HelloSubOrchestrator", f"exec:{task_id}")
        child = SuiteDriver.v2(SPECS[action.name], instance_id=action.instance_id,
                               input_text=action.input, live_session=live).start()
        assert child.status is Status.Completed
        decision = driver.finish(task_id, output(child))
    assert output(decision) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert atomic(driver.sdk) == [("CallSubOrchestrator", "HelloSubOrchestrator",
                                   json.dumps(city)) for city in CITIES]
