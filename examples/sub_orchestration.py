"""Sub-orchestrations: a parent runs one child orchestration per device, in parallel.

A child is a full orchestration with its own instance ID and history; its return value (or its
failure, as ``durable.TaskFailedError``) comes back to the parent like an activity's.

Run:  python examples/sub_orchestration.py
"""

import asyncio
import tempfile
from pathlib import Path

import durable as df

app = df.DFApp(http_auth_level=df.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def provision_all(context: df.DurableOrchestrationContext):
    devices = context.get_input()
    children = [
        context.call_sub_orchestrator("provision_device", device,
                                      instance_id=f"{context.instance_id}-{device}")
        for device in devices
    ]
    results = []
    for device, child in zip(devices, children, strict=True):
        try:
            results.append((yield child))
        except df.TaskFailedError as error:
            results.append(f"{device}: failed ({error.failure.message})")
    return results


@app.orchestration_trigger(context_name="context")
def provision_device(context: df.DurableOrchestrationContext):
    device = context.get_input()
    key = yield context.call_activity("create_key", device)
    yield context.call_activity("register", {"device": device, "key": key})
    return f"{device}: registered (parent {context.parent_instance_id})"


@app.activity_trigger(input_name="device")
def create_key(device: str) -> str:
    return f"key-{device}"


@app.activity_trigger(input_name="registration")
def register(registration: dict) -> None:
    if registration["device"] == "toaster":
        raise ConnectionError("the toaster does not answer")


async def main() -> None:
    storage = Path(tempfile.mkdtemp()) / "devices.db"
    async with df.Host(app, storage=f"sqlite:///{storage}") as host:
        instance_id = await host.client.start_new(
            "provision_all", "fleet", ["sensor", "camera", "toaster"]
        )
        status = await host.client.wait_for_completion(instance_id, timeout=30)
        print(f"{status.runtime_status.value}:")
        for line in status.output:
            print(f"  {line}")


if __name__ == "__main__":
    asyncio.run(main())
