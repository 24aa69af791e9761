"""The host around the Azure SDK's own test scenarios (tests/azure/test_sdk_suite*.py).

The SDK's suites (``tests/orchestrator/*.py`` of Azure/azure-functions-durable-python) build a
history by hand and check the state the SDK answers with. Here nothing is built by hand:
:class:`SuiteDriver` (the protocol driver of tests/azure/driver.py) lets durable's runtime
assign the work, completes it, fires timers, delivers events, and runs entity operations on
durable's entity engine through ``entity_callable``, each step an episode as the worker would
run it. After every episode it keeps the SDK's own answer to the cold full replay of the stored
history (:attr:`SuiteDriver.sdk`), so a test can check what the SDK suite checks (its actions,
``isDone``, ``output``, ``error``, ``customStatus``) beside what durable did with it (task IDs,
payloads, status).

v2 functions (``df.DFApp`` decorators) are indexed the way durable's loader indexes them
(``get_functions()``, then the same callables ``durable/azure/app.py`` registers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import azure.durable_functions as df

from durable.azure.bindings import (
    activity_callable,
    entity_callable,
    orchestrator_invoke,
)
from durable.azure.functions import Binding, FunctionSpec
from durable.azure.protocol import OUT_OF_PROC_LABEL, ActionType, activity_failure
from durable.azure.session import session_function
from durable.errors import FailureDetails
from durable.history import (
    EventRaised,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from durable.orchestration.actions import Decision, ScheduleActivity, ScheduleTimer, SendEvent
from durable.orchestration.entity_ids import REQUEST_EVENT, EntityId, EntityRequest
from durable.orchestration.entity_runtime import EntityRuntime
from tests.azure.driver import Driver

HERE = Path(__file__).parent
FAILURE = FailureDetails("ValueError", "Reasons", "Stuff and Things")  # the SDK suite's words


def v2_specs(app: Any) -> dict[str, FunctionSpec]:
    """The functions of a ``df.DFApp`` as durable's loader reads them (load_v2)."""
    specs: dict[str, FunctionSpec] = {}
    for function in app.get_functions():
        name = function.get_function_name() or function.get_user_function().__name__
        raw = json.loads(function.get_function_json())["bindings"]
        bindings = [Binding(b["type"], str(b.get("direction") or "in").lower(), b["name"], b)
                    for b in raw]
        specs[name] = FunctionSpec(name, bindings, function.get_user_function(), HERE,
                                   HERE / "test_sdk_suite.py")
    return specs


def v1_entity(fn: Callable[..., Any], name: str = "Counter") -> Callable[[Any], Any]:
    """A v1 entity (``df.Entity.create(fn)``) as durable registers it."""
    spec = FunctionSpec(name, [Binding("entityTrigger", "in", "context")],
                        df.Entity.create(fn), HERE, HERE / "test_sdk_suite.py")
    return entity_callable(spec)


def v2_entity(spec: FunctionSpec) -> Callable[[Any], Any]:
    return entity_callable(spec)


def v2_activity(spec: FunctionSpec) -> Callable[[Any], Any]:
    fn, is_async = activity_callable(spec, lambda: "{}")
    assert not is_async
    return fn


def sdk_answer(text: str) -> dict[str, Any]:
    """The SDK's state JSON: a handle's return value, or the text of the exception it raised
    for a failing orchestrator (``<error>\\n\\n$OutOfProcData$:<state>``)."""
    at = text.find(OUT_OF_PROC_LABEL)
    if at < 0:
        return dict(json.loads(text))
    state = dict(json.loads(text[at + len(OUT_OF_PROC_LABEL):]))
    state.setdefault("error", text[:at])
    return state


