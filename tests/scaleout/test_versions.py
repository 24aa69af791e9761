"""A rolling upgrade on PostgreSQL: workers of app 1.0 and 2.0 side by side, then the old one
stops. Every instance runs only where its version can run, and none is lost or failed."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from pathlib import Path

import durable as df
from tests.scaleout.harness import WorkerProcess, read_activity_log, wait_until_finished

Launch = Callable[..., list[WorkerProcess]]
APP = "tests.scaleout.versioned_app:app"


def app_of(version: str) -> df.DFApp:
    app = df.DFApp(default_version=version, version_match_strategy="current-or-older")

    @app.orchestration_trigger(context_name="context")
    def upgrade(context: df.DurableOrchestrationContext):  # the client only needs the name
        yield context.create_timer(context.current_utc_datetime)

    return app


async def test_a_rolling_upgrade_loses_and_fails_nothing(
    pg_hub_url: str, launch: Launch, activity_log: Path
) -> None:
    [old] = launch(pg_hub_url, 1, lease_seconds=3, app=APP,
                   env={"SCALEOUT_APP_VERSION": "1.0"})
    async with df.Host(app_of("1.0"), pg_hub_url, run_worker=False) as v1:
        first = [f"up-1-{i:03d}" for i in range(100)]
        await asyncio.gather(*(v1.client.start_new("upgrade", i) for i in first))
    [new] = launch(pg_hub_url, 1, lease_seconds=3, app=APP,
                   env={"SCALEOUT_APP_VERSION": "2.0"})
    async with df.Host(app_of("2.0"), pg_hub_url, run_worker=False) as v2:
        second = [f"up-2-{i:03d}" for i in range(100)]
        await asyncio.gather(*(v2.client.start_new("upgrade", i) for i in second))
        deadline = time.monotonic() + 60
        while len({i for _, i, _ in read_activity_log(activity_log)}) < 200:
            assert time.monotonic() < deadline, (
                "not every instance took its first step", old.log()[-2000:], new.log()[-2000:])
            await asyncio.sleep(0.05)
        # The upgrade: the old worker stops (gracefully) while half of its work waits.
        for instance_id in first[:50] + second:
            await v2.client.raise_event(instance_id, "go")
        assert old.terminate() == 0, old.log()[-3000:]
        for instance_id in first[50:]:
            await v2.client.raise_event(instance_id, "go")
        await wait_until_finished(v2.backend, "up-", 200, timeout=90, watch=[new])
        outputs = {}
        for instance_id in first + second:
            status = await v2.client.get_status(instance_id)
            assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed, (
                instance_id, status.runtime_status, status.output)
            outputs[instance_id] = status.output
    assert all(outputs[i] == ["1.0", 1] for i in first)
    assert all(outputs[i] == ["2.0", 2] for i in second)
    runs = read_activity_log(activity_log)
    ran_by = collections.defaultdict(set)
    for pid, instance_id, _step in runs:
        ran_by[instance_id].add(pid)
    assert all(ran_by[i] == {new.pid} for i in second)  # 2.0 never ran on the 1.0 worker
    assert any(old.pid in ran_by[i] for i in first)  # the old worker did its share
    assert "left for another worker" in old.log()
