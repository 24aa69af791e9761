"""Throughput of 1, 2 and 3 ``durable worker`` processes on one PostgreSQL hub.

    .venv/bin/python -m tests.scaleout.measure [--n 1000] [--workers 1,2,3] [--reps 3]

For each worker count: a fresh hub, the workers started and serving, then the clock starts; this
process starts ``n`` orchestrations at once through a client-only Host (half chains of 3
activities, half fan-outs of 4) and polls until all have finished; outputs are checked. Prints
orchestrations/s and how the activities were spread over the workers (median of ``reps``).
Not part of the test suite: numbers depend on the machine (docs/scale-out.md quotes them).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import tempfile
import time
from pathlib import Path

import durable as df
from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.pg import fresh_hub_url
from tests.scaleout.app import app
from tests.scaleout.harness import (
    check_exactly_once,
    read_activity_log,
    start_workers,
    wait_until_finished,
    workload,
)


async def one_run(workers: int, n: int) -> tuple[float, float, list[int]]:
    url = fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL))
    folder = Path(tempfile.mkdtemp(prefix="durable-measure-"))
    log = folder / "activities.log"
    async with df.Host(app, url, run_worker=False) as host:  # creates the schema
        procs = start_workers(url, folder, log, workers)
        try:
            plan = workload("m-", n, steps=3, width=4)
            started = time.perf_counter()
            await asyncio.gather(*(host.client.start_new(item.name, item.instance_id, data)
                                   for item, data in plan))
            start_phase = time.perf_counter() - started
            await wait_until_finished(host.backend, "m-", n, timeout=600, watch=procs)
            elapsed = time.perf_counter() - started
            await check_exactly_once(host.backend, [item for item, _ in plan])
        finally:
            for proc in procs:
                proc.close()
    spread = collections.Counter(pid for pid, _, _ in read_activity_log(log))
    return elapsed, start_phase, sorted(spread.values())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    for count in (int(w) for w in args.workers.split(",")):
        runs = [await one_run(count, args.n) for _ in range(args.reps)]
        runs.sort()
        elapsed, start_phase, spread = runs[(len(runs) - 1) // 2]
        rates = [round(args.n / r[0]) for r in runs]
        print(f"{count} worker(s): {args.n / elapsed:6.0f} orch/s (runs: {rates}), "
              f"{args.n} started in {start_phase:.2f}s, finished in {elapsed:.2f}s; "
              f"activities per worker {spread}; median of {statistics.median(rates)}",
              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
