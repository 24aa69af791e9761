"""Function chaining: three activities in sequence, each output feeding the next step.

Run:  python examples/function_chaining.py
"""

import asyncio
import tempfile
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    result1 = yield context.call_activity("say_hello", "Tokyo")
    result2 = yield context.call_activity("say_hello", "Seattle")
    result3 = yield context.call_activity("say_hello", "London")
    return [result1, result2, result3]


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}!"


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "chaining.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        instance_id = await host.client.start_new("hello_sequence")
        status = await host.client.wait_for_completion(instance_id, timeout=30)
        print(f"{instance_id}: {status.runtime_status.value} -> {status.output}")


if __name__ == "__main__":
    asyncio.run(main())
