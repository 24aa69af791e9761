"""Human interaction: wait for an approval event, or give up when a durable timer fires.

``task_any`` returns whichever task finished first; the losing timer is cancelled so the
orchestration can complete at once. The script runs the flow twice: once someone approves,
once nobody answers in time.

Run:  python examples/human_interaction.py
"""

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def approval_workflow(context: df.DurableOrchestrationContext):
    request = context.get_input()
    yield context.call_activity("request_approval", request)

    deadline = context.current_utc_datetime + timedelta(seconds=request["timeout_seconds"])
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("ApprovalEvent")
    context.set_custom_status("waiting for approval")

    winner = yield context.task_any([approval, timeout])
    if winner is approval:
        timeout.cancel()
        decision = approval.result
        return (yield context.call_activity("process_approval", decision))
    return (yield context.call_activity("escalate", request))


@app.activity_trigger(input_name="request")
def request_approval(request: dict) -> None:
    print(f"  [email] please approve {request['item']!r}")


@app.activity_trigger(input_name="decision")
def process_approval(decision: dict) -> str:
    return f"approved by {decision['approver']}"


@app.activity_trigger(input_name="request")
def escalate(request: dict) -> str:
    return f"escalated {request['item']!r}: no answer in {request['timeout_seconds']}s"


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "approval.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        client = host.client

        answered = await client.start_new(
            "approval_workflow", client_input={"item": "laptop", "timeout_seconds": 30}
        )
        # Wait until the orchestration is waiting, then approve it.
        while (await client.get_status(answered)).custom_status != "waiting for approval":
            await asyncio.sleep(0.01)
        await client.raise_event(answered, "ApprovalEvent", {"approver": "Ana"})
        status = await client.wait_for_completion(answered, timeout=30)
        print(f"answered: {status.runtime_status.value} -> {status.output}")

        ignored = await client.start_new(
            "approval_workflow", client_input={"item": "yacht", "timeout_seconds": 0.5}
        )
        status = await client.wait_for_completion(ignored, timeout=30)
        print(f"ignored: {status.runtime_status.value} -> {status.output}")


if __name__ == "__main__":
    asyncio.run(main())
