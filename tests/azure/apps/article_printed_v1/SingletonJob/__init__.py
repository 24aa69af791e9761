"""A background job that must never run twice at once: it records its run, then waits until
it is told to stop (an external event), so it stays Running while others try to start it."""

import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    job = context.get_input() or {}
    run = yield context.call_activity("RecordRun", context.instance_id)
    context.set_custom_status("waiting for stop")
    reason = yield context.wait_for_external_event("stop")
    return {"job": job, "run": run, "stopped": reason}


main = df.Orchestrator.create(orchestrator_function)
