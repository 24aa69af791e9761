"""The app the operator tests (CLI, dashboard, telemetry) run: a little of everything."""

from __future__ import annotations

from datetime import timedelta

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def hello(context: df.DurableOrchestrationContext):
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    """Prepares, then waits for an Approval event (an hour at most), then finishes."""
    yield context.call_activity("say_hello", "approver")
    context.set_custom_status({"stage": "waiting for approval"})
    deadline = context.current_utc_datetime + timedelta(hours=1)
    timeout = context.create_timer(deadline)
    approved = context.wait_for_external_event("Approval")
    winner = yield context.task_any([approved, timeout])
    if winner == approved:
        timeout.cancel()
        context.set_custom_status({"stage": "approved"})
        return {"approved": approved.result}
    return {"approved": False}


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    yield context.call_activity("say_hello", "before")
    return (yield context.call_activity("explode", context.get_input()))


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=10, max_number_of_attempts=2)
    return (yield context.call_activity_with_retry("explode", options, "again"))


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    first = yield context.call_sub_orchestrator("hello")
    timer = context.current_utc_datetime + timedelta(milliseconds=50)
    yield context.create_timer(timer)
    return len(first)


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


def _check(value: object) -> None:
    raise ValueError(f"cannot handle {value!r}")


@app.activity_trigger(input_name="value")
def explode(value: object) -> object:
    _check(value)
    return value


@app.entity_trigger(context_name="context")
def Tally(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
    context.set_state(value)
    context.set_result(value)
