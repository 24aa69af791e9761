"""A durable counter entity driven over HTTP, written the way Durable Functions samples are.

    durable run examples/counter/function_app.py

    # add 5 to counter "c1" (one-way: 202), twice
    curl -i -X POST http://127.0.0.1:7071/api/counters/c1/add/5
    curl -i -X POST http://127.0.0.1:7071/api/counters/c1/add/5
    # read it (through the client) and through the management API
    curl -i http://127.0.0.1:7071/api/counters/c1
    curl -i http://127.0.0.1:7071/runtime/webhooks/durabletask/entities/Counter/c1
    # an orchestration that calls the entity and waits for its answers
    curl -i -X POST http://127.0.0.1:7071/api/counters/c1/double

The entity function handles every operation of every counter: ``add``, ``reset`` and ``get``.
Operations on one counter run one at a time, so concurrent ``add`` requests never lose an
update; an operation that raises is rolled back.
"""

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext):
    current_value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        amount = context.get_input()
        if not isinstance(amount, int):
            raise ValueError(f"add takes an integer, not {amount!r}")
        current_value += amount
    elif operation == "reset":
        current_value = 0
    elif operation == "get":
        pass
    else:
        raise ValueError(f"Counter has no operation {operation!r}")
    context.set_state(current_value)
    context.set_result(current_value)


@app.route(route="counters/{key}/add/{amount}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def add_to_counter(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    entity_id = df.EntityId("Counter", req.route_params["key"])
    await client.signal_entity(entity_id, "add", int(req.route_params["amount"]))
    return df.HttpResponse(status_code=202)


@app.route(route="counters/{key}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read_counter(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    entity_id = df.EntityId("Counter", req.route_params["key"])
    state = await client.read_entity_state(entity_id)
    if not state.entity_exists:
        return df.HttpResponse("no such counter", status_code=404)
    return df.HttpResponse(str(state.entity_state))


@app.route(route="counters/{key}/double", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_doubling(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new("double_counter", None, req.route_params["key"])
    return await client.wait_for_completion_or_create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def double_counter(context: df.DurableOrchestrationContext):
    """Read the counter and add its value to it, inside a critical section so no other
    caller's operation can slip in between the read and the write."""
    entity_id = df.EntityId("Counter", context.get_input())
    with (yield context.lock([entity_id])):
        value = yield context.call_entity(entity_id, "get")
        return (yield context.call_entity(entity_id, "add", value))
