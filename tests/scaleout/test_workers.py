"""Many ``durable worker`` processes on one PostgreSQL hub: sharing, kill -9, SIGSTOP.

Each test starts real worker processes (leases of 2-3 s so recovery is quick), drives them from
this process through a client-only Host, and checks every instance's record and history.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Callable
from pathlib import Path

import durable as df
from tests.scaleout.app import app
from tests.scaleout.harness import (
    WorkerProcess,
    check_exactly_once,
    count_completed,
    leases_held,
    read_activity_log,
    wait_until_finished,
    wait_until_sessions_end,
    workload,
)

Launch = Callable[..., list[WorkerProcess]]


async def start_all(host: df.Host, plan: list) -> None:
    await asyncio.gather(*(
        host.client.start_new(item.name, item.instance_id, data) for item, data in plan
    ))


async def test_three_workers_share_500_orchestrations(
    pg_hub_url: str, launch: Launch, activity_log: Path
) -> None:
    workers = launch(pg_hub_url, 3, lease_seconds=3)
    plan = workload("share-", 500, steps=3, width=4)
    async with df.Host(app, pg_hub_url, run_worker=False) as host:
        started = time.monotonic()
        await start_all(host, plan)
        await wait_until_finished(host.backend, "share-", 500, timeout=90, watch=workers)
        elapsed = time.monotonic() - started
        await check_exactly_once(host.backend, [item for item, _ in plan])
    runs = read_activity_log(activity_log)
    # 250 chains x 3 steps + 250 fan-outs x 4: every activity ran exactly once.
    assert len(runs) == 250 * 3 + 250 * 4
    assert len({(i, s) for _, i, s in runs}) == len(runs)
    per_worker = collections.Counter(pid for pid, _, _ in runs)
    assert set(per_worker) == {w.pid for w in workers}, per_worker
    assert min(per_worker.values()) >= len(runs) * 0.1, per_worker
    print(f"500 orchestrations on 3 workers in {elapsed:.2f}s; activities per worker: "
          f"{sorted(per_worker.values())}")


async def test_kill_9_of_a_worker_mid_run_loses_nothing(
    pg_hub_url: str, launch: Launch, activity_log: Path
) -> None:
    workers = launch(pg_hub_url, 3, lease_seconds=3)
    plan = workload("kill-", 500, steps=3, width=4, pause=0.05)
    async with df.Host(app, pg_hub_url, run_worker=False) as host:
        await start_all(host, plan)
        # Kill, once orchestrations are finishing, a worker that owns instances and holds
        # leases on activities (whichever worker the work went to).
        deadline = time.monotonic() + 60
        in_flight: list[tuple[str, int]] = []
        victim = None
        while victim is None and time.monotonic() < deadline:
            done = await count_completed(host.backend, "kill-")
            for candidate in workers:
                held, in_flight = leases_held(pg_hub_url, candidate.worker_id)
                if done >= 30 and held and len(in_flight) >= 5:
                    victim = candidate
                    break
            else:
                await asyncio.sleep(0.02)
        assert victim is not None, "no worker had work in flight"
        survivors = [w for w in workers if w is not victim]
        victim.kill()
        assert done < 500 and in_flight, "the victim had no work in flight when killed"
        # What the dead worker still holds once its sessions are gone (a COMMIT it sent just
        # before dying may land after the kill) is certainly unfinished: others must do it.
        wait_until_sessions_end(pg_hub_url, victim.pid)
        _, orphaned = leases_held(pg_hub_url, victim.worker_id)
        await wait_until_finished(host.backend, "kill-", 500, timeout=90, watch=survivors)
        await check_exactly_once(host.backend, [item for item, _ in plan])
    runs = read_activity_log(activity_log)
    by_step = collections.defaultdict(list)
    for pid, instance_id, step in runs:
        by_step[(instance_id, step)].append(pid)
    assert len(by_step) == 250 * 3 + 250 * 4  # every activity ran
    rerun = {key: pids for key, pids in by_step.items() if len(pids) > 1}
    # Only activities in flight on the killed worker ran again, each once more, elsewhere.
    for key, pids in rerun.items():
        assert pids[0] == victim.pid and len(pids) == 2 and pids[1] != victim.pid, (key, pids)
    # The activities the dead worker still held were run by the survivors.
    for instance_id, task_id in orphaned:
        assert any(pid != victim.pid for pid in by_step[(instance_id, task_id)])
    print(f"kill -9 mid-run: {len(orphaned)} activities orphaned by the victim, "
          f"{len(rerun)} re-ran after the kill")


async def test_a_stalled_worker_cannot_commit_after_losing_its_leases(
    pg_hub_url: str, launch: Launch, activity_log: Path
) -> None:
    """SIGSTOP a worker with work in flight past its lease expiry; the others finish its
    instances; after SIGCONT its stale episodes are refused by the fence."""
    workers = launch(pg_hub_url, 3, lease_seconds=2, poll_interval=0.5)
    plan = workload("stall-", 90, steps=4, width=4, pause=0.3)
    async with df.Host(app, pg_hub_url, run_worker=False) as host:
        await start_all(host, plan)
        # Stall the first worker seen inside activities (each sleeps 0.3 s) while it owns
        # instances: whichever worker the work went to.
        stalled = None
        deadline = time.monotonic() + 60
        while stalled is None and time.monotonic() < deadline:
            for candidate in workers:
                held, in_flight = leases_held(pg_hub_url, candidate.worker_id)
                if held and len(in_flight) >= 3:
                    stalled = candidate
                    break
            else:
                await asyncio.sleep(0.02)
        assert stalled is not None, "no worker had activities in flight"
        stalled.signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        others = [w for w in workers if w is not stalled]
        await wait_until_finished(host.backend, "stall-", 90, timeout=90, watch=others)
        assert time.monotonic() - stopped_at > 2  # its leases had expired
        stalled.signal(signal.SIGCONT)
        # Its in-flight activities finish now; the episodes they feed must be refused.
        stalled.wait_for_log(r"lost the lease of stall-", timeout=20)
        await check_exactly_once(host.backend, [item for item, _ in plan])
        # Give it a moment to try anything else it had, then check again.
        await asyncio.sleep(1.0)
        await check_exactly_once(host.backend, [item for item, _ in plan])
        assert stalled.process.poll() is None  # it recovered and keeps serving


async def test_a_graceful_stop_hands_the_leases_to_the_other_workers(
    pg_hub_url: str, launch: Launch, activity_log: Path
) -> None:
    """SIGTERM: the stopping worker releases its leases, so another worker continues its
    instances at once instead of after the 30 s lease."""
    [first] = launch(pg_hub_url, 1, lease_seconds=30)
    ids = [f"handover-{i}" for i in range(10)]
    async with df.Host(app, pg_hub_url, run_worker=False) as host:
        await asyncio.gather(*(host.client.start_new("hold", i) for i in ids))
        deadline = time.monotonic() + 30
        while len(read_activity_log(activity_log)) < len(ids):  # all waiting for "release"
            assert time.monotonic() < deadline, "the instances never started"
            await asyncio.sleep(0.05)
        held, _ = leases_held(pg_hub_url, first.worker_id)
        assert held == len(ids)
        [second] = launch(pg_hub_url, 1, lease_seconds=30)
        assert first.terminate() == 0, first.log()[-3000:]
        assert leases_held(pg_hub_url, first.worker_id) == (0, [])
        started = time.monotonic()
        for instance_id in ids:
            await host.client.raise_event(instance_id, "release", instance_id)
        for instance_id in ids:
            status = await host.client.wait_for_completion(instance_id, timeout=20)
            assert status.output == instance_id
        assert time.monotonic() - started < 15  # far below the 30 s lease
        assert "lost the lease" not in second.log()
    assert {pid for pid, _, _ in read_activity_log(activity_log)} == {first.pid}
