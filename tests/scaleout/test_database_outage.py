"""The database goes away: workers started before it wait for it, and a PostgreSQL restart in
the middle of a run loses nothing. Runs on a private server (pg_ctl), never the shared one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import durable as df
from tests.scaleout.app import app
from tests.scaleout.harness import (
    check_exactly_once,
    count_completed,
    retrying,
    start_workers,
    wait_until_finished,
    workload,
)
from tests.scaleout.private_pg import PrivateServer, private_server


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    yield from private_server()


async def test_workers_wait_for_the_database_and_survive_its_restart(
    server: PrivateServer, tmp_path: Path, activity_log: Path
) -> None:
    url = server.url(hub="outage")
    # Started before the database exists: they must say why they wait, and keep trying.
    workers = start_workers(url, tmp_path, activity_log, 2, wait=False, lease_seconds=3,
                            poll_interval=0.5)
    try:
        for worker in workers:
            worker.wait_for_log(r"storage is unavailable: Cannot reach PostgreSQL at "
                                rf"127\.0\.0\.1:{server.port}/postgres")
        server.start()
        for worker in workers:
            worker.wait_serving()

        plan = workload("outage-", 200, steps=4, width=4, pause=0.05)
        async with df.Host(app, url, run_worker=False) as host:
            await asyncio.gather(*(host.client.start_new(item.name, item.instance_id, data)
                                   for item, data in plan))
            deadline = time.monotonic() + 60
            while (done := await count_completed(host.backend, "outage-")) < 30:
                assert time.monotonic() < deadline, "the run never got going"
                await asyncio.sleep(0.02)
            assert done < 200, "the run finished before the restart; make it longer"

            server.stop()  # a clean "fast" shutdown: sessions are cut mid-transaction
            for worker in workers:
                worker.wait_for_log(r"LISTEN connection to PostgreSQL at \S+ failed")
            # Stay down past the lease length (3 s): leases lapse, and the workers' requests
            # wait for connections. (Simulated downtime; nothing is waited for here.)
            await asyncio.sleep(3.5)
            server.start()

            await wait_until_finished(host.backend, "outage-", 200, timeout=120,
                                      watch=workers)
            deadline = time.monotonic() + 30
            await retrying(lambda: check_exactly_once(host.backend,
                                                      [item for item, _ in plan]), deadline)
        for worker in workers:
            assert worker.process.poll() is None, worker.log()[-3000:]
            worker.wait_for_log(r"listening for work on \S+ again")
        # Graceful shutdown still hands everything back.
        for worker in workers:
            assert worker.terminate() == 0, worker.log()[-3000:]
    finally:
        for worker in workers:
            worker.close()