def flat(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The SDK's atomic actions, compound ones opened (the SDK shows a retried task as a
    compound action holding it)."""
    out: list[dict[str, Any]] = []

    def walk(actions: Iterable[dict[str, Any]]) -> None:
        for action in actions:
            if ActionType(action["actionType"]) in (ActionType.WhenAll, ActionType.WhenAny):
                walk(action.get("compoundActions") or [])
            else:
                out.append(action)

    for group in state["actions"]:
        walk(group)
    return out


def atomic(state: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """:func:`flat` as (action type, function, event or operation name, input): what the SDK
    suites compare (``actionType``, ``functionName``, ``input``)."""
    return [(ActionType(action["actionType"]).name,
             action.get("functionName") or action.get("externalEventName")
             or action.get("operation"), action.get("input")) for action in flat(state)]


def top_level(state: dict[str, Any]) -> list[str]:
    """The types of the SDK's top-level actions (compound ones not opened)."""
    return [ActionType(a["actionType"]).name for group in state["actions"] for a in group]


def activity_error(name: str, failure: FailureDetails = FAILURE) -> str:
    """The error an activity's failure becomes in the SDK (``f"{Reason} \\n {Details}"``,
    the shape the SDK suites assert), with the Reason and Details the Azure host writes."""
    reason, details = activity_failure(name, failure.error_type, failure.message,
                                       failure.details)
    return f"{reason} \n {details}"


