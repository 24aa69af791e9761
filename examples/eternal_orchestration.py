"""Eternal orchestration: do some work, sleep, then ``continue_as_new`` with fresh history.

An orchestration that loops forever with ``while True`` would grow its history without end;
``continue_as_new`` restarts the same instance ID with a new input and an empty history
instead. The client stops this one with ``terminate`` after a few generations.

Run:  python examples/eternal_orchestration.py
"""

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def periodic_cleanup(context: df.DurableOrchestrationContext):
    state = context.get_input()
    removed = yield context.call_activity("clean_up", state["generation"])
    state = {"generation": state["generation"] + 1, "removed": state["removed"] + removed}
    context.set_custom_status(state)
    yield context.create_timer(timedelta(milliseconds=50))
    context.continue_as_new(state)


@app.activity_trigger(input_name="generation")
def clean_up(generation: int) -> int:
    return 3  # pretend three stale files were deleted


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "eternal.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        client = host.client
        instance_id = await client.start_new(
            "periodic_cleanup", "cleanup", {"generation": 0, "removed": 0}
        )
        while True:
            status = await client.get_status(instance_id)
            if status.custom_status and status.custom_status["generation"] >= 5:
                break
            await asyncio.sleep(0.02)
        history = (await client.get_status(instance_id, show_history=True)).history
        print(f"generation {status.custom_status['generation']} is running; "
              f"its history holds {len(history)} events, not the whole past")
        await client.terminate(instance_id, "maintenance window over")
        status = await client.wait_for_completion(instance_id, timeout=30)
        print(f"{status.runtime_status.value}: {status.output}")


if __name__ == "__main__":
    asyncio.run(main())
