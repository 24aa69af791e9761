"""The app the reliability tests serve with ``durable run`` and run in-process.

Healthy work (``chain``, ``wait_for_go``) next to functions that produce each value storage
cannot hold (``BAD_VALUES``) at each place a value enters durable (``poison_at``). Bad values
are made inside the process from a name, because most of them cannot travel as JSON input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


class Fragile:
    """A class with the Azure ``to_json``/``from_json`` envelope whose ``from_json`` fails on
    data it did not write (as user classes do)."""

    def __init__(self, value: int) -> None:
        self.value = value

    @staticmethod
    def to_json(obj: Fragile) -> dict[str, int]:
        return {"value": obj.value}

    @staticmethod
    def from_json(data: Any) -> Fragile:
        return Fragile(data["value"])


FRAGILE_ENVELOPE = {"__class__": "Fragile", "__module__": __name__, "__data__": None}

# Values that cannot be stored faithfully, by name. Each must be refused where it enters (a
# typed error, a 400) or fail only its own instance with a clear error.
BAD_VALUES: dict[str, Callable[[], Any]] = {
    "lone surrogate": lambda: os.fsdecode(b"name-\xff.txt"),
    "surrogate in a key": lambda: {os.fsdecode(b"\xfe"): 1},
    "NaN": lambda: float("nan"),
    "not JSON": lambda: object(),
    "failing from_json": lambda: dict(FRAGILE_ENVELOPE),
}
# Values that look dangerous but are valid JSON: carried losslessly, the instance completes.
ODD_VALUES: dict[str, Callable[[], Any]] = {
    "NUL and control characters": lambda: "a\x00b\x01\x1f\x7f",
    "malformed envelope (class not a string)":
        lambda: {"__class__": 1, "__module__": "os", "__data__": None},
    "malformed envelope (module a list)":
        lambda: {"__class__": "path", "__module__": [], "__data__": None},
    "envelope of a module function": lambda: {"__class__": "system", "__module__": "os",
                                              "__data__": "echo hi"},
    "deep nesting": lambda: _nested(200),
    "big integer": lambda: 10 ** 300,
}


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def make(name: str) -> Any:
    return {**BAD_VALUES, **ODD_VALUES}[name]()


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    """``steps`` -> [0, 1, ..., steps-1] echoed through one activity per step."""
    results = []
    for step in range(context.get_input()):
        results.append((yield context.call_activity("echo", step)))
    return results


@app.orchestration_trigger(context_name="context")
def wait_for_go(context: df.DurableOrchestrationContext):
    payload = yield context.wait_for_external_event("go")
    return {"got": payload}


@app.orchestration_trigger(context_name="context")
def echo_input(context: df.DurableOrchestrationContext):
    return context.get_input()


@app.orchestration_trigger(context_name="context")
def poison_at(context: df.DurableOrchestrationContext):
    """``[where, value name]``: produce the named value at that entry point."""
    data = context.get_input()
    if not (isinstance(data, list) and len(data) == 2 and data[0] in POISON_ENTRY_POINTS):
        return "continued"  # the execution continue_as_new started with the odd value
    where, name = data
    if where == "activity result":
        return (yield context.call_activity("produce", name))
    if where == "activity input":
        return (yield context.call_activity("echo", make(name)))
    if where == "orchestrator output":
        yield context.call_activity("echo", 1)
        return make(name)
    if where == "custom status":
        context.set_custom_status(make(name))
        yield context.call_activity("echo", 1)
        return "status set"
    if where == "sub-orchestration input":
        return (yield context.call_sub_orchestrator("echo_input", make(name)))
    if where == "continue_as_new input":
        yield context.call_activity("echo", 1)
        context.continue_as_new(make(name))
        return None
    if where == "entity state":
        store = df.EntityId("Store", context.instance_id)
        return (yield context.call_entity(store, "set", name))
    if where == "entity operation input":
        store = df.EntityId("Store", context.instance_id)
        return (yield context.call_entity(store, "echo", make(name)))
    raise ValueError(f"unknown entry point {where!r}")


POISON_ENTRY_POINTS = (
    "activity result", "activity input", "orchestrator output", "custom status",
    "sub-orchestration input", "continue_as_new input", "entity state",
    "entity operation input",
)


@app.entity_trigger(context_name="context")
def Store(context: df.DurableEntityContext):
    """``set`` stores the named value as the entity's state and returns it; ``echo`` returns
    its input."""
    if context.operation_name == "set":
        context.set_state(make(context.get_input()))
        context.set_result(context.get_state())
    else:
        context.set_result(context.get_input())


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.activity_trigger(input_name="name")
def produce(name: str) -> Any:
    return make(name)


@app.route(route="start-with/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_with(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    """Starts ``echo_input`` with the named value through the Python client (a user route)."""
    instance_id = await client.start_new("echo_input", None, make(req.route_params["name"]))
    return client.create_check_status_response(req, instance_id)
