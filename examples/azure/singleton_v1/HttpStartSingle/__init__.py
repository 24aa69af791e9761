"""The singleton starter of the "Singleton orchestrators" article, in the v1 layout.

The status check is the one the current article prints: ``runtime_status in [Completed,
Failed, Terminated, None]``. It works because, with the real SDK, ``get_status`` of an unknown
ID returns an *empty* status (``runtime_status`` None), never ``None``.

Two lines differ from the printed article, because as printed it cannot work with the SDK on
Azure either: it passes ``req.get_body()`` (bytes) as the input, which the SDK refuses to
serialize (TypeError, before any request is sent), and it answers the conflict with a ``dict``,
which the Python worker cannot encode as an HTTP response (the call fails with a 500). Here the
body is decoded as JSON and the conflict is a ``func.HttpResponse`` with status 409.
"""

import json
import logging

import azure.durable_functions as df
import azure.functions as func


async def main(req: func.HttpRequest, starter: str) -> func.HttpResponse:
    client = df.DurableOrchestrationClient(starter)
    instance_id = req.route_params['instanceId']
    function_name = req.route_params['functionName']

    existing_instance = await client.get_status(instance_id)

    if existing_instance.runtime_status in [df.OrchestrationRuntimeStatus.Completed,
                                            df.OrchestrationRuntimeStatus.Failed,
                                            df.OrchestrationRuntimeStatus.Terminated, None]:
        event_data = json.loads(req.get_body() or b"null")
        instance_id = await client.start_new(function_name, instance_id, event_data)
        logging.info(f"Started orchestration with ID = '{instance_id}'.")
        return client.create_check_status_response(req, instance_id)
    else:
        return func.HttpResponse(
            f"An instance with ID '{existing_instance.instance_id}' already exists.",
            status_code=409,
        )
