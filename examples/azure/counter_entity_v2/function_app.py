"""A counter durable entity in the v2 model: an orchestrator signals it and calls it, HTTP
routes signal it and read its state through the client.

    durable run examples/azure/counter_entity_v2
    curl -X POST -d 5 http://127.0.0.1:7071/api/counters/c1/add
    curl http://127.0.0.1:7071/api/counters/c1
"""

import json
import logging

import azure.durable_functions as df
import azure.functions as func

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@myApp.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    current_value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        amount = context.get_input()
        current_value += amount
    elif operation == "reset":
        current_value = 0
    elif operation == "get":
        pass
    context.set_state(current_value)
    context.set_result(current_value)


@myApp.orchestration_trigger(context_name="context")
def add_then_get(context: df.DurableOrchestrationContext):
    entity_id = df.EntityId("Counter", "myCounter")
    context.signal_entity(entity_id, "add", 3)
    state = yield context.call_entity(entity_id, "get")
    return state


@myApp.route(route="orchestrators/{functionName}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client):
    instance_id = await client.start_new(req.route_params["functionName"])
    logging.info(f"Started orchestration with ID = '{instance_id}'.")
    return client.create_check_status_response(req, instance_id)


@myApp.route(route="counters/{key}/add", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def add_to_counter(req: func.HttpRequest, client):
    amount = json.loads(req.get_body() or b"1")
    await client.signal_entity(df.EntityId("Counter", req.route_params["key"]), "add", amount)
    return func.HttpResponse(status_code=202)


@myApp.route(route="counters/{key}", methods=["GET"])
@myApp.durable_client_input(client_name="client")
async def read_counter(req: func.HttpRequest, client):
    state = await client.read_entity_state(df.EntityId("Counter", req.route_params["key"]))
    if not state.entity_exists:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(json.dumps(state.entity_state), mimetype="application/json")
