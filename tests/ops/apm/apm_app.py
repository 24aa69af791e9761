"""The app of tests/ops/test_apm_patches.py: an orchestration whose activity uses SQLite itself
(its own file, ``$APP_DB``), the use its APM is there to trace."""

from __future__ import annotations

import os
import sqlite3

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)
APP_QUERY = "SELECT upper(?)"


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(req: df.HttpRequest, client: df.DurableOrchestrationClient):
    instance_id = await client.start_new(req.route_params["name"])
    return client.create_check_status_response(req, instance_id)


@app.orchestration_trigger(context_name="context")
def greet(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("shout", "tokyo")
    second = yield context.call_activity("shout", "seattle")
    return [first, second]


@app.activity_trigger(input_name="city")
def shout(city: str) -> str:
    conn = sqlite3.connect(os.environ["APP_DB"])
    try:
        cursor = conn.cursor()  # OpenTelemetry traces statements run through a cursor
        cursor.execute(APP_QUERY, (city,))
        return f"Hello {cursor.fetchone()[0]}!"
    finally:
        conn.close()
