"""The SDK's out-of-process protocol, driven episode by episode with the real SDK.

Each test writes an orchestrator exactly as for Azure (``df.Orchestrator.create``), runs it
through :class:`SdkOrchestrationRuntime`, and checks the work it asks for, the IDs, the payload
encodings of the Azure host, and the final status. The driver also checks after every episode
that a cold replay of the stored history decides the same thing.
"""

from __future__ import annotations

import json
from datetime import timedelta

import azure.durable_functions as df
import pytest

from durable.azure.http_polling import POLL_BASE
from durable.errors import FailureDetails
from durable.history import (
    EventSent,
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskScheduled,
    TimerCreated,
)
from durable.orchestration.actions import (
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)
from durable.status import OrchestrationRuntimeStatus as Status
from tests.azure.driver import T0, Driver, sdk_input


def hello(name: object) -> str:
    return f"Hello {name}!"


def test_function_chaining() -> None:
    def chain(context: df.DurableOrchestrationContext):
        r1 = yield context.call_activity("hello", "Tokyo")
        r2 = yield context.call_activity("hello", "Seattle")
        r3 = yield context.call_activity("hello", "London")
        return [r1, r2, r3]

    driver = Driver(df.Orchestrator.create(chain), activities={"hello": hello})
    first = driver.start()
    assert first.status is Status.Running
    assert first.actions == [ScheduleActivity(0, "hello", '"Tokyo"')]
    scheduled = [e for e in first.history if isinstance(e, TaskScheduled)]
    assert [(e.event_id, e.name, e.input) for e in scheduled] == [(0, "hello", '"Tokyo"')]
    last = driver.run_activities()
    assert last is not None and last.status is Status.Completed
    assert json.loads(last.output or "") == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert [d.actions[0].task_id for d in driver.decisions[:3]] == [0, 1, 2]  # type: ignore


def test_fan_out_fan_in_in_any_completion_order() -> None:
    def fan(context: df.DurableOrchestrationContext):
        names = context.get_input()
        results = yield context.task_all([context.call_activity("hello", n) for n in names])
        return results

    driver = Driver(df.Orchestrator.create(fan), input_text=sdk_input(["a", "b", "c"]))
    first = driver.start()
    assert [a.task_id for a in first.actions] == [0, 1, 2]  # type: ignore[union-attr]
    driver.complete(2, "C")
    driver.complete(0, "A")
    done = driver.complete(1, "B")
    assert done.status is Status.Completed
    assert json.loads(done.output or "") == ["A", "B", "C"]


def test_inputs_are_read_as_the_azure_host_passes_them() -> None:
    """A start by the Python client stores a JSON string of JSON text; a raw JSON body (curl)
    stores the value. The SDK's get_input decodes both to the value, as on Azure."""

    def echo(context: df.DurableOrchestrationContext):
        return context.get_input()
        yield  # a generator

    for stored in (sdk_input({"a": [1, 2]}), json.dumps({"a": [1, 2]})):
        done = Driver(df.Orchestrator.create(echo), input_text=stored).start()
        assert done.status is Status.Completed
        assert json.loads(done.output or "") == {"a": [1, 2]}


def test_external_events_keep_the_sdk_double_encoding() -> None:
    def wait(context: df.DurableOrchestrationContext):
        first = yield context.wait_for_external_event("Approval")
        second = yield context.wait_for_external_event("Approval")
        return [first, second]

    driver = Driver(df.Orchestrator.create(wait))
    assert driver.start().actions == []  # waiting is not work for the host
    # The SDK's raise_event(data) sends json.dumps(data), stored as a JSON string:
    driver.raise_event("Approval", json.dumps(json.dumps({"ok": True})))
    done = driver.raise_event("Approval", json.dumps({"ok": False}))  # raw JSON (curl)
    assert json.loads(done.output or "") == ['{"ok": true}', {"ok": False}]


