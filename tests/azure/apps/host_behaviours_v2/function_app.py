"""An app written for Azure that leans on what the Durable host does for the 1.x SDK: entity
inputs from the HTTP API, empty operation names, the wording of activity failures, events an
activity raises at its own instance, call_http's 202 polling, the SDK's entity state rules, and
what an orchestrator keeps from ``context.is_replaying``.
tests/azure/test_host_behaviours.py runs it under ``durable run`` (SQLite and PostgreSQL)."""

import json
import logging

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
_polled: dict[str, int] = {}


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["functionName"], None,
                                         json.loads(body) if body else None)
    logging.info("Started orchestration with ID = '%s'.", instance_id)
    return client.create_check_status_response(req, instance_id)


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    current_value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        current_value += context.get_input()
    elif context.operation_name == "reset":
        current_value = 0
    context.set_state(current_value)
    context.set_result(current_value)


@app.entity_trigger(context_name="context")
def Box(context: df.DurableEntityContext):
    operation = context.operation_name
    if operation == "clear":
        context.set_state(None)
    elif operation == "get":
        context.set_result(context.get_state(lambda: "initial"))
    elif operation == "peek":
        context.set_result("peeked")
    elif operation == "":
        context.set_result(["unnamed", context.get_input()])


@app.orchestration_trigger(context_name="context")
def entity_rules(context: df.DurableOrchestrationContext):
    box = df.EntityId("Box", context.get_input())
    yield context.call_entity(box, "clear")
    after_clear = yield context.call_entity(box, "get")
    peeked = yield context.call_entity(df.EntityId("Box", context.get_input() + "-new"), "peek")
    unnamed = yield context.call_entity(box, "", 7)
    return [after_clear, peeked, unnamed]


@app.orchestration_trigger(context_name="context")
def catch_failure(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("refuse", "the order")
    except Exception as exc:
        return str(exc)
    return "no failure"


@app.orchestration_trigger(context_name="context")
def replay_flags(context: df.DurableOrchestrationContext):
    seen = [context.is_replaying]
    first = yield context.call_activity("echo", "one")
    seen.append(context.is_replaying)
    second = yield context.call_activity("echo", "two")
    seen.append(context.is_replaying)
    return {"seen": seen, "results": [first, second]}


@app.activity_trigger(input_name="value")
def echo(value: str) -> str:
    return value


@app.activity_trigger(input_name="what")
def refuse(what: str) -> str:
    raise ValueError(f"cannot process {what}")


@app.orchestration_trigger(context_name="context")
def event_order(context: df.DurableOrchestrationContext):
    work = context.call_activity("ping_myself", context.instance_id)
    ping = context.wait_for_external_event("Ping")
    winner = yield context.task_any([work, ping])
    return "event first" if winner == ping else "activity first"


@app.activity_trigger(input_name="instanceId")
@app.durable_client_input(client_name="client")
async def ping_myself(instanceId: str, client) -> str:
    await client.raise_event(instanceId, "Ping", "pong")
    return "pinged"


@app.orchestration_trigger(context_name="context")
def poll_job(context: df.DurableOrchestrationContext):
    response = yield context.call_http("POST", context.get_input(), {"size": 3})
    return [response["statusCode"], response["content"]]


@app.route(route="jobs", methods=["POST"])
def submit_job(req: func.HttpRequest) -> func.HttpResponse:
    job = f"job{len(_polled) + 1}"
    _polled[job] = 0
    return func.HttpResponse(status_code=202, headers={
        "Location": f"/api/jobs/{job}", "Retry-After": "1"})


@app.route(route="jobs/{job}", methods=["GET"])
def job_status(req: func.HttpRequest) -> func.HttpResponse:
    job = req.route_params["job"]
    _polled[job] += 1
    if _polled[job] < 3:
        return func.HttpResponse(status_code=202, headers={
            "Location": f"/api/jobs/{job}", "Retry-After": "0"})
    return func.HttpResponse(f"{job} done after {_polled[job]} polls", status_code=200)
