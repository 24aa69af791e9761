"""A project for the tests of what durable reads from a Functions project's settings and of the
admin API: a starter, a route that reports the client binding's hub, an orchestration, an
activity, a timer that only runs when asked to (its schedule fires once a year), and an
orchestration that calls the app itself at WEBSITE_HOSTNAME (read at import, as apps do).

Everything it does leaves a trace a test can read: ``ticks.log`` for each timer run (with the
instance it started), ``greetings.log`` for each activity call.
"""

import json
import os
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

HERE = Path(__file__).resolve().parent
SELF = os.environ.get("WEBSITE_HOSTNAME", "localhost:7071")

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["functionName"],
                                         client_input=json.loads(body) if body else None)
    return client.create_check_status_response(req, instance_id)


@app.route(route="hub", methods=["GET"])
@app.durable_client_input(client_name="client")
async def hub(req: func.HttpRequest, client):
    # The hub the client binding names (the SDK keeps the binding's JSON, parsed, here).
    bindings = client._orchestration_bindings
    return func.HttpResponse(json.dumps({"taskHubName": bindings.task_hub_name}),
                             mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def call_myself(context: df.DurableOrchestrationContext):
    response = yield context.call_http("GET", f"http://{SELF}/api/hub")
    return [SELF, response["statusCode"], json.loads(response["content"])]


@app.orchestration_trigger(context_name="context")
def greeter(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("greet", context.get_input()))


@app.activity_trigger(input_name="name")
def greet(name: str) -> str:
    with (HERE / "greetings.log").open("a") as log:
        log.write(f"{name}\n")
    return f"Hello {name}!"


@app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer", run_on_startup=False,
                   use_monitor=False)
@app.durable_client_input(client_name="client")
async def nightly(timer: func.TimerRequest, client) -> None:
    instance_id = await client.start_new("greeter", client_input="timer")
    with (HERE / "ticks.log").open("a") as log:
        log.write(json.dumps({"pastDue": timer.past_due, "instanceId": instance_id}) + "\n")
