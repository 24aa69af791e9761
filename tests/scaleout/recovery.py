"""How long workers take to write again once a crashed PostgreSQL server is back.

    python -m tests.scaleout.recovery --rounds 5 [--workers 2] [--down 6]

A private server (``private_pg.py``) is SIGKILLed under running ``durable worker`` processes,
left down for ``--down`` seconds, and started again. Measured per round: from the moment the
server accepts connections (a probe connects every 10 ms) to the first commit of a worker
(the smallest ``updated_at`` a worker's commit wrote after the kill; a commit stamps the time
it took its connection). The workers keep running through every round; nothing restarts them.
``tests/scaleout/test_reconnect.py`` runs one round with a bound.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import durable as df
from tests.scaleout.app import app
from tests.scaleout.harness import WorkerProcess, start_workers, workload
from tests.scaleout.private_pg import PrivateServer

HUB = "recovery"


@dataclass
class Round:
    down: float  # seconds the server was away (kill to accepting connections)
    recovery: float  # accepting connections to a worker's first commit


def _scalar(server: PrivateServer, query: str, params: list[object] | None = None) -> object:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True, connect_timeout=2) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    return row[0] if row else None


def _steps_committed(server: PrivateServer) -> int:
    return int(_scalar(server, f"SELECT COUNT(*) FROM {HUB}.history") or 0)  # type: ignore[call-overload]


def wait_for_progress(server: PrivateServer, steps: int, timeout: float = 60) -> None:
    """Block until the workers committed ``steps`` more episodes."""
    base = _steps_committed(server)
    deadline = time.monotonic() + timeout
    while _steps_committed(server) < base + steps:
        if time.monotonic() > deadline:
            raise AssertionError(f"the workers committed fewer than {steps} episodes in "
                                 f"{timeout}s")
        time.sleep(0.02)


def _probe_until_accepting(server: PrivateServer, timeout: float = 60) -> float:
    """Connect every 10 ms; the wall-clock time of the first connection that succeeds."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=1):
                return time.time()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not come back:\n{server.server_log()}"
                                     ) from None
            time.sleep(0.01)


def _first_commit_after(server: PrivateServer, since: float, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while True:
        found = _scalar(server, f"SELECT MIN(updated_at) FROM {HUB}.instances "
                                "WHERE updated_at > %s", [since])
        if found is not None:
            return float(found)  # type: ignore[arg-type]
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker committed within {timeout}s of the restart")
        time.sleep(0.01)


def crash_and_restart(server: PrivateServer, down: float) -> Round:
    """Kill the server, keep it down ``down`` seconds, start it; measure the recovery."""
    server.kill()
    killed = time.time()  # a transaction that took its connection later cannot have committed
    # Simulated downtime: the workers fail, back off and retry meanwhile. Nothing is waited for.
    time.sleep(down)
    starting = threading.Thread(target=server.start, daemon=True)
    starting.start()
    accepting = _probe_until_accepting(server)
    first = _first_commit_after(server, killed)
    starting.join(timeout=60)
    return Round(down=accepting - killed, recovery=first - accepting)


async def start_load(url: str, prefix: str, count: int, steps: int, pause: float) -> None:
    """Start chains that keep the workers committing for a while."""
    plan = [item for item in workload(prefix, count * 2, steps=steps, pause=pause)
            if item[0].name == "chain"]
    async with df.Host(app, url, run_worker=False) as host:
        await asyncio.gather(*(host.client.start_new(item.name, item.instance_id, data)
                               for item, data in plan))


def run(rounds: int, workers: int, down: float, folder: Path) -> list[Round]:
    server = PrivateServer()
    started: list[WorkerProcess] = []
    try:
        server.start()
        url = server.url(hub=HUB)
        started = start_workers(url, folder, folder / "activities.log", workers,
                                lease_seconds=10, poll_interval=1.0)
        results = []
        for number in range(rounds):
            asyncio.run(start_load(url, f"r{number}-", 100, steps=40, pause=0.05))
            wait_for_progress(server, 100)
            results.append(crash_and_restart(server, down))
            for worker in started:
                assert worker.process.poll() is None, worker.log()[-3000:]
        return results
    finally:
        for worker in started:
            worker.close()
        server.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--down", type=float, default=6.0,
                        help="seconds the server stays killed before it is started again")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="durable-recovery-") as folder:
        results = run(args.rounds, args.workers, args.down, Path(folder))
    for number, result in enumerate(results, 1):
        print(f"round {number}: down {result.down:.2f}s, first commit "
              f"{result.recovery:.3f}s after the server accepted connections")
    recoveries = [r.recovery for r in results]
    print(f"recovery: median {statistics.median(recoveries):.3f}s, "
          f"min {min(recoveries):.3f}s, max {max(recoveries):.3f}s")


if __name__ == "__main__":
    main()
