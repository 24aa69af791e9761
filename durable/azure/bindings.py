"""Calling a function the way the Python Functions worker does: arguments by binding name.

- ``httpTrigger`` -> an ``azure.functions.HttpRequest``; the ``http`` output is the return value
  (``$return``) or a ``func.Out`` parameter; what may come back is what the worker accepts: a
  ``func.HttpResponse`` or a ``str`` (a ``dict``, say, fails the call with the worker's error).
- ``durableClient`` / ``orchestrationClient`` -> the client binding JSON (reference §8.7) that
  ``df.DurableOrchestrationClient(starter)`` reads; its URLs point at durable's management API.
- ``activityTrigger`` -> the decoded input; ``timerTrigger`` -> a ``func.TimerRequest``.
- ``orchestrationTrigger`` -> the SDK's context payload (see :mod:`durable.azure.runtime`);
  ``entityTrigger`` -> one operation as the SDK's entity batch (:func:`entity_callable`).
- A parameter named ``context`` that is not a binding gets a ``func.Context``, as in Azure.

Anything else is refused when the project loads, naming the function and the binding.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc
from azure.functions.http import HttpRequest as WorkerHttpRequest
from azure.functions.timer import TimerRequest as WorkerTimerRequest

from durable import serialization
from durable.azure.functions import Binding, FunctionSpec
from durable.http_model import HttpRequest, HttpResponse, json_response
from durable.schedules.timers import TimerRequest

log = logging.getLogger("durable.azure")

CLIENT_BINDINGS = ("durableclient", "orchestrationclient")
Starter = Callable[[], str]


class _Out(func.Out):  # type: ignore[type-arg]
    """An output binding parameter (``message.set(response)``)."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class _TraceContext:
    trace_parent = ""
    trace_state = ""
    attributes: dict[str, str] = {}


class _RetryContext:
    retry_count = 0
    max_retry_count = 0
    exception = None


class InvocationContext(func.Context):
    """``func.Context`` for one invocation."""

    def __init__(self, function_name: str, directory: Path) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._directory = str(directory)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return None

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._directory

    @property
    def trace_context(self) -> Any:
        return _TraceContext()

    @property
    def retry_context(self) -> Any:
        return _RetryContext()


