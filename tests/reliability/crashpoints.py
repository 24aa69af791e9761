"""The crash-point harness: kill -9 at random moments during start bursts and commit bursts.

One round, on a fresh store:

1. a front end (``durable run --no-worker``) and a worker (``durable worker``, 2 s leases) run
   :mod:`tests.scaleout.app`, whose activities log every execution (process, instance, step);
2. a client sends a burst of starts over HTTP (chains and fan-outs, explicit instance IDs),
   recording which were accepted (202) and which got no answer;
3. at a random moment (seeded) in the burst or the commits after it, ``kill -9`` hits the
   worker, the front end, or both (a machine crash);
4. a fresh worker finishes whatever is left;
5. the round is judged from storage and the activity log:

   - **lost**: an accepted start that never completed with its output;
   - **doubly completed**: an instance started or completed twice in its history, a task
     completed twice, or a wrong output;
   - **re-executions**: activity steps that ran more than once (allowed: activities are
     at-least-once; the number shows how much a crash costs).

A start that got no answer may or may not exist; if it does, it must complete like the rest.

The test suite runs a short sweep (``tests/reliability/test_crashpoints.py``, 3 rounds per
backend); a long one runs on demand::

    python -m tests.reliability.crashpoints --rounds 100 --backends sqlite,postgres --seed 7
    DURABLE_CRASH_ROUNDS=50 python -m pytest tests/reliability/test_crashpoints.py -s

and prints one line per round and the totals (the figures in docs/reliability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from durable.errors import StorageError
from durable.history import ExecutionCompleted, ExecutionStarted, TaskCompleted, TaskScheduled
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage import open_backend
from durable.storage.base import Backend
from tests.scaleout.app import expected_output
from tests.scaleout.harness import APP, DurableProcess, read_activity_log

CHAINS = 30
FAN_OUTS = 30
STEPS = 5
WIDTH = 5
PAUSE = 0.05  # seconds each activity takes: the run lasts about as long as the kill window
KILL_WINDOW = 1.5  # seconds after the burst starts within which the kill lands
FINISH_TIMEOUT = 60.0
VICTIMS = ("worker", "front end", "both")


@dataclass
class RoundResult:
    backend: str
    seed: int
    victim: str
    kill_after: float
    accepted: int = 0
    unanswered: int = 0
    completed_before_kill: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    reexecuted: int = 0
    executions: int = 0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.doubled

    def line(self) -> str:
        return (f"{self.backend:8} seed {self.seed:5} kill {self.victim:9} at "
                f"{self.kill_after:4.2f}s: accepted {self.accepted:2}, unanswered "
                f"{self.unanswered:2}, done before kill {self.completed_before_kill:2}; "
                f"lost {len(self.lost)}, doubly completed {len(self.doubled)}, "
                f"activity re-executions {self.reexecuted} of {self.executions}")


def plan() -> list[tuple[str, str, list[float]]]:
    """(instance ID, orchestrator, input) for one burst."""
    starts = [(f"chain-{n:03d}", "chain", [STEPS, PAUSE]) for n in range(CHAINS)]
    starts += [(f"fan-{n:03d}", "fan_out", [WIDTH, PAUSE]) for n in range(FAN_OUTS)]
    return starts


class Frontend(DurableProcess):
    def __init__(self, url: str, folder: Path, log: Path) -> None:
        super().__init__(["run", APP, "--storage", url, "--port", "0", "--no-worker"],
                         folder, "front-end", log)

    def listening(self) -> str:
        found = self.wait_for_log(r"Listening on (http://\S+)")
        return found.group(1).replace("localhost", "127.0.0.1")


class Worker(DurableProcess):
    def __init__(self, url: str, folder: Path, log: Path, name: str) -> None:
        super().__init__(["worker", APP, "--storage", url, "--lease-seconds", "2",
                          "--poll-interval", "0.2"], folder, name, log)


async def burst(base: str, starts: list[tuple[str, str, list[float]]]
                ) -> tuple[set[str], set[str]]:
    """Send every start at once; return (accepted, unanswered) instance IDs."""
    accepted: set[str] = set()
    unanswered: set[str] = set()
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        async def one(instance_id: str, name: str, data: list[float]) -> None:
            url = f"{base}/runtime/webhooks/durabletask/orchestrators/{name}/{instance_id}"
            try:
                response = await client.post(url, json=data)
            except httpx.HTTPError:
                unanswered.add(instance_id)
                return
            if response.status_code == 202:
                accepted.add(instance_id)
            else:
                unanswered.add(instance_id)  # e.g. a 503 while the store was going away

        await asyncio.gather(*(one(*start) for start in starts))
    return accepted, unanswered


async def _retrying(call: Callable[[], object], deadline: float) -> object:
    while True:
        try:
            return await call()  # type: ignore[misc]
        except StorageError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def judge(backend: Backend, result: RoundResult, accepted: set[str],
                candidates: list[tuple[str, str, list[float]]], activity_log: Path) -> None:
    """Wait for every instance that exists to finish, then fill in ``result``."""
    deadline = time.monotonic() + FINISH_TIMEOUT
    pending = {instance_id for instance_id, _, _ in candidates}
    while pending and time.monotonic() < deadline:
        for instance_id in list(pending):
            record = await _retrying(lambda i=instance_id: backend.get_instance(i), deadline)
            if record is None and instance_id not in accepted:
                pending.discard(instance_id)  # never created: fine for an unanswered start
            elif record is not None and record.status.is_terminal:  # type: ignore[attr-defined]
                pending.discard(instance_id)
        if pending:
            await asyncio.sleep(0.1)
    for instance_id, name, data in candidates:
        record = await backend.get_instance(instance_id)
        if record is None:
            if instance_id in accepted:
                result.lost.append(f"{instance_id}: accepted but missing")
            continue
        size = int(data[0])
        if record.status is not Status.Completed:
            result.lost.append(f"{instance_id}: {record.status.value}")
            continue
        if json.loads(record.output or "null") != expected_output(name, size):
            result.doubled.append(f"{instance_id}: output {record.output}")
        history = await backend.get_history(instance_id)
        kinds = collections.Counter(type(e) for e in history)
        scheduled = [e.event_id for e in history if isinstance(e, TaskScheduled)]
        completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
        if kinds[ExecutionStarted] != 1 or kinds[ExecutionCompleted] != 1:
            result.doubled.append(f"{instance_id}: started {kinds[ExecutionStarted]}x, "
                                  f"completed {kinds[ExecutionCompleted]}x")
        if sorted(scheduled) != list(range(size)) or sorted(completed) != sorted(scheduled):
            result.doubled.append(f"{instance_id}: tasks {scheduled}, results {completed}")
    runs = collections.Counter((instance_id, step)
                               for _, instance_id, step in read_activity_log(activity_log))
    result.executions = sum(runs.values())
    result.reexecuted = sum(count - 1 for count in runs.values() if count > 1)


async def count_done(backend: Backend, ids: list[str]) -> int:
    done = 0
    for instance_id in ids:
        try:
            record = await backend.get_instance(instance_id)
        except StorageError:
            continue
        done += record is not None and record.status is Status.Completed
    return done


async def one_round(backend_name: str, url: str, folder: Path, seed: int) -> RoundResult:
    rng = random.Random(seed)
    victim = rng.choice(VICTIMS)
    kill_after = rng.uniform(0.0, KILL_WINDOW)
    result = RoundResult(backend_name, seed, victim, kill_after)
    activity_log = folder / "activities.log"
    front = Frontend(url, folder, activity_log)
    worker = Worker(url, folder, activity_log, "worker-1")
    survivors: list[DurableProcess] = []
    store = open_backend(url)
    try:
        base = front.listening()
        worker.wait_serving()
        starts = plan()
        sending = asyncio.ensure_future(burst(base, starts))
        await asyncio.sleep(kill_after)  # the crash point: a moment chosen by the seed
        victims = [worker, front] if victim == "both" else (
            [worker] if victim == "worker" else [front])
        for process in victims:
            process.process.send_signal(signal.SIGKILL)
        accepted, unanswered = await sending
        for process in victims:
            process.process.wait(timeout=10)
        result.accepted, result.unanswered = len(accepted), len(unanswered)
        await store.open()
        result.completed_before_kill = await count_done(store, [s[0] for s in starts])
        if victim != "front end":
            survivors.append(Worker(url, folder, activity_log, "worker-2"))
            survivors[-1].wait_serving()
        await judge(store, result, accepted, starts, activity_log)
    finally:
        await store.close()
        for process in (front, worker, *survivors):
            process.close()
    return result


def backend_url(name: str, folder: Path) -> str:
    if name == "sqlite":
        return f"sqlite:///{folder / 'crash.db'}"
    from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
    from tests.pg import fresh_hub_url

    return fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL), folder)


async def sweep(backends: list[str], rounds: int, seed: int,
                report: Callable[[str], None] = print) -> list[RoundResult]:
    results = []
    for backend_name in backends:
        for number in range(rounds):
            folder = Path(tempfile.mkdtemp(prefix="durable-crash-"))
            try:
                url = backend_url(backend_name, folder)
                result = await one_round(backend_name, url, folder, seed + number)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            report(result.line())
            for problem in (result.lost + result.doubled)[:10]:
                report(f"    {problem}")
            results.append(result)
    report(summary(results))
    return results


def summary(results: list[RoundResult]) -> str:
    lines = ["", "backend   rounds  accepted  unanswered  lost  doubly-completed  "
                 "re-executions/executions"]
    for backend_name in sorted({r.backend for r in results}):
        mine = [r for r in results if r.backend == backend_name]
        lines.append(
            f"{backend_name:9} {len(mine):6}  {sum(r.accepted for r in mine):8}  "
            f"{sum(r.unanswered for r in mine):10}  {sum(len(r.lost) for r in mine):4}  "
            f"{sum(len(r.doubled) for r in mine):16}  "
            f"{sum(r.reexecuted for r in mine)}/{sum(r.executions for r in mine)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds per backend")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000)
    args = parser.parse_args(argv)
    print(f"crash-point sweep: {args.rounds} rounds per backend, seeds from {args.seed}",
          flush=True)
    results = asyncio.run(sweep(args.backends.split(","), args.rounds, args.seed,
                                lambda line: print(line, flush=True)))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