def test_timeout_timer_cancelled_after_the_event_wins() -> None:
    def approval(context: df.DurableOrchestrationContext):
        deadline = context.current_utc_datetime + timedelta(seconds=30)
        timeout = context.create_timer(deadline)
        event = context.wait_for_external_event("Approve")
        winner = yield context.task_any([event, timeout])
        if winner == event:
            timeout.cancel()
            return "approved"
        return "timed out"

    driver = Driver(df.Orchestrator.create(approval))
    first = driver.start()
    assert first.actions == [ScheduleTimer(0, T0 + 1 + 30)]
    done = driver.raise_event("Approve", "true")
    assert done.status is Status.Completed and done.actions == []  # the cancel is no new work
    assert json.loads(done.output or "") == "approved"

    late = Driver(df.Orchestrator.create(approval))
    late.start()
    timed_out = late.fire(0)
    assert json.loads(timed_out.output or "") == "timed out"


def test_retries_are_done_by_the_host_with_the_sdk_task_ids() -> None:
    """call_activity_with_retry: the host retries after a timer, under the IDs the SDK gives
    the timer and the next attempt; after the last attempt one more timer, due at once."""

    def flaky(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(first_retry_interval_in_milliseconds=5000,
                                  max_number_of_attempts=2)
        try:
            result = yield context.call_activity_with_retry("flaky", options, "x")
        except Exception as exc:
            result = f"gave up: {exc}"
        after = yield context.call_activity("hello", "after")
        return [result, after]

    driver = Driver(df.Orchestrator.create(flaky))
    assert driver.start().actions == [ScheduleActivity(0, "flaky", '"x"')]
    delay = driver.fail(0, "first")
    assert delay.actions == [ScheduleTimer(1, driver.now + 5)]
    again = driver.fire(1)
    assert again.actions == [ScheduleActivity(2, "flaky", '"x"')]
    extra = driver.fail(2, "second")
    assert extra.actions == [ScheduleTimer(3, driver.now)]  # the back-compat timer, due now
    after = driver.fire(3)
    assert after.actions == [ScheduleActivity(4, "hello", '"after"')]
    done = driver.complete(4, "Hello after!")
    output = json.loads(done.output or "")
    assert output[0].startswith("gave up: Activity function 'flaky' failed:  ValueError: second")
    assert output[1] == "Hello after!"


def test_two_retries_in_parallel_interleave_their_ids() -> None:
    def both(context: df.DurableOrchestrationContext):
        options = df.RetryOptions(1000, 3)
        results = yield context.task_all([
            context.call_activity_with_retry("a", options, 1),
            context.call_activity_with_retry("b", options, 2),
        ])
        return results

    driver = Driver(df.Orchestrator.create(both))
    assert [a.task_id for a in driver.start().actions] == [0, 1]  # type: ignore[union-attr]
    assert driver.fail(1).actions == [ScheduleTimer(2, driver.now + 1)]
    assert driver.fail(0).actions == [ScheduleTimer(3, driver.now + 1)]
    assert driver.fire(3).actions == [ScheduleActivity(4, "a", "1")]
    assert driver.fire(2).actions == [ScheduleActivity(5, "b", "2")]
    driver.complete(5, "B")
    done = driver.complete(4, "A")
    assert done.status is Status.Completed and json.loads(done.output or "") == ["A", "B"]


def test_sub_orchestrations_get_the_default_id_and_the_hosts_input_encoding() -> None:
    def parent(context: df.DurableOrchestrationContext):
        a = yield context.call_sub_orchestrator("child", {"n": 1})
        b = yield context.call_sub_orchestrator("child", "two", instance_id="named-child",
                                                version="2.0")
        return [a, b]

    driver = Driver(df.Orchestrator.create(parent), default_version="1.0")
    first = driver.start()
    assert first.actions == [
        StartSubOrchestration(0, "child", "exec:0", json.dumps('{"n": 1}'), "1.0")
    ]
    created = [e for e in first.history if isinstance(e, SubOrchestrationInstanceCreated)]
    assert created[0].instance_id == "exec:0"
    second = driver.child_done(0, "one")
    assert second.actions == [
        StartSubOrchestration(1, "child", "named-child", json.dumps('"two"'), "2.0")
    ]
    done = driver.child_done(1, "TWO")
    assert json.loads(done.output or "") == ["one", "TWO"]


def test_continue_as_new_stores_the_hosts_encoding() -> None:
    def counter(context: df.DurableOrchestrationContext):
        n = context.get_input()
        yield context.call_activity("hello", n)
        context.continue_as_new(n + 1)

    driver = Driver(df.Orchestrator.create(counter), input_text=sdk_input(1))
    driver.start()
    done = driver.complete(0, "x")
    assert done.status is Status.ContinuedAsNew
    assert done.continue_as_new is not None and done.continue_as_new.input == sdk_input(2)
    # The next execution reads it back as 2.
    nxt = Driver(df.Orchestrator.create(counter), input_text=done.continue_as_new.input)
    assert nxt.start().actions == [ScheduleActivity(0, "hello", "2")]


def test_an_exception_fails_the_instance_with_the_users_error() -> None:
    def broken(context: df.DurableOrchestrationContext):
        yield context.call_activity("hello", "x")
        raise ValueError("no such customer")

    driver = Driver(df.Orchestrator.create(broken), name="broken")
    driver.start()
    failed = driver.complete(0, "x")
    assert failed.status is Status.Failed
    assert json.loads(failed.output or "") == (
        "Orchestrator function 'broken' failed: no such customer")
    assert failed.failure is not None
    assert failed.failure.error_type == "ValueError"
    assert "no such customer" in (failed.failure.details or "")


def test_a_failed_activity_surfaces_as_the_sdk_exception() -> None:
    def caller(context: df.DurableOrchestrationContext):
        try:
            yield context.call_activity("hello", "x")
        except Exception as exc:
            return str(exc)

    driver = Driver(df.Orchestrator.create(caller))
    driver.start()
    done = driver.fail(0, "bad input")
    text = json.loads(done.output or "")
    # The Durable host's wording: "Activity function '<name>' failed: " + the Python worker's
    # " <Type>: <message>", then " \n " and the host's serialized exception on one line.
    reason, details = text.split(" \n ", 1)
    assert reason == "Activity function 'hello' failed:  ValueError: bad input"
    serialized = json.loads(details)
    # How apps dig the activity's own message out on Azure (the workaround in
    # Azure/azure-functions-durable-extension#2990):
    assert json.loads(text.split("\n")[1])["Message"].split(":", 1)[1].lstrip() == "bad input"
    assert "Traceback" in serialized["InnerException"]["Message"]


def test_a_failed_sub_orchestration_is_worded_as_the_host_words_it() -> None:
    def parent(context: df.DurableOrchestrationContext):
        try:
            yield context.call_sub_orchestrator("child", "x")
        except Exception as exc:
            return str(exc)

    driver = Driver(df.Orchestrator.create(parent))
    driver.start()
    failure = FailureDetails("ValueError", "no such customer", "Traceback: ...")
    done = driver.episode([SubOrchestrationInstanceFailed(
        timestamp=driver.now, task_scheduled_id=0, failure=failure)])
    assert json.loads(done.output or "").startswith(
        "Orchestrator function 'child' failed: no such customer \n ")


def test_new_work_in_the_finishing_episode_is_still_sent() -> None:
    def racer(context: df.DurableOrchestrationContext):
        first = context.call_activity("hello", "a")
        yield first
        winner = yield context.task_any([first, context.call_activity("hello", "b")])
        return winner.result

    driver = Driver(df.Orchestrator.create(racer))
    driver.start()
    done = driver.complete(0, "A")
    assert done.status is Status.Completed and json.loads(done.output or "") == "A"
    assert done.actions == [ScheduleActivity(1, "hello", '"b"')]


def test_suspended_instances_hold_events_until_resumed() -> None:
    def chain(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("hello", "a")
        b = yield context.call_activity("hello", "b")
        return [a, b]

    calls: list[str] = []
    handle = df.Orchestrator.create(chain)

    def counting(payload: str) -> str:
        calls.append(payload)
        return handle(payload)

    driver = Driver(counting)
    driver.start()
    suspended = driver.episode([ExecutionSuspended(timestamp=driver.now, reason="pause")])
    assert suspended.status is Status.Suspended
    held = driver.episode([TaskCompleted(timestamp=driver.now, task_scheduled_id=0,
                                         result='"A"')])
    assert held.status is Status.Suspended and held.actions == []
    count = len(calls)
    resumed = driver.episode([ExecutionResumed(timestamp=driver.now, reason="go")])
    assert resumed.actions == [ScheduleActivity(1, "hello", '"b"')]
    assert len(calls) > count
    done = driver.complete(1, "B")
    assert json.loads(done.output or "") == ["A", "B"]


def test_terminate_ends_without_running_the_code() -> None:
    def forever(context: df.DurableOrchestrationContext):
        yield context.wait_for_external_event("never")

    driver = Driver(df.Orchestrator.create(forever))
    driver.start()
    done = driver.episode([ExecutionTerminated(timestamp=driver.now, reason="enough")])
    assert done.status is Status.Terminated and json.loads(done.output or "") == "enough"


def test_duplicate_and_unknown_completions_are_dropped() -> None:
    def chain(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("hello", "a")
        b = yield context.call_activity("hello", "b")
        return [a, b]

    driver = Driver(df.Orchestrator.create(chain))
    driver.start()
    driver.complete(0, "A")
    duplicate = driver.episode([
        TaskCompleted(timestamp=driver.now, task_scheduled_id=0, result='"again"'),
        TaskCompleted(timestamp=driver.now, task_scheduled_id=7, result='"nobody"'),
    ])
    assert duplicate.status is Status.Running and duplicate.actions == []
    assert not any(isinstance(e, TaskCompleted) for e in duplicate.history)
    done = driver.complete(1, "B")
    assert json.loads(done.output or "") == ["A", "B"]


def test_changed_code_is_reported_as_non_determinism() -> None:
    def before(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("old_step", 1))

    def after(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("new_step", 1))

    driver = Driver(df.Orchestrator.create(before))
    driver.start()
    driver.handle = df.Orchestrator.create(after)  # a deployment changed the code
    driver.runtime = driver._fresh()
    driver.runtime.replay(driver.history)
    failed = driver.runtime.run_episode(
        [TaskCompleted(timestamp=driver.now, task_scheduled_id=0, result="1")], driver.now + 1)
    assert failed.status is Status.Failed
    assert failed.failure is not None and failed.failure.error_type.endswith(
        "NonDeterminismError")
    assert "old_step" in failed.failure.message and "new_step" in failed.failure.message


def test_unknown_functions_fail_the_instance() -> None:
    def calls_missing(context: df.DurableOrchestrationContext):
        return (yield context.call_activity("missing", 1))

    driver = Driver(df.Orchestrator.create(calls_missing), resolve_activity=lambda n: None)
    failed = driver.start()
    assert failed.status is Status.Failed
    assert "The activity function 'missing' doesn't exist." in json.loads(failed.output or "")


def test_entity_calls_and_signals_are_requests_with_the_ids_the_sdk_reads() -> None:
    def uses_entity(context: df.DurableOrchestrationContext):
        entity = df.EntityId("Counter", "c1")
        context.signal_entity(entity, "add", 3)
        state = yield context.call_entity(entity, "get")
        try:
            yield context.call_entity(entity, "fail")
        except Exception as exc:
            return [state, str(exc)]

    driver = Driver(df.Orchestrator.create(uses_entity))
    first = driver.start()
    signal, call = first.actions
    assert isinstance(signal, SendEvent) and isinstance(call, SendEvent)
    assert (signal.task_id, call.task_id) == (0, 1)
    assert signal.instance_id == call.instance_id == "@counter@c1"
    signalled = json.loads(signal.input or "")
    assert signalled["signal"] is True and signalled["op"] == "add"
    assert json.loads(signalled["input"]) == "3"  # the host's encoding of the SDK's "3"
    request = json.loads(call.input or "")
    assert request["op"] == "get" and request["parent"] == "inst"
    sent = [e for e in first.history if isinstance(e, EventSent)]
    assert [e.event_id for e in sent] == [0, 1]
    # The entity answers the call by the request ID (durable's response shape).
    second = driver.raise_event(request["id"], json.dumps({"result": "3"}))
    (failing,) = second.actions
    failed_request = json.loads(failing.input or "")  # type: ignore[union-attr]
    done = driver.raise_event(failed_request["id"], json.dumps(
        {"result": json.dumps("no such operation"), "exceptionType": "EntityOperationError"}))
    assert done.status is Status.Completed
    assert json.loads(done.output or "") == [3, "no such operation"]


def test_custom_status_is_reported_only_when_set_and_truthy() -> None:
    def statusful(context: df.DurableOrchestrationContext):
        context.set_custom_status({"step": 1})
        yield context.call_activity("hello", 1)
        context.set_custom_status("")  # falsy: the SDK does not report it
        yield context.call_activity("hello", 2)
        return None

    driver = Driver(df.Orchestrator.create(statusful))
    assert driver.start().custom_status == '{"step":1}'
    assert driver.complete(0, 1).custom_status is None  # kept as it was (storage: unchanged)


def test_a_v1_main_that_is_not_wrapped_says_how_to_fix_it() -> None:
    def plain(context):  # forgot df.Orchestrator.create
        yield context.call_activity("hello", 1)

    failed = Driver(plain).start()
    assert failed.status is Status.Failed
    assert "df.Orchestrator.create" in json.loads(failed.output or "")


@pytest.mark.parametrize("count", [1, 50])
@pytest.mark.parametrize("live_session", [True, False])
def test_history_is_encoded_once_per_event(count: int, live_session: bool) -> None:
    """A live session is given each event once; without one, episodes re-encode only their
    new events (past ones are cached as played)."""

    def chain(context: df.DurableOrchestrationContext):
        for i in range(count):
            yield context.call_activity("hello", i)
        return count

    driver = Driver(df.Orchestrator.create(chain), activities={"hello": hello},
                    live_session=live_session)
    driver.start()
    done = driver.run_activities()
    assert done is not None and json.loads(done.output or "") == count
    timers = [e for e in driver.history if isinstance(e, TimerCreated)]
    assert timers == []
    live = driver.runtime
    if live_session:
        assert live._session is not None and live._fed == len(live._view)
        assert len(live._session._context.histories) == len(live._view)
        assert live._played == [] or len(live._played) < len(live._view)
    else:
        assert live._session is None and len(live._played) == len(live._view)


def test_call_http_follows_202s_for_the_sdk() -> None:
    """The host polls a 202's Location (after Retry-After) with timers and GETs of its own,
    under task IDs the SDK never uses; the SDK sees one completion, the final answer."""

    def caller(context: df.DurableOrchestrationContext):
        first = yield context.call_http("POST", "https://example.test/jobs", {"n": 1},
                                        headers={"x-functions-key": "k", "X-Trace": "t"})
        second = yield context.call_activity("hello", "after")
        return [first["statusCode"], first["content"], second]

    driver = Driver(df.Orchestrator.create(caller))
    (call,) = driver.start().actions
    assert isinstance(call, ScheduleActivity) and call.task_id == 0
    accepted = {"statusCode": 202, "content": "",
                "headers": {"Location": "/jobs/7", "Retry-After": "5"}}
    waiting = driver.complete(0, accepted)
    (timer,) = waiting.actions
    assert timer == ScheduleTimer(POLL_BASE, driver.now + 5)
    (poll,) = driver.fire(POLL_BASE).actions
    assert isinstance(poll, ScheduleActivity) and poll.task_id == POLL_BASE + 1
    request = json.loads(poll.input or "")
    assert request["method"] == "GET" and request["uri"] == "https://example.test/jobs/7"
    assert request["headers"] == {"X-Trace": "t"}  # the function key is not carried over
    # Another 202, without Retry-After: the default 30 s, then a GET of the new location.
    again = driver.complete(POLL_BASE + 1, {"statusCode": 202, "content": "",
                                            "headers": {"location": "https://other.test/s"}})
    assert again.actions == [ScheduleTimer(POLL_BASE + 2, driver.now + 30)]
    (last,) = driver.fire(POLL_BASE + 2).actions
    assert json.loads(last.input or "")["uri"] == "https://other.test/s"  # type: ignore[union-attr]
    after = driver.complete(POLL_BASE + 3, {"statusCode": 200, "content": "done",
                                            "headers": {}})
    assert after.actions == [ScheduleActivity(1, "hello", '"after"')]  # the SDK's next task ID
    done = driver.complete(1, "Hello after!")
    assert json.loads(done.output or "") == [200, "done", "Hello after!"]


def test_two_polling_calls_in_parallel_keep_their_chains() -> None:
    def both(context: df.DurableOrchestrationContext):
        answers = yield context.task_all([context.call_http("GET", "https://a.test/x"),
                                          context.call_http("GET", "https://b.test/y")])
        return [(a["statusCode"], a["content"]) for a in answers]

    driver = Driver(df.Orchestrator.create(both))
    assert [a.task_id for a in driver.start().actions] == [0, 1]  # type: ignore[union-attr]
    wait = {"statusCode": 202, "content": "", "headers": {"Location": "/s", "Retry-After": "1"}}
    driver.complete(1, wait)
    driver.complete(0, wait)
    (b_poll,) = driver.fire(POLL_BASE).actions  # the first timer is b's: its 202 came first
    (a_poll,) = driver.fire(POLL_BASE + 1).actions
    assert json.loads(b_poll.input or "")["uri"] == "https://b.test/s"  # type: ignore[union-attr]
    assert json.loads(a_poll.input or "")["uri"] == "https://a.test/s"  # type: ignore[union-attr]
    driver.complete(POLL_BASE + 3, {"statusCode": 200, "content": "A", "headers": {}})
    done = driver.complete(POLL_BASE + 2, {"statusCode": 500, "content": "B", "headers": {}})
    assert json.loads(done.output or "") == [[200, "A"], [500, "B"]]


def test_values_kept_from_is_replaying_are_recomputed_as_a_full_replay_would() -> None:
    """On Azure every episode replays from the first line, so a flag read before a yield is
    read again (True) by each later replay, and that is what the output keeps. A kept session
    would keep the first episode's False; reading is_replaying ends the session (the driver
    compares every decision, the output included, with a full replay)."""

    def flags(context: df.DurableOrchestrationContext):
        seen = [context.is_replaying]
        yield context.call_activity("echo", "one")
        seen.append(context.is_replaying)
        yield context.call_activity("echo", "two")
        seen.append(context.is_replaying)
        return seen

    driver = Driver(df.Orchestrator.create(flags), activities={"echo": lambda value: value})
    assert driver.start().status is Status.Running
    last = driver.run_activities()
    assert last is not None and last.status is Status.Completed
    assert json.loads(last.output or "") == [True, True, False]


def test_an_orchestrator_that_never_reads_is_replaying_keeps_its_session() -> None:
    def chain(context: df.DurableOrchestrationContext):
        first = yield context.call_activity("echo", "one")
        second = yield context.call_activity("echo", "two")
        return [first, second]

    driver = Driver(df.Orchestrator.create(chain), activities={"echo": lambda value: value})
    driver.start()
    session = driver.runtime._session
    assert session is not None
    driver.run_activities()
    assert driver.runtime._session is session and not session.replay_sensitive