class Invoker:
    """Builds the keyword arguments of one function and calls it (sync ones in a thread)."""

    def __init__(self, spec: FunctionSpec, starter: Starter) -> None:
        self.spec = spec
        self._starter = starter
        self._clients = [b.name for b in spec.bindings if b.kind in CLIENT_BINDINGS]
        self._outs = [b.name for b in spec.bindings
                      if b.direction == "out" and b.kind == "http" and b.name != "$return"]
        try:
            parameters = inspect.signature(spec.fn).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        bound = {b.name for b in spec.bindings}
        self._wants_context = "context" in parameters and "context" not in bound
        self.is_async = inspect.iscoroutinefunction(spec.fn)

    def arguments(self, trigger: Binding, value: Any) -> tuple[dict[str, Any], dict[str, _Out]]:
        kwargs: dict[str, Any] = {trigger.name: value}
        if self._clients:
            starter = self._starter()
            for name in self._clients:
                kwargs[name] = starter
        outs = {name: _Out() for name in self._outs}
        kwargs.update(outs)
        if self._wants_context:
            kwargs["context"] = InvocationContext(self.spec.name, self.spec.directory)
        return kwargs, outs

    async def call_async(self, kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            return await self.spec.fn(**kwargs)
        result = await asyncio.to_thread(self.spec.fn, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


# -- HTTP ----------------------------------------------------------------------------------------


def to_func_request(request: HttpRequest) -> func.HttpRequest:
    return WorkerHttpRequest(
        method=request.method,
        url=request.url,
        headers=dict(request.headers),
        params=dict(request.params),
        route_params=dict(request.route_params),
        body_type="bytes",
        body=request.get_body(),
    )


def to_durable_response(value: Any, function_name: str) -> HttpResponse:
    """What an HTTP function gave back, as durable's response (the worker's rules)."""
    if isinstance(value, HttpResponse):
        return value
    if isinstance(value, func_abc.HttpResponse):
        headers = {name: str(v) for name, v in value.headers.items()}
        return HttpResponse(value.get_body() or b"", status_code=value.status_code,
                            headers=headers, mimetype=value.mimetype, charset=value.charset)
    if isinstance(value, str):
        return HttpResponse(value)
    if value is None:
        return HttpResponse(status_code=204)
    # The Python worker's own error for this (Azure answers the request with a 500).
    raise TypeError(
        f"Function '{function_name}': unable to encode outgoing TypedData: unsupported type "
        f"\"http\" for Python type \"{type(value).__name__}\" (return a func.HttpResponse or a "
        "str)."
    )


def conflict_body(exc: BaseException) -> dict[str, Any] | None:
    """durable's 409 body if ``exc`` is the SDK's plain Exception for a refused start.

    The SDK's ``start_new`` raises ``Exception(<response body>)`` for any status but 202/400.
    When the body is durable's "already exists" answer, the caller lost an atomic start race;
    it is answered 409, like a caller whose own status check saw the instance.
    """
    if type(exc) is not Exception or len(exc.args) != 1:
        return None
    body = exc.args[0]
    if isinstance(body, dict) and body.get("ExceptionType") == "InstanceAlreadyExistsError":
        return body
    return None


class HttpFunction:
    """The durable HTTP handler of one Azure HTTP function."""

    def __init__(self, spec: FunctionSpec, starter: Starter) -> None:
        self.spec = spec
        self.invoker = Invoker(spec, starter)
        trigger = spec.binding_of("httptrigger")
        assert trigger is not None
        self.trigger = trigger
        self.returns = any(b.name == "$return" for b in spec.bindings)
        self.__name__ = spec.name

    async def __call__(self, req: HttpRequest) -> HttpResponse:
        kwargs, outs = self.invoker.arguments(self.trigger, to_func_request(req))
        try:
            result = await self.invoker.call_async(kwargs)
        except Exception as exc:
            body = conflict_body(exc)
            if body is None:
                raise
            return json_response(body, 409)
        value = result if self.returns else None
        for out in outs.values():
            if out.get() is not None:
                value = out.get()
        return to_durable_response(value, self.spec.name)


# -- activities, timers, orchestrators ----------------------------------------------------------


def activity_callable(spec: FunctionSpec, starter: Starter) -> tuple[Callable[..., Any], bool]:
    """The activity's durable callable (takes the decoded input) and whether it is async."""
    invoker = Invoker(spec, starter)
    trigger = spec.binding_of("activitytrigger")
    assert trigger is not None

    if invoker.is_async:
        async def run_async(value: Any) -> Any:
            kwargs, _ = invoker.arguments(trigger, value)
            return await spec.fn(**kwargs)

        run_async.__name__ = spec.name
        return run_async, True

    def run(value: Any) -> Any:
        kwargs, _ = invoker.arguments(trigger, value)
        return spec.fn(**kwargs)

    run.__name__ = spec.name
    return run, False


def timer_callable(spec: FunctionSpec, starter: Starter) -> Callable[..., Any]:
    invoker = Invoker(spec, starter)
    trigger = spec.binding_of("timertrigger")
    assert trigger is not None

    async def run(timer: TimerRequest) -> None:
        request = WorkerTimerRequest(past_due=timer.past_due,
                                    schedule_status=timer.schedule_status,
                                    schedule=timer.schedule)
        kwargs, _ = invoker.arguments(trigger, request)
        await invoker.call_async(kwargs)

    run.__name__ = spec.name
    return run


class EntityOperationError(Exception):
    """An SDK entity's operation raised; the message is the SDK's (``str(exc)``)."""


def sdk_operation_input(value: Any) -> str:
    """An operation's input as the SDK's entity batch carries it: the JSON string of its JSON
    text (``get_input`` decodes twice).

    What the SDK sends (``call_entity``, ``signal_entity``) and text bodies of the HTTP API
    arrive here as that JSON text, a string. A JSON body of the HTTP API that is not a string
    (``-H 'Content-Type: application/json' -d 3``) arrives as the value itself: the Durable host
    hands the SDK its bare JSON text, which the 1.x SDK cannot decode (the operation fails with
    "the JSON object must be str, bytes or bytearray, not int"); durable encodes it like the
    rest, so the entity gets the value (docs/azure-apps.md)."""
    if value is None:
        return "null"
    return json.dumps(value if isinstance(value, str) else json.dumps(value))


def entity_callable(spec: FunctionSpec) -> Callable[[Any], Any]:
    """The durable entity function of an SDK entity (``df.Entity.create(fn)``).

    durable's entity executor runs operations one at a time; each becomes a one-operation
    batch of the SDK's entity protocol (reference §8.8): the entity's state as JSON text, the
    operation's input as the host encodes it (the JSON string of its JSON text, which the SDK's
    ``get_input`` decodes twice), and back the new state and the operation's result or error.
    """
    fn = spec.fn

    def run(context: Any) -> None:
        exists = not context.is_newly_constructed
        payload = {
            "self": {"name": context.entity_name, "key": context.entity_key},
            "exists": exists,
            "state": serialization.dumps(context.get_state()) if exists else None,
            "batch": [{"name": context.operation_name,
                       "input": sdk_operation_input(context.get_input()), "isSignal": False}],
        }
        out = json.loads(fn(func.EntityContext(json.dumps(payload))))
        (result,) = out["results"]
        if result.get("isError"):
            raise EntityOperationError(serialization.loads(result.get("result")))
        if out.get("entityExists"):
            context.set_state(serialization.loads(out.get("entityState")))
        else:
            context.destruct_on_exit()
        context.set_result(serialization.loads(result.get("result")))

    run.__name__ = spec.name
    return run


def orchestrator_invoke(spec: FunctionSpec) -> Callable[[str], Any]:
    """Call the orchestrator's entry point (the SDK's ``Orchestrator.create`` handle) with the
    trigger value, as the worker passes it (an ``OrchestrationContext``)."""
    fn = spec.fn

    def invoke(payload: str) -> Any:
        return fn(func.OrchestrationContext(payload))

    invoke.__name__ = spec.name
    return invoke


__all__ = [
    "CLIENT_BINDINGS",
    "EntityOperationError",
    "HttpFunction",
    "InvocationContext",
    "Invoker",
    "activity_callable",
    "conflict_body",
    "entity_callable",
    "orchestrator_invoke",
    "sdk_operation_input",
    "timer_callable",
    "to_durable_response",
    "to_func_request",
]
