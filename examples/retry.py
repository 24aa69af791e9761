"""Retries: call a flaky activity with exponential back-off.

Each wait between attempts is a durable timer recorded in history, so a restart in the middle
of a back-off still waits the right time. ``handle`` decides which errors are worth retrying.

Run:  python examples/retry.py
"""

import asyncio
import tempfile
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)

_attempts: dict[str, int] = {}


def is_transient(error: Exception) -> bool:
    return isinstance(error, df.TaskFailedError) and error.error_type == "ConnectionError"


@app.orchestration_trigger(context_name="context")
def fetch_with_retry(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=100,
        max_number_of_attempts=5,
        backoff_coefficient=2.0,
        max_retry_interval_in_milliseconds=1000,
        handle=is_transient,
    )
    try:
        return (yield context.call_activity_with_retry("fetch", options, context.get_input()))
    except df.TaskFailedError as error:
        return f"gave up: {error.error_type}: {error.failure.message}"


@app.activity_trigger(input_name="url")
def fetch(url: str) -> str:
    _attempts[url] = _attempts.get(url, 0) + 1
    if url.endswith("/missing"):
        raise FileNotFoundError(f"{url} does not exist")  # not transient: no retry
    if _attempts[url] < 3:
        raise ConnectionError(f"attempt {_attempts[url]} timed out")
    return f"fetched {url} on attempt {_attempts[url]}"


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "retry.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        for url in ("https://example.test/data", "https://example.test/missing"):
            instance_id = await host.client.start_new("fetch_with_retry", client_input=url)
            status = await host.client.wait_for_completion(instance_id, timeout=30)
            history = (await host.client.get_status(instance_id, show_history=True)).history
            waits = sum(1 for event in history if event["EventType"] == "TimerFired")
            print(f"{url}: {status.output} ({_attempts[url]} attempts, {waits} back-off timers)")


if __name__ == "__main__":
    asyncio.run(main())