class SuiteDriver(Driver):
    """:class:`Driver`, plus the SDK's answers, real activities and durable's entities.

    ``handle`` is the ``Orchestrator.create`` handle (the live session is built from it);
    ``invoke`` how the worker calls it (default: with the payload text), as
    ``orchestrator_invoke`` does for a loaded function. ``entities`` maps entity names to
    durable entity functions (``entity_callable``)."""

    def __init__(
        self,
        handle: Callable[..., Any],
        *,
        invoke: Callable[[str], Any] | None = None,
        entities: dict[str, Callable[[Any], Any]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(handle, **options)
        self._call = invoke or handle
        self.handle = self._answering
        self.answers: list[dict[str, Any]] = []
        self.in_protocol = False  # inside a protocol call (a full replay), not a session's
        self.replay_notes: list[list[Any]] = []  # what the code noted, per protocol call
        self.session_notes: list[Any] = []  # what it noted when run by the live session
        self.entity_functions = {name.lower(): fn for name, fn in (entities or {}).items()}
        self.entities: dict[str, EntityRuntime] = {}

    @classmethod
    def v2(cls, spec: FunctionSpec, **options: Any) -> SuiteDriver:
        """A driver for a v2 orchestrator, called as durable's loader calls it."""
        assert session_function(spec.fn) is not None
        return cls(spec.fn, invoke=orchestrator_invoke(spec), name=spec.name, **options)

    def _answering(self, payload: str) -> Any:
        self.in_protocol = True
        self.replay_notes.append([])
        try:
            answer = self._call(payload)
        except Exception as exc:
            self.answers.append(sdk_answer(str(exc)))
            raise
        finally:
            self.in_protocol = False
        self.answers.append(sdk_answer(answer))
        return answer

    def note(self, value: Any) -> None:
        """For orchestrator code to record what it saw (a test probe), kept apart by who ran
        it: a full replay (the protocol) or the live session."""
        (self.replay_notes[-1] if self.in_protocol else self.session_notes).append(value)

    @property
    def sdk(self) -> dict[str, Any]:
        """The SDK's answer to the last cold full replay (the protocol's view)."""
        return self.answers[-1]

    # -- events for episodes that bring several at once ---------------------------------------

    def completion(self, task_id: int, result: Any) -> HistoryEvent:
        action = self.pending.pop(task_id)
        if isinstance(action, ScheduleActivity):
            return TaskCompleted(timestamp=self.now, task_scheduled_id=task_id,
                                 result=json.dumps(result))
        return SubOrchestrationInstanceCompleted(timestamp=self.now, task_scheduled_id=task_id,
                                                 result=json.dumps(result))

    def failure(self, task_id: int, failure: FailureDetails = FAILURE) -> HistoryEvent:
        action = self.pending.pop(task_id)
        if isinstance(action, ScheduleActivity):
            return TaskFailed(timestamp=self.now, task_scheduled_id=task_id, failure=failure)
        return SubOrchestrationInstanceFailed(timestamp=self.now, task_scheduled_id=task_id,
                                              failure=failure)

    def firing(self, timer_id: int) -> HistoryEvent:
        action = self.pending.pop(timer_id)
        assert isinstance(action, ScheduleTimer)
        return TimerFired(timestamp=self.now, timer_id=timer_id, fire_at=action.fire_at)

    def finish(self, task_id: int, result: Any) -> Decision:
        """Complete an activity or a sub-orchestration."""
        return self.episode([self.completion(task_id, result)])

    def flunk(self, task_id: int, failure: FailureDetails = FAILURE) -> Decision:
        """Fail an activity or a sub-orchestration."""
        return self.episode([self.failure(task_id, failure)])

    def run_activities(self) -> Decision | None:
        """Run every pending activity (in ID order) with the registered functions, as the
        worker does: one episode per result, an exception failing the task."""
        decision = None
        while True:
            ready = sorted(task_id for task_id, action in self.pending.items()
                           if isinstance(action, ScheduleActivity))
            if not ready:
                return decision
            action = self.pending[ready[0]]
            assert isinstance(action, ScheduleActivity)
            try:
                value = self.activities[action.name](json.loads(action.input or "null"))
            except Exception as exc:
                decision = self.flunk(ready[0], FailureDetails.from_exception(exc, "Traceback"))
            else:
                decision = self.finish(ready[0], value)

    # -- entities -------------------------------------------------------------------------------

    def deliver(self) -> Decision | None:
        """Hand every message the orchestration sent to its entity (one batch per entity, in
        the order sent), run it on durable's entity engine, and deliver each response back
        to the orchestration as the event the worker raises (one episode each)."""
        sent = sorted((task_id, action) for task_id, action in self.pending.items()
                      if isinstance(action, SendEvent))
        batches: dict[str, list[HistoryEvent]] = {}
        for task_id, action in sent:
            del self.pending[task_id]
            assert isinstance(action, SendEvent) and action.name == REQUEST_EVENT
            batches.setdefault(action.instance_id, []).append(
                EventRaised(timestamp=self.now, name=action.name, input=action.input))
        responses: list[SendEvent] = []
        for instance_id, events in batches.items():
            entity = self.entity(instance_id)
            out = entity.run_episode(events, self.now).actions
            responses.extend(a for a in out if isinstance(a, SendEvent))
        decision = None
        for response in responses:
            assert response.instance_id == self.started.instance_id
            decision = self.raise_event(response.name, response.input or "null")
        return decision

    def entity(self, instance_id: str) -> EntityRuntime:
        runtime = self.entities.get(instance_id)
        if runtime is None:
            entity_id = EntityId.from_instance_id(instance_id)
            runtime = EntityRuntime(self.entity_functions.get(entity_id.name), entity_id, None)
            self.entities[instance_id] = runtime
        return runtime


def run_entity(fn: Callable[[Any], Any], operations: list[tuple[str, Any, bool]],
               existing: Any = None) -> tuple[EntityRuntime, list[Any]]:
    """Run ``(operation, input, is_signal)`` requests as one batch on durable's entity engine
    (on an entity whose state is ``existing``, if not None), inputs encoded as an
    orchestration's ``call_entity``/``signal_entity`` sends them; the entity and the
    responses to the calls (decoded), in order."""
    stored = None if existing is None else json.dumps(
        {"exists": True, "state": json.dumps(existing)})
    runtime = EntityRuntime(fn, EntityId("Counter", "myCounter"), stored)
    events: list[HistoryEvent] = []
    for index, (operation, value, signal) in enumerate(operations):
        request = EntityRequest(f"r{index}", operation, signal=signal,
                                input=json.dumps(json.dumps(value)), parent="orch",
                                parent_execution="exec")
        events.append(EventRaised(timestamp=0.0, name=REQUEST_EVENT, input=request.to_json()))
    out = runtime.run_episode(events, 0.0).actions
    answers = [json.loads(a.input or "null") for a in out if isinstance(a, SendEvent)]
    return runtime, answers
