"""The Azure SDK's entity suite (tests/orchestrator/test_entity.py), ported.

Orchestrator side: ``call_entity``/``signal_entity`` driven by :class:`SuiteDriver`, the
messages delivered to the entity and run on durable's entity engine through
``entity_callable`` (one operation per SDK batch), the responses raised back as the worker
raises them. Entity side: the SDK test's batches run as requests on durable's engine.

Where durable deliberately differs (docs/azure-apps.md, docs/entities.md: a failed operation's
state changes are rolled back; an operation that sets no result returns None; a missing
operation name is refused, ``""`` is a name) the test asserts durable's behaviour and shows,
with the SDK's own entity code given the batch the Azure host would give it, what Azure does.

Not ported: ``test_timeout_entity_catch_exception`` (a response whose result is the Functions
host's "Timeout value of 00:02:00 was exceeded" text: durable has no function timeouts, so
no entity answers that way).
"""

from __future__ import annotations

import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from durable.orchestration.actions import Decision, SendEvent
from durable.status import OrchestrationRuntimeStatus as Status
from tests.azure.sdk_suite import (
    SuiteDriver,
    atomic,
    run_entity,
    v1_entity,
    v2_entity,
    v2_specs,
)

COUNTER = df.EntityId("Counter", "myCounter")
SCHEDULER_ID = "@counter@myCounter"


