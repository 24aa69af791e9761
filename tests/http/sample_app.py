"""The app the HTTP tests serve: orchestrators for every status, and routes at every auth level.

Also run as a real `durable run` process by the end-to-end tests (``tests/http/sample_app.py``).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def echo(context: df.DurableOrchestrationContext):
    return context.get_input()


@app.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext):
    """add / reset / get; any other operation fails (and is rolled back)."""
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += int(context.get_input())
    elif operation == "reset":
        value = 0
    elif operation != "get":
        raise ValueError(f"unknown operation {operation!r}")
    context.set_state(value)
    context.set_result(value)


@app.orchestration_trigger(context_name="context")
def doubler(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("double", context.get_input())
    return value


@app.orchestration_trigger(context_name="context")
def wait_for_go(context: df.DurableOrchestrationContext):
    context.set_custom_status({"waiting": "go"})
    payload = yield context.wait_for_external_event("go")
    return {"got": payload}


@app.orchestration_trigger(context_name="context")
def fails(context: df.DurableOrchestrationContext):
    raise ValueError("boom")


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    yield context.create_timer(timedelta(hours=1))
    return "woke"


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


@app.route(route="start/{name}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["name"], req.route_params.get("instanceId"),
        req.get_json() if body else None,
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="run/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def run_and_wait(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    timeout = int(req.params.get("timeout", "5000"))
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=timeout, retry_interval_in_milliseconds=10
    )


@app.route(route="links/{instanceId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def links(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    return client.create_http_management_payload(req.route_params["instanceId"])


@app.route(route="anonymous", methods=["GET"])
def anonymous(req: df.HttpRequest) -> str:
    return "anonymous ok"


@app.route(route="function-level", methods=["GET"], auth_level=df.AuthLevel.FUNCTION)
def function_level(req: df.HttpRequest) -> str:
    return "function ok"


@app.route(route="admin-level", methods=["GET"], auth_level=df.AuthLevel.ADMIN)
def admin_level(req: df.HttpRequest) -> str:
    return "admin ok"


@app.route(route="inspect/{*rest}")
def inspect_request(req: df.HttpRequest) -> dict:
    return {
        "method": req.method,
        "url": req.url,
        "params": req.params,
        "route_params": req.route_params,
        "content_type": req.headers.get("content-type"),
        "body": req.get_body().decode("utf-8", "replace"),
    }


@app.route(route="items/{id:int}", methods=["GET"])
def item_by_number(req: df.HttpRequest) -> dict:
    return {"kind": "number", "id": req.route_params["id"]}


@app.route(route="items/{name}", methods=["GET"])
def item_by_name(req: df.HttpRequest) -> dict:
    return {"kind": "name", "id": req.route_params["name"]}


@app.route(route="items/special", methods=["GET"])
def item_special(req: df.HttpRequest) -> dict:
    return {"kind": "literal"}


@app.route(route="returns/{kind}")
def returns(req: df.HttpRequest):
    kind = req.route_params["kind"]
    if kind == "none":
        return None
    if kind == "bytes":
        return b"\x00\x01"
    if kind == "list":
        return [1, 2, 3]
    if kind == "response":
        return df.HttpResponse("made", status_code=201, headers={"X-Made": "yes"})
    if kind == "json":
        return df.HttpResponse('{"a":1}', mimetype="application/json")
    if kind == "crash":
        raise RuntimeError("a bug in the handler")
    if kind == "parse":
        return req.get_json()
    return "text"


@app.orchestration_trigger(context_name="context")
def slow_job(context: df.DurableOrchestrationContext):
    result = yield context.call_activity("slow_step", context.get_input())
    return result


@app.activity_trigger(input_name="marker")
def slow_step(marker: str) -> str:
    """Takes a second (the work a shutdown must not lose); logs each start to ``marker``."""
    with Path(marker).open("a") as log:
        log.write("started\n")
    time.sleep(1.0)
    return "finished"
