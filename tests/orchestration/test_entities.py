"""The entity executor and the orchestrator's entity calls, on hand-built messages (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import durable as df
from durable.errors import InvalidInputError
from durable.history import EventRaised, EventSent, OrchestratorStarted
from durable.orchestration.actions import SendEvent
from durable.orchestration.entity_ids import (
    LOCK_GRANTED,
    EntityId,
    EntityRequest,
    release_json,
    response_json,
)
from durable.orchestration.entity_runtime import EntityRuntime, parse_scheduler_state
from durable.orchestration.runtime import execute
from durable.status import OrchestrationRuntimeStatus as Status
from tests.orchestration.test_replay import T0, Driver, started

COUNTER = EntityId("Counter", "k")


def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
    elif operation == "fail":
        context.set_state(value + 1000)
        context.signal_entity(EntityId("other", "x"), "never")
        raise ValueError("refused")
    elif operation == "echo_new":
        context.set_result(context.is_newly_constructed)
        return
    elif operation == "bye":
        context.destruct_on_exit()
        return
    context.set_state(value)
    context.set_result(value)


def request(op: str | None, value: Any = None, *, parent: str | None = "orch",
            signal: bool = False, rid: str | None = None,
            lockset: list[str] | None = None, pos: int = 0) -> EventRaised:
    message = EntityRequest(rid or f"r-{op}-{value}", op, signal=signal,
                            input=json.dumps(value) if op is not None else None, parent=parent,
                            parent_execution="exec", lockset=lockset, position=pos)
    return EventRaised(timestamp=T0, name="op", input=message.to_json())


def release(parent: str, lock_id: str) -> EventRaised:
    return EventRaised(timestamp=T0, name="release", input=release_json(parent, lock_id))


def responses(actions: list[Any]) -> dict[str, Any]:
    out = {}
    for action in actions:
        assert isinstance(action, SendEvent)
        if action.name not in ("op", "release"):
            out[action.name] = json.loads(action.input or "null")
    return out


def state_of(runtime: EntityRuntime) -> Any:
    return runtime.state


# -- the executor ------------------------------------------------------------------------------


def test_operations_run_in_order_and_answer_their_callers() -> None:
    runtime = EntityRuntime(counter, COUNTER, None)
    decision = runtime.run_episode([request("add", 2, rid="a"), request("add", 3, rid="b"),
                                    request("get", rid="c")], T0)
    answers = responses(decision.actions)
    assert [json.loads(answers[k]["result"]) for k in "abc"] == [2, 5, 5]
    assert state_of(runtime) == 5
    assert parse_scheduler_state(decision.entity_state)["exists"] is True
    assert all(a.execution_id == "exec" for a in decision.actions)


def test_a_failing_operation_is_rolled_back_and_the_next_one_runs() -> None:
    runtime = EntityRuntime(counter, COUNTER, None)
    runtime.run_episode([request("add", 1, rid="a")], T0)
    decision = runtime.run_episode([request("fail", rid="f"), request("add", 1, rid="b")], T0)
    answers = responses(decision.actions)
    assert answers["f"]["exceptionType"] == "ValueError"
    assert answers["f"]["failureDetails"]["message"] == "refused"
    assert json.loads(answers["b"]["result"]) == 2  # the failed op's +1000 is gone
    assert not any(a.instance_id == "@other@x" for a in decision.actions)  # its signal too
    assert state_of(runtime) == 2


def test_state_survives_a_cold_start_from_the_stored_scheduler_state() -> None:
    first = EntityRuntime(counter, COUNTER, None)
    stored = first.run_episode([request("add", 7, signal=True)], T0).entity_state
    second = EntityRuntime(counter, COUNTER, stored)
    decision = second.run_episode([request("get", rid="g")], T0)
    assert json.loads(responses(decision.actions)["g"]["result"]) == 7


def test_newly_constructed_delete_and_destruct() -> None:
    runtime = EntityRuntime(counter, COUNTER, None)
    decision = runtime.run_episode([request("echo_new", rid="n1"), request("add", 1, rid="a"),
                                    request("echo_new", rid="n2")], T0)
    answers = responses(decision.actions)
    assert json.loads(answers["n1"]["result"]) is True
    assert json.loads(answers["n2"]["result"]) is False
    runtime.run_episode([request("bye", signal=True)], T0)
    assert parse_scheduler_state(runtime.run_episode([], T0).entity_state)["exists"] is False
    runtime.run_episode([request("add", 5, signal=True), request("delete", signal=True)], T0)
    assert runtime.scheduler["exists"] is False and runtime.state is None


def test_a_lock_holds_back_other_callers_until_released() -> None:
    runtime = EntityRuntime(counter, COUNTER, None)
    lock = request(None, parent="holder", rid="L", lockset=[COUNTER.instance_id])
    decision = runtime.run_episode([lock, request("add", 1, parent="other", rid="o"),
                                    request("add", 10, parent="holder", rid="h")], T0)
    answers = responses(decision.actions)
    assert json.loads(answers["L"]["result"]) == LOCK_GRANTED
    assert "o" not in answers and json.loads(answers["h"]["result"]) == 10
    assert len(runtime.scheduler["queue"]) == 1
    # A release from someone else changes nothing; the holder's release lets "o" run.
    assert responses(runtime.run_episode([release("other", "L")], T0).actions) == {}
    decision = runtime.run_episode([release("holder", "L")], T0)
    assert json.loads(responses(decision.actions)["o"]["result"]) == 11
    assert runtime.scheduler["lock"] is None and runtime.scheduler["queue"] == []


def test_lock_requests_travel_the_lockset_in_order() -> None:
    lockset = ["@a@1", "@b@2", "@c@3"]
    first = EntityRuntime(counter, EntityId("a", "1"), None)
    decision = first.run_episode([request(None, rid="L", lockset=lockset)], T0)
    [onward] = decision.actions
    assert onward.instance_id == "@b@2" and EntityRequest.from_json(onward.input).position == 1
    last = EntityRuntime(counter, EntityId("c", "3"), None)
    decision = last.run_episode([request(None, rid="L", lockset=lockset, pos=2)], T0)
    [granted] = decision.actions
    assert granted.instance_id == "orch" and granted.name == "L"


def test_a_release_that_overtakes_its_lock_request_cancels_it() -> None:
    runtime = EntityRuntime(counter, COUNTER, None)
    runtime.run_episode([release("orch", "L")], T0)  # the orchestration ended while acquiring
    decision = runtime.run_episode([request(None, rid="L", lockset=[COUNTER.instance_id])], T0)
    assert runtime.scheduler["lock"] is None and runtime.scheduler["released"] == []
    decision = runtime.run_episode([request("add", 1, parent="other", rid="o")], T0)
    assert json.loads(responses(decision.actions)["o"]["result"]) == 1


def test_an_unregistered_entity_answers_with_function_not_found() -> None:
    runtime = EntityRuntime(None, EntityId("ghost", "k"), None)
    decision = runtime.run_episode([request("add", 1, rid="a")], T0)
    assert responses(decision.actions)["a"]["exceptionType"] == (
        "durable.errors.FunctionNotFoundError")


def test_entity_ids() -> None:
    assert str(EntityId("Counter", "Key")) == "@counter@Key"
    assert EntityId.from_instance_id("@counter@a@b") == EntityId("counter", "a@b")
    for name, key in [("", "k"), ("n", ""), ("a@b", "k"), ("n", "a/b"), ("n", "x\x00"),
                      ("n", "k" * 300)]:
        with pytest.raises(InvalidInputError):
            EntityId(name, key)
    with pytest.raises(InvalidInputError):
        EntityId.from_instance_id("counter@k")


# -- from an orchestrator ----------------------------------------------------------------------


def sent(decision: Any) -> list[SendEvent]:
    return [a for a in decision.actions if isinstance(a, SendEvent)]


def answer(to: SendEvent, result: Any = None, error: str | None = None) -> EventRaised:
    rid = EntityRequest.from_json(to.input).id
    failure = df.FailureDetails("ValueError", error) if error else None
    return EventRaised(timestamp=T0, name=rid,
                       input=response_json(json.dumps(result), failure))


def test_call_entity_is_an_event_sent_and_replays() -> None:
    def calls(context: df.DurableOrchestrationContext):
        first = yield context.call_entity(COUNTER, "add", 1)
        try:
            yield context.call_entity("@counter@k", "fail")
        except df.TaskFailedError as error:
            return [first, str(error)]

    driver = Driver(calls)
    [call] = sent(driver.step(started()))
    assert call.instance_id == "@counter@k" and call.name == "op"
    assert any(isinstance(e, EventSent) and json.loads(e.input or "")["id"] for e in
               driver.history)
    [call2] = sent(driver.step(answer(call, 1)))
    decision = driver.step(answer(call2, error="refused"))
    assert decision.status is Status.Completed
    assert json.loads(decision.output or "") == [
        1, "call_entity('@counter@k', 'fail') failed: ValueError: refused"]
    # A cold replay of that history gets the same answer (request IDs are deterministic).
    replayed = execute(calls, driver.history[:-1], [], T0 + 100)
    assert replayed.output == decision.output


def test_a_critical_section_releases_on_exit_and_at_the_end() -> None:
    a, b = EntityId("account", "a"), EntityId("account", "b")

    def transfer(context: df.DurableOrchestrationContext):
        with (yield context.lock([b, a])) as section:
            assert context.is_locked and section.entities == [a, b]
            yield context.call_entity(a, "add", -1)
        assert not context.is_locked
        held = yield context.lock([a])
        return held is not None  # ends holding the lock: released at the end

    driver = Driver(transfer)
    [lock] = sent(driver.step(started()))
    assert lock.instance_id == "@account@a"  # the global order, not the caller's
    assert EntityRequest.from_json(lock.input).lockset == ["@account@a", "@account@b"]
    granted = EventRaised(timestamp=T0, name=EntityRequest.from_json(lock.input).id,
                          input=response_json(json.dumps(LOCK_GRANTED)))
    [call] = sent(driver.step(granted))
    decision = driver.step(answer(call, 0))
    releases = [s for s in sent(decision) if s.name == "release"]
    assert sorted(r.instance_id for r in releases) == ["@account@a", "@account@b"]
    [relock] = [s for s in sent(decision) if s.name == "op"]
    granted = EventRaised(timestamp=T0, name=EntityRequest.from_json(relock.input).id,
                          input=response_json(json.dumps(LOCK_GRANTED)))
    decision = driver.step(granted)
    assert decision.status is Status.Completed
    assert [s.instance_id for s in sent(decision) if s.name == "release"] == ["@account@a"]


def test_terminating_while_acquiring_releases_the_whole_lockset() -> None:
    from durable.history import ExecutionTerminated

    def waits(context: df.DurableOrchestrationContext):
        yield context.lock([EntityId("x", "1"), EntityId("x", "2")])

    driver = Driver(waits)
    driver.step(started())
    decision = driver.step(ExecutionTerminated(timestamp=T0, reason="stop"))
    assert decision.status is Status.Terminated
    assert sorted(s.instance_id for s in sent(decision)) == ["@x@1", "@x@2"]


def test_terminating_inside_a_critical_section_releases_its_locks() -> None:
    from durable.history import ExecutionTerminated

    def holds(context: df.DurableOrchestrationContext):
        with (yield context.lock([COUNTER])):
            yield context.wait_for_external_event("never")

    driver = Driver(holds)
    [lock] = sent(driver.step(started()))
    granted = EventRaised(timestamp=T0, name=EntityRequest.from_json(lock.input).id,
                          input=response_json(json.dumps(LOCK_GRANTED)))
    driver.step(granted)
    decision = driver.step(ExecutionTerminated(timestamp=T0, reason="stop"))
    assert decision.status is Status.Terminated
    assert [(s.instance_id, s.name) for s in sent(decision)] == [("@counter@k", "release")]


@pytest.mark.parametrize("misuse", ["nested", "unlocked", "twice", "sub"])
def test_critical_section_misuse_is_a_clear_error(misuse: str) -> None:
    a, b = EntityId("account", "a"), EntityId("account", "b")

    def bad(context: df.DurableOrchestrationContext):
        task = context.lock([a])
        with (yield task):
            try:
                if misuse == "nested":
                    context.lock([b])
                elif misuse == "unlocked":
                    context.call_entity(b, "get")
                elif misuse == "twice":
                    yield task
                else:
                    context.call_sub_orchestrator("child")
            except InvalidInputError as error:
                return str(error)
        return "no error"

    driver = Driver(bad)
    [lock] = sent(driver.step(started()))
    granted = EventRaised(timestamp=T0, name=EntityRequest.from_json(lock.input).id,
                          input=response_json(json.dumps(LOCK_GRANTED)))
    decision = driver.step(granted)
    message = json.loads(decision.output or "null")
    expected = {"nested": "cannot be nested", "unlocked": "only the locked entities",
                "twice": "yielded twice", "sub": "not allowed inside a critical section"}
    assert expected[misuse] in message


def test_signal_entity_is_fire_and_forget_and_can_be_scheduled() -> None:
    from datetime import timedelta

    def signals(context: df.DurableOrchestrationContext):
        assert context.signal_entity(COUNTER, "add", 1) is None
        context.signal_entity(COUNTER, "add", 2, scheduled_time=timedelta(seconds=30))
        return "sent"
        yield  # a generator

    decision = execute(signals, [], [OrchestratorStarted(timestamp=T0), started()], T0)
    first, later = sent(decision)
    assert EntityRequest.from_json(first.input).signal and first.visible_at is None
    assert later.visible_at == T0 + 30


def box(context: df.DurableEntityContext) -> None:
    operation = context.operation_name
    if operation == "clear":
        context.set_state(None)
    elif operation == "get":
        context.set_result(context.get_state(lambda: "initial"))
    elif operation == "":
        context.set_result(["unnamed", context.get_input()])
        context.signal_entity(EntityId("Box", "other"), "", 1)


def test_a_none_state_reads_as_the_initializer_and_an_empty_name_is_a_name() -> None:
    """As in the Python SDK: get_state(initializer) after set_state(None) gives the
    initializer's value; "" is an operation (only a missing name is refused)."""
    runtime = EntityRuntime(box, EntityId("Box", "k"), None)
    decision = runtime.run_episode([request("clear", rid="a"), request("get", rid="b"),
                                    request("", 7, rid="c")], T0)
    answers = responses(decision.actions)
    assert json.loads(answers["b"]["result"]) == "initial"
    assert json.loads(answers["c"]["result"]) == ["unnamed", 7]
    sent = [a for a in decision.actions if isinstance(a, SendEvent) and a.name == "op"]
    assert [EntityRequest.from_json(a.input or "").operation for a in sent] == [""]
    with pytest.raises(InvalidInputError, match="must be a string"):
        df.DurableEntityContext(EntityId("Box", "k"), "x", None, None, False, T0).signal_entity(
            EntityId("Box", "other"), None)  # type: ignore[arg-type]
