"""Singleton starts grouped into one statement, across a network hop: four client processes
reach PostgreSQL through a 2 ms delay line (benchmarks/delay_line.py) and fire 50 starts of one
instance ID together. Each process sends its burst as one group (a set-based INSERT ... ON
CONFLICT, durable/storage/postgres/grouped.py); still exactly one start wins and the other 49
get InstanceAlreadyExistsError, and the instance runs once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.delay_line import DelayLine
from tests.scaleout.harness import WorkerProcess
from tests.scaleout.test_singletons import COUNTS, finish_and_check, race, total


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")
    user = netloc[0] + "@" if netloc[1] else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", parts.path, parts.query, ""))


async def test_fifty_grouped_starts_through_a_delay_line(
    pg_hub_url: str, tmp_path: Path, activity_log: Path
) -> None:
    parts = urlsplit(pg_hub_url)
    line = await DelayLine(parts.hostname or "127.0.0.1", parts.port or 5432, 1.0).start()
    worker = WorkerProcess(pg_hub_url, tmp_path, "worker-0", activity_log)
    try:
        worker.wait_serving()
        remote = through(pg_hub_url, line.port)
        # race() blocks while the processes run: in a thread, so the line keeps forwarding.
        tallies = await asyncio.to_thread(
            race, [["client", remote, "only-one", str(count)] for count in COUNTS])
        assert total(tallies) == {"ok": 1, "conflict": 49, "other": 0}, tallies
        assert line.totals.connections > 0  # the clients really went through the line
        await finish_and_check(pg_hub_url, "only-one", activity_log, "client")
    finally:
        worker.close()
        await line.stop()
