"""Singleton orchestrators over HTTP: the Durable Functions article's flow, ported to durable.

    durable run examples/singleton/function_app.py

    # start the singleton job "nightly" (202 + check-status URLs)
    curl -i -X POST http://127.0.0.1:7071/api/orchestrators/singleton_job/nightly
    # again while it runs: 409
    curl -i -X POST http://127.0.0.1:7071/api/orchestrators/singleton_job/nightly
    # let it finish (it waits for a "stop" event), then it can be started again
    curl -i -X POST -H 'Content-Type: application/json' -d '"done"' \
        http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/nightly/raiseEvent/stop

`http_start_single` is the article's code, unchanged apart from imports: check `get_status`,
start if there is no instance or it finished, else answer 409. In Azure that check-then-start
is racy; here it is not, because `start_new` is atomic: of two callers that both pass the
check, one starts the instance and the other's `start_new` raises
`InstanceAlreadyExistsError`, which `durable run` answers with 409 (see docs/singletons.md).

`http_start_explicit` is the direct way: no check, just start and turn the error into a 409.
"""

import json
import logging
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)

# Every execution of the job appends one line here, so "exactly one ran" can be checked.
RUNS_LOG = Path(__file__).with_name("runs.log")


@app.route(route="orchestrators/{functionName}/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start_single(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = req.route_params["instanceId"]
    function_name = req.route_params["functionName"]
    existing_instance = await client.get_status(instance_id)

    if not existing_instance or existing_instance.runtime_status in [
        df.OrchestrationRuntimeStatus.Completed,
        df.OrchestrationRuntimeStatus.Failed,
        df.OrchestrationRuntimeStatus.Terminated,
    ]:
        instance_id = await client.start_new(function_name, instance_id)
        logging.info(f"Started orchestration with ID = '{instance_id}'.")
        return client.create_check_status_response(req, instance_id)
    else:
        return df.HttpResponse(
            body=f"An instance with ID '{instance_id}' already exists.",
            status_code=409,
        )


@app.route(route="explicit/orchestrators/{functionName}/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start_explicit(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = req.route_params["instanceId"]
    try:
        await client.start_new(req.route_params["functionName"], instance_id)
    except df.InstanceAlreadyExistsError as error:
        body = {"error": str(error), "runtimeStatus": error.status}
        return df.HttpResponse(json.dumps(body), status_code=409, mimetype="application/json")
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def singleton_job(context: df.DurableOrchestrationContext):
    """A job that must never run twice at once: record the run, then wait until told to stop."""
    run = yield context.call_activity("record_run", context.instance_id)
    context.set_custom_status("waiting for stop")
    reason = yield context.wait_for_external_event("stop")
    return {"run": run, "stopped": reason}


@app.activity_trigger(input_name="instance_id")
def record_run(instance_id: str) -> int:
    with RUNS_LOG.open("a") as log:
        log.write(instance_id + "\n")
    return sum(1 for _ in RUNS_LOG.open())
