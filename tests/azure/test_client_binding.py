"""The SDK's own DurableOrchestrationClient, built from durable's client binding, against the
local RPC endpoint: every call it makes lands on durable's management API and works."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

import durable
from durable.azure import load_project
from tests.azure.conftest import EXAMPLES, copy_project

Status = df.OrchestrationRuntimeStatus


async def wait_for(client: df.DurableOrchestrationClient, instance_id: str, *wanted: Status
                   ) -> df.DurableOrchestrationStatus:
    for _ in range(1000):
        status = await client.get_status(instance_id)
        if status.runtime_status in wanted:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"{instance_id} never reached {wanted}")


async def test_every_sdk_client_call(tmp_path: Path) -> None:
    project = copy_project(EXAMPLES / "patterns_v2", tmp_path)
    app = load_project(project)
    async with durable.Host(app, storage=f"sqlite:///{tmp_path / 'c.db'}",
                            poll_interval=0.05) as host:
        starter = app.starter()
        binding = json.loads(starter)
        assert binding["taskHubName"] == "TestHubName"
        assert binding["rpcBaseUrl"].startswith("http://127.0.0.1:")
        assert binding["managementUrls"]["id"] == "INSTANCEID"
        client = df.DurableOrchestrationClient(starter)

        missing = await client.get_status("no-such-instance")
        assert missing is not None and not missing and missing.runtime_status is None

        instance_id = await client.start_new("hello_sequence")
        done = await wait_for(client, instance_id, Status.Completed)
        assert done.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]

        # Input round trip with the SDK's double encoding, and the status' view of it.
        waiting = await client.start_new("phone_verification", "approval-1",
                                          {"phone": "+1777", "timeoutSeconds": 60})
        assert waiting == "approval-1"
        status = await wait_for(client, waiting, Status.Running)
        assert json.loads(status.input_) == {"phone": "+1777", "timeoutSeconds": 60}
        with_history = await client.get_status(waiting, show_history=True)
        assert with_history.historyEvents[0]["EventType"] == "ExecutionStarted"

        try:
            await client.start_new("phone_verification", "approval-1", {"phone": "+1777"})
        except Exception as exc:  # the SDK's plain Exception, carrying durable's 409 body
            assert exc.args[0]["ExceptionType"] == "InstanceAlreadyExistsError"
        else:
            raise AssertionError("a second start of a running ID must fail")

        await client.suspend(waiting, "hold on")
        await wait_for(client, waiting, Status.Suspended)
        await client.resume(waiting, "go on")
        await wait_for(client, waiting, Status.Running)
        sms = project / "outbox" / "sms-+1777.json"
        for _ in range(1000):
            if sms.exists():
                break
            await asyncio.sleep(0.02)
        code = json.loads(sms.read_text())["body"][-4:]
        # raise_event double-encodes: the orchestrator receives the JSON text of the code,
        # which is not the code, exactly as on Azure (the SDK quirk is kept).
        await client.raise_event(waiting, "SmsChallengeResponse", code)
        await client.terminate(waiting, "enough")
        terminated = await wait_for(client, waiting, Status.Terminated)
        assert terminated.output == "enough"
        await client.terminate(waiting, "again")  # 410 is ignored by the SDK, as on Azure

        restarted = await client.restart(instance_id)
        new_id = restarted["id"] if isinstance(restarted, dict) else restarted
        assert new_id != instance_id
        await wait_for(client, new_id, Status.Completed)

        every = await client.get_status_all()
        assert {s.instance_id for s in every} >= {instance_id, waiting, new_id}
        completed = await client.get_status_by(runtime_status=[Status.Completed])
        assert {s.instance_id for s in completed} >= {instance_id, new_id}
        assert waiting not in {s.instance_id for s in completed}

        request = func.HttpRequest("GET", "http://example.test:1234/api/x", body=b"")
        response = await client.wait_for_completion_or_create_check_status_response(
            request, instance_id, 2000, 100)
        assert response.status_code == 200
        assert json.loads(response.get_body()) == done.output
        payload = client.create_http_management_payload(instance_id)
        assert payload["statusQueryGetUri"].endswith(
            f"/runtime/webhooks/durabletask/instances/{instance_id}"
            "?taskHub=TestHubName&connection=Storage")
        check = client.create_check_status_response(request, instance_id)
        links = json.loads(check.get_body())
        assert links["statusQueryGetUri"].startswith("http://example.test:1234/")

        purged = await client.purge_instance_history(instance_id)
        assert purged.instances_deleted == 1
        assert not await client.get_status(instance_id)
        assert host.client is not None


async def test_rewind_through_the_sdk_reruns_only_what_failed(tmp_path: Path) -> None:
    project = tmp_path / "rewound"
    project.mkdir()
    (project / "host.json").write_text('{"version": "2.0"}')
    (project / "function_app.py").write_text(
        "import azure.durable_functions as df\n"
        "import azure.functions as func\n"
        "from pathlib import Path\n"
        "app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "HERE = Path(__file__).resolve().parent\n\n"
        "@app.orchestration_trigger(context_name='context')\n"
        "def flow(context):\n"
        "    a = yield context.call_activity('step', 'a')\n"
        "    b = yield context.call_activity('step', 'b')\n"
        "    return [a, b]\n\n"
        "@app.activity_trigger(input_name='name')\n"
        "def step(name: str) -> str:\n"
        "    with (HERE / 'calls.log').open('a') as log:\n"
        "        log.write(name)\n"
        "    if name == 'b' and (HERE / 'broken').exists():\n"
        "        raise ValueError('b is broken')\n"
        "    return name.upper()\n"
    )
    (project / "broken").touch()
    app = load_project(project)
    async with durable.Host(app, storage=f"sqlite:///{tmp_path / 'r.db'}",
                            poll_interval=0.05):
        client = df.DurableOrchestrationClient(app.starter())
        instance_id = await client.start_new("flow")
        failed = await wait_for(client, instance_id, Status.Failed)
        assert "b is broken" in failed.output
        (project / "broken").unlink()
        await client.rewind(instance_id, "fixed")
        done = await wait_for(client, instance_id, Status.Completed)
        assert done.output == ["A", "B"]
        assert (project / "calls.log").read_text() == "abb"  # 'a' did not run again
