"""Monitor: poll an external job on a durable-timer loop until it is done or the monitor expires.

Each check is an activity; between checks the orchestrator sleeps on a durable timer, so the
monitor costs nothing while it waits and survives restarts. ``current_utc_datetime`` (not the
wall clock) decides when to give up, so replays make the same decisions.

Run:  python examples/monitor.py
"""

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)

# A stand-in for an external system: the job reports "done" on its fourth check.
_checks: dict[str, int] = {}


@app.orchestration_trigger(context_name="context")
def job_monitor(context: df.DurableOrchestrationContext):
    job = context.get_input()
    expires_at = context.current_utc_datetime + timedelta(seconds=job["expire_after_seconds"])
    interval = timedelta(milliseconds=job["poll_interval_ms"])
    checks = 0
    while context.current_utc_datetime < expires_at:
        state = yield context.call_activity("get_job_state", job["id"])
        checks += 1
        context.set_custom_status({"checks": checks, "last_state": state})
        if state == "done":
            yield context.call_activity("send_alert", f"job {job['id']} finished")
            return {"job": job["id"], "state": state, "checks": checks}
        yield context.create_timer(context.current_utc_datetime + interval)
    return {"job": job["id"], "state": "monitor expired", "checks": checks}


@app.activity_trigger(input_name="job_id")
def get_job_state(job_id: str) -> str:
    _checks[job_id] = _checks.get(job_id, 0) + 1
    return "done" if _checks[job_id] >= 4 else "running"


@app.activity_trigger(input_name="message")
def send_alert(message: str) -> None:
    print(f"  [alert] {message}")


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "monitor.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        job = {"id": "export-42", "poll_interval_ms": 100, "expire_after_seconds": 30}
        instance_id = await host.client.start_new("job_monitor", client_input=job)
        status = await host.client.wait_for_completion(instance_id, timeout=30)
        result = status.output
        print(f"{status.runtime_status.value}: job {result['job']} is {result['state']} "
              f"after {result['checks']} checks")


if __name__ == "__main__":
    asyncio.run(main())
