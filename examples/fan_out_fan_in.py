"""Fan-out/fan-in: run one activity per work item in parallel, then aggregate the results.

The orchestrator schedules every activity before waiting for any of them; ``task_all`` returns
their results in the order the tasks were given, whatever order they finished in.

Run:  python examples/fan_out_fan_in.py
"""

import asyncio
import tempfile
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)

DOCUMENTS = {
    "intro.txt": "durable runs orchestrations on SQLite",
    "usage.txt": "start an orchestration then wait for it to finish",
    "faq.txt": "yes it replays history",
    "notes.txt": "activities may be plain functions or async def",
}


@app.orchestration_trigger(context_name="context")
def count_all_words(context: df.DurableOrchestrationContext):
    names = yield context.call_activity("list_documents")
    counts = yield context.task_all(
        [context.call_activity("count_words", name) for name in names]
    )
    return {
        "documents": len(names),
        "words": sum(counts),
        "per_document": dict(zip(names, counts, strict=True)),
    }


@app.activity_trigger(input_name="unused")
def list_documents() -> list[str]:
    return sorted(DOCUMENTS)


@app.activity_trigger(input_name="name")
async def count_words(name: str) -> int:
    await asyncio.sleep(0.01)  # pretend to read the document
    return len(DOCUMENTS[name].split())


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "fan_out.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        instance_id = await host.client.start_new("count_all_words")
        status = await host.client.wait_for_completion(instance_id, timeout=30)
        result = status.output
        print(f"{status.runtime_status.value}: {result['words']} words "
              f"in {result['documents']} documents")
        for name, count in result["per_document"].items():
            print(f"  {name}: {count}")


if __name__ == "__main__":
    asyncio.run(main())
