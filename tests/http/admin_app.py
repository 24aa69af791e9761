"""A native app for the admin API tests: a monitored timer that never fires on its own (once a
year), with the client, an activity, an orchestrator and an entity. Runs write one JSON line
each to ``$ADMIN_TEST_LOG``."""

from __future__ import annotations

import asyncio
import json
import os

import durable as df

LOG = os.environ.get("ADMIN_TEST_LOG", "admin-test.log")

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


def _log(entry: dict) -> None:
    with open(LOG, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", use_monitor=True)
@app.durable_client_input(client_name="client")
async def yearly(timer: df.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    instance_id = await client.start_new("wrap", None, "from the timer")
    _log({"run": "yearly", "pastDue": timer.past_due, "status": timer.schedule_status,
          "instanceId": instance_id})


@app.activity_trigger(input_name="value")
def record(value: object) -> str:
    _log({"run": "record", "input": value})
    return "recorded"


@app.activity_trigger(input_name="seconds")
async def slow(seconds: float) -> None:
    """Takes its time, so a shutdown finds it running."""
    await asyncio.sleep(seconds)
    _log({"run": "slow", "input": seconds})


@app.orchestration_trigger(context_name="context")
def wrap(context: df.DurableOrchestrationContext):
    return [(yield context.call_activity("record", context.get_input()))]


@app.entity_trigger(context_name="context")
def tally(context: df.DurableEntityContext) -> None:
    context.set_state(context.get_state(lambda: 0) + 1)