@pytest.fixture(params=[True, False], ids=["session", "replay"])
def live(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def output(decision: Decision) -> Any:
    return json.loads(decision.output or "null")


# -- the entities and orchestrators, in our words -----------------------------------------------


def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    elif context.operation_name == "reset":
        value = 0
    context.set_state(value)
    context.set_result(f"The state is now: {value}")


def exploding(context: df.DurableEntityContext) -> None:
    raise Exception("boom!")


app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context", entity_name="Counter")
def counter_v2(context: df.DurableEntityContext) -> None:
    counter(context)


@app.entity_trigger(context_name="context", entity_name="Counter")
def exploding_v2(context: df.DurableEntityContext) -> None:
    exploding(context)


SPECS = v2_specs(app)


def add_three(context: df.DurableOrchestrationContext):
    return [(yield context.call_entity(COUNTER, "add", 3))]


def signal_then_get(context: df.DurableOrchestrationContext):
    context.signal_entity(COUNTER, "add", 3)
    return [(yield context.call_entity(COUNTER, "get"))]


def catch_entity_error(context: df.DurableOrchestrationContext):
    try:
        yield context.call_entity(COUNTER, "add", 3)
        return "No exception thrown"
    except Exception:
        return "Exception thrown"


def request_of(action: Any) -> dict[str, Any]:
    assert isinstance(action, SendEvent) and action.instance_id == SCHEDULER_ID
    return dict(json.loads(action.input or ""))


def sdk_batch(fn: Any, operations: list[tuple[str, Any]], state: Any = None) -> dict[str, Any]:
    """What the SDK's own entity code answers for a batch, as the Azure host hands it one
    (several operations, inputs encoded twice): Azure's behaviour, to compare with."""
    payload = {"self": {"name": "counter", "key": "myCounter"}, "exists": state is not None,
               "state": None if state is None else json.dumps(state),
               "batch": [{"name": name, "input": json.dumps(json.dumps(value)),
                          "isSignal": False} for name, value in operations]}
    return dict(json.loads(df.Entity.create(fn)(func.EntityContext(json.dumps(payload)))))


# -- orchestrator side ------------------------------------------------------------------------


def test_call_entity_sent(live: bool) -> None:
    """test_call_entity_sent: a call is a request to ``@counter@myCounter`` under task ID 0,
    its input the host's encoding of the SDK's JSON text."""
    driver = SuiteDriver(df.Orchestrator.create(add_three), live_session=live)
    (sent,) = driver.start().actions
    assert isinstance(sent, SendEvent) and sent.task_id == 0
    request = request_of(sent)
    assert (request["op"], request["signal"], request["parent"]) == ("add", False, "inst")
    assert json.loads(request["input"]) == "3"
    assert atomic(driver.sdk) == [("CallEntity", "add", "3")]


def test_signal_entity_sent(live: bool) -> None:
    """test_signal_entity_sent: a signal (ID 0) and a call (ID 1)."""
    driver = SuiteDriver(df.Orchestrator.create(signal_then_get), live_session=live)
    signal, call = driver.start().actions
    assert [a.task_id for a in (signal, call)] == [0, 1]  # type: ignore[union-attr]
    assert [request_of(a)["signal"] for a in (signal, call)] == [True, False]
    assert atomic(driver.sdk) == [("SignalEntity", "add", "3"), ("CallEntity", "get", "null")]


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_signal_entity_sent_and_response_received(v2: bool, live: bool) -> None:
    """test_signal_entity_sent_and_response_received: the signal and the call reach the
    counter in one batch; the call's answer completes the orchestration. (The SDK test
    hand-writes the answer ``3``; the real counter answers with its sentence.)"""
    fn = v2_entity(SPECS["counter_v2"]) if v2 else v1_entity(counter)
    driver = SuiteDriver(df.Orchestrator.create(signal_then_get), entities={"Counter": fn},
                         live_session=live)
    driver.start()
    done = driver.deliver()
    assert done is not None and done.status is Status.Completed
    assert output(done) == driver.sdk["output"] == ["The state is now: 3"]
    assert driver.entity(SCHEDULER_ID).state == 3


def test_call_entity_raised(live: bool) -> None:
    """test_call_entity_raised: a call's result is the orchestration's."""
    driver = SuiteDriver(df.Orchestrator.create(add_three),
                         entities={"Counter": v1_entity(counter)}, live_session=live)
    driver.start()
    done = driver.deliver()
    assert done is not None and output(done) == ["The state is now: 3"]
    assert driver.sdk["isDone"] is True


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_call_entity_catch_exception(v2: bool, live: bool) -> None:
    """test_call_entity_catch_exception (and test_entity_raises_exception from the caller's
    side): the operation raised; the call raises in the orchestrator, with its message."""
    fn = v2_entity(SPECS["exploding_v2"]) if v2 else v1_entity(exploding)
    driver = SuiteDriver(df.Orchestrator.create(catch_entity_error), entities={"Counter": fn},
                         live_session=live)
    driver.start()
    done = driver.deliver()
    assert done is not None and output(done) == "Exception thrown"

    def message(context: df.DurableOrchestrationContext):
        try:
            yield context.call_entity(COUNTER, "get")
        except Exception as exc:
            return str(exc)

    driver = SuiteDriver(df.Orchestrator.create(message), entities={"Counter": fn},
                         live_session=live)
    driver.start()
    done = driver.deliver()
    assert done is not None and output(done) == "boom!"


# -- entity side --------------------------------------------------------------------------------


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_entity_signal_then_call(v2: bool) -> None:
    """test_entity_signal_then_call, test_entity_signal_then_call_with_pystein: add 3
    (signalled), then get (called): the call's result, state 3."""
    fn = v2_entity(SPECS["counter_v2"]) if v2 else v1_entity(counter)
    entity, answers = run_entity(fn, [("add", 3, True), ("get", None, False)])
    assert [json.loads(a["result"]) for a in answers] == ["The state is now: 3"]
    assert entity.state == 3 and entity.scheduler["exists"] is True
    # The same batch given to the SDK's own entity code, as the Azure host would:
    azure = sdk_batch(counter, [("add", 3), ("get", None)])
    assert json.loads(azure["results"][1]["result"]) == "The state is now: 3"
    assert json.loads(azure["entityState"]) == 3


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_entity_raises_exception(v2: bool) -> None:
    """test_entity_raises_exception, test_entity_raises_exception_with_pystein: the error
    is "boom!" and no state is written."""
    fn = v2_entity(SPECS["exploding_v2"]) if v2 else v1_entity(exploding)
    entity, (answer,) = run_entity(fn, [("get", None, False)])
    assert json.loads(answer["result"]) == "boom!" and "exceptionType" in answer
    assert entity.state is None and entity.scheduler["exists"] is False
    azure = sdk_batch(exploding, [("get", None)])
    assert azure["results"][0]["isError"] is True
    assert json.loads(azure["results"][0]["result"]) == "boom!"


def test_a_failed_operation_is_rolled_back() -> None:
    """test_entity_raises_exception, with an operation that changes the state before it
    raises. Documented difference (docs/azure-apps.md): durable rolls the operation back; the
    SDK on Azure keeps the change (its batch answer holds the new state)."""

    def add_then_fail(context: df.DurableEntityContext) -> None:
        context.set_state(context.get_state(lambda: 0) + 100)
        raise Exception("boom!")

    entity, (answer,) = run_entity(v1_entity(add_then_fail), [("add", None, False)],
                                   existing=3)
    assert "exceptionType" in answer and entity.state == 3
    azure = sdk_batch(add_then_fail, [("add", None)], state=3)
    assert azure["results"][0]["isError"] is True and json.loads(azure["entityState"]) == 103


def test_an_operation_without_a_result_returns_none() -> None:
    """test_entity_signal_then_call, the second operation setting no result. Documented
    difference (docs/azure-apps.md): durable answers None; the SDK on Azure can repeat the
    previous operation's result in the same batch."""

    def quiet_get(context: df.DurableEntityContext) -> None:
        value = context.get_state(lambda: 0)
        if context.operation_name == "add":
            context.set_state(value + context.get_input())
            context.set_result("added")

    _, answers = run_entity(v1_entity(quiet_get), [("add", 3, False), ("get", None, False)])
    assert [json.loads(a["result"] or "null") for a in answers] == ["added", None]
    azure = sdk_batch(quiet_get, [("add", 3), ("get", None)])
    assert [json.loads(r["result"]) for r in azure["results"]] == ["added", "added"]


@pytest.mark.parametrize(("operation", "runs"), [(None, False), ("", True)],
                         ids=["missing", "empty"])
def test_operation_names(operation: str | None, runs: bool, live: bool) -> None:
    """test_call_entity_sent, with no operation name. Documented (docs/entities.md): a
    missing name is refused (the orchestration fails, nothing is sent), as the Durable
    extension refuses it; an empty name is a name, and the entity runs it."""

    def unnamed(context: df.DurableOrchestrationContext):
        return (yield context.call_entity(COUNTER, operation))

    driver = SuiteDriver(df.Orchestrator.create(unnamed),
                         entities={"Counter": v1_entity(counter)}, live_session=live)
    first = driver.start()
    assert atomic(driver.sdk) == [("CallEntity", operation, "null")]
    if not runs:
        assert first.status is Status.Failed and first.actions == []
        assert output(first).endswith("An entity operation needs a name.")
        return
    assert request_of(first.actions[0])["op"] == ""
    done = driver.deliver()
    assert done is not None and output(done) == "The state is now: 0"
