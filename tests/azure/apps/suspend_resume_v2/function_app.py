"""Suspend and resume through the Azure SDK's client, as an app's own HTTP functions (and the
tests apps write against them) use it. Test fixture for tests/azure/test_apps.py.

``POST /api/instances/{id}/{operation}`` calls ``client.suspend`` or ``client.resume`` once;
``.../{operation}/twice`` calls it, waits until the worker applied it, and calls it again.
Each answers with what the SDK did: ``null`` if it returned, else the text of what it raised.
"""

import asyncio
import json
import time

import azure.durable_functions as df
import azure.functions as func

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# The status each operation leads to, once a worker has applied it.
APPLIED = {"suspend": df.OrchestrationRuntimeStatus.Suspended,
           "resume": df.OrchestrationRuntimeStatus.Running}


@myApp.route(route="orchestrators/{functionName}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    instance_id = await client.start_new(req.route_params["functionName"])
    return client.create_check_status_response(req, instance_id)


@myApp.orchestration_trigger(context_name="context")
def wait_for_go(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("go")
    return value


async def _call(client, operation: str, instance_id: str):
    """None if the SDK call returned, else what it raised (its text)."""
    try:
        await getattr(client, operation)(instance_id, f"{operation} from the app")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@myApp.route(route="instances/{instanceId}/{operation}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def control_once(req: func.HttpRequest, client):
    raised = await _call(client, req.route_params["operation"], req.route_params["instanceId"])
    return func.HttpResponse(json.dumps({"raised": raised}), mimetype="application/json")


@myApp.route(route="instances/{instanceId}/{operation}/twice", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def control_twice(req: func.HttpRequest, client):
    instance_id, operation = req.route_params["instanceId"], req.route_params["operation"]
    first = await _call(client, operation, instance_id)
    deadline = time.monotonic() + 20
    while (await client.get_status(instance_id)).runtime_status != APPLIED[operation]:
        if time.monotonic() > deadline:
            return func.HttpResponse(f"{operation} was not applied within 20 s",
                                     status_code=504)
        await asyncio.sleep(0.02)
    second = await _call(client, operation, instance_id)
    return func.HttpResponse(json.dumps({"first": first, "second": second}),
                             mimetype="application/json")
