"""A timer-triggered singleton: the other half of the "Singleton orchestrators" use case.

Every occurrence of the schedule (an app setting, ``%CleanupSchedule%``, from
local.settings.json) starts the ``cleanup`` orchestration under one fixed instance ID, unless
it is still running. Under the Functions host the timer fires on one instance at a time; under
durable it fires exactly once per occurrence however many workers run, and the start itself is
atomic, so there is never a second ``cleanup`` at once.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

app = func.FunctionApp()

RUNS_LOG = Path(__file__).resolve().parent / "cleanup-runs.log"
TICKS_LOG = Path(__file__).resolve().parent / "ticks.log"
INSTANCE_ID = "cleanup"


@app.timer_trigger(schedule="%CleanupSchedule%", arg_name="mytimer", run_on_startup=False,
                   use_monitor=False)
@app.durable_client_input(client_name="client")
async def cleanup_timer(mytimer: func.TimerRequest, client) -> None:
    with TICKS_LOG.open("a") as log:
        log.write("tick\n")
    existing_instance = await client.get_status(INSTANCE_ID)
    if existing_instance.runtime_status in [df.OrchestrationRuntimeStatus.Completed,
                                            df.OrchestrationRuntimeStatus.Failed,
                                            df.OrchestrationRuntimeStatus.Terminated, None]:
        minutes = float(os.environ.get("CleanupMinutes", "1"))  # noqa: SIM112 (an app setting)
        await client.start_new("cleanup", INSTANCE_ID, minutes)
        logging.info("Started the cleanup job.")
    else:
        logging.info("The cleanup job is still running; not starting another.")


@app.orchestration_trigger(context_name="context")
def cleanup(context: df.DurableOrchestrationContext):
    minutes = context.get_input()
    run = yield context.call_activity("record_cleanup", context.instance_id)
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=minutes))
    return run


@app.activity_trigger(input_name="instanceId")
def record_cleanup(instanceId: str) -> int:
    with RUNS_LOG.open("a") as log:
        log.write(instanceId + "\n")
    return RUNS_LOG.read_text().split().count(instanceId)
