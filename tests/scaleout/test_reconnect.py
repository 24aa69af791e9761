"""Workers write again within about a second of a crashed PostgreSQL server coming back, however
long it was down, and nothing is lost or done twice. Runs on a private server (pg_ctl), never
the shared one. ``python -m tests.scaleout.recovery`` measures more rounds."""

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
    retrying,
    start_workers,
    wait_until_finished,
    workload,
)
from tests.scaleout.private_pg import PrivateServer, private_server
from tests.scaleout.recovery import HUB, crash_and_restart, wait_for_progress

# Long enough that psycopg_pool's own back-off (attempts 1, 3, 7, 15 s after the failure) and
# the LISTEN connection's old one (0.5, 1.5, 3.5, 7.5, 17.5 s) would leave the workers idle for
# about 6 s after the server is back (measured: 4.0-5.2 s after a 10 s outage, 12.7-16.2 s
# after a 17 s one; 0.03-0.46 s now).
DOWN = 8.0


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    yield from private_server()


async def test_workers_write_within_a_second_of_a_crashed_database_coming_back(
    server: PrivateServer, tmp_path: Path, activity_log: Path
) -> None:
    server.start()
    url = server.url(hub=HUB)
    workers = start_workers(url, tmp_path, activity_log, 2, lease_seconds=10,
                            poll_interval=1.0)
    try:
        plan = [item for item in workload("rc-", 120, steps=20, pause=0.05)
                if item[0].name == "chain"]
        async with df.Host(app, url, run_worker=False) as host:
            await asyncio.gather(*(host.client.start_new(item.name, item.instance_id, data)
                                   for item, data in plan))
            await asyncio.to_thread(wait_for_progress, server, 100)
            measured = await asyncio.to_thread(crash_and_restart, server, DOWN)
            assert measured.down >= DOWN
            assert measured.recovery < 1.5, (
                f"first commit {measured.recovery:.2f}s after the server accepted connections")
            await wait_until_finished(host.backend, "rc-", len(plan), timeout=120,
                                      watch=workers)
            deadline = time.monotonic() + 30

            async def check() -> None:
                await check_exactly_once(host.backend, [item for item, _ in plan])

            await retrying(check, deadline)
        for worker in workers:
            assert worker.process.poll() is None, worker.log()[-3000:]
    finally:
        for worker in workers:
            worker.close()
