"""Real worker processes and the checks the scale-out tests share.

Workers are ``python -m durable.cli worker tests.scaleout.app:app --storage ...`` subprocesses
with short leases, so recovery after kill -9 or SIGSTOP takes seconds. Everything waits by
polling storage with a deadline; nothing sleeps hoping work is done.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from durable.errors import StorageError
from durable.history import (
    ExecutionCompleted,
    ExecutionStarted,
    TaskCompleted,
    TaskScheduled,
)
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage.base import Backend, InstanceQuery
from tests.scaleout.app import LOG_ENV, expected_output

REPO = Path(__file__).resolve().parents[2]
APP = "tests.scaleout.app:app"


class DurableProcess:
    """A ``durable`` CLI subprocess; its log goes to a file the test can read."""

    def __init__(self, args: list[str], folder: Path, name: str, activity_log: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        env.update({LOG_ENV: str(activity_log), "PYTHONUNBUFFERED": "1", **(extra_env or {})})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "durable.cli", *args],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        self.worker_id = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log())
            if found:
                return found
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n"
                                     f"{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {pattern!r}:\n"
                                     f"{self.log()[-3000:]}")
            time.sleep(0.05)

    def wait_serving(self, timeout: float = 30) -> str:
        """Block until the worker is up; return (and remember) its worker ID."""
        self.worker_id = self.wait_for_log(r"worker (\S+) serving", timeout).group(1)
        return self.worker_id

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process must die too
            self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM (graceful: finish, hand leases back) and wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        self.kill()
        self._log.close()


class WorkerProcess(DurableProcess):
    """``durable worker`` for the test app: no HTTP, short leases."""

    def __init__(self, url: str, folder: Path, name: str, activity_log: Path, *,
                 lease_seconds: float = 3.0, poll_interval: float = 1.0,
                 activities: int = 16, app: str = APP,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(
            ["worker", app, "--storage", url, "--lease-seconds", str(lease_seconds),
             "--poll-interval", str(poll_interval), "--activities", str(activities)],
            folder, name, activity_log, env,
        )


class FrontEnd(DurableProcess):
    """``durable run`` for the test app on a free port (HTTP API plus a worker)."""

    def __init__(self, url: str, folder: Path, name: str, activity_log: Path) -> None:
        super().__init__(["run", APP, "--storage", url, "--port", "0"], folder, name,
                         activity_log)
        self.base = ""

    def wait_listening(self, timeout: float = 30) -> str:
        found = self.wait_for_log(r"Listening on (http://\S+)", timeout)
        self.base = found.group(1).replace("localhost", "127.0.0.1")
        return self.base


def start_workers(url: str, folder: Path, activity_log: Path, count: int, *, first: int = 0,
                  wait: bool = True, **options: float) -> list[WorkerProcess]:
    """Start ``count`` workers (named worker-<first>...); by default wait until they serve."""
    workers = [
        WorkerProcess(url, folder, f"worker-{first + i}", activity_log, **options)  # type: ignore[arg-type]
        for i in range(count)
    ]
    if wait:
        for worker in workers:
            worker.wait_serving()
    return workers


# -- waiting and checking -------------------------------------------------------------------


async def retrying(call: Callable[[], Awaitable[object]], deadline: float) -> object:
    """Call until storage answers (the tests restart PostgreSQL under running clients)."""
    while True:
        try:
            return await call()
        except StorageError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def count_completed(backend: Backend, prefix: str) -> int:
    done = 0
    token = None
    while True:
        page = await backend.query_instances(InstanceQuery(
            statuses=[Status.Completed, Status.Failed, Status.Terminated],
            instance_id_prefix=prefix, page_size=1000, continuation_token=token))
        done += len(page.instances)
        token = page.continuation_token
        if token is None:
            return done


async def wait_until_finished(backend: Backend, prefix: str, total: int, timeout: float,
                              watch: Iterable[WorkerProcess] = ()) -> None:
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = await retrying(lambda: count_completed(backend, prefix), deadline)  # type: ignore[assignment]
        if done >= total:
            return
        for worker in watch:
            if worker.process.poll() is not None:
                raise AssertionError(f"{worker.name} died:\n{worker.log()[-3000:]}")
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {done} of {total} orchestrations finished in {timeout}s")


@dataclass
class Started:
    instance_id: str
    name: str
    size: int


def workload(prefix: str, count: int, steps: int = 3, width: int = 4, pause: float = 0.0
             ) -> list[tuple[Started, list[object]]]:
    """Half chains of ``steps`` activities, half fan-outs of ``width``."""
    plan = []
    for index in range(count):
        if index % 2 == 0:
            plan.append((Started(f"{prefix}{index:04d}", "chain", steps), [steps, pause]))
        else:
            plan.append((Started(f"{prefix}{index:04d}", "fan_out", width), [width, pause]))
    return plan


async def check_exactly_once(backend: Backend, started: Iterable[Started]) -> None:
    """Each instance completed once, with the right output, and no step was recorded twice."""
    problems = []
    for item in started:
        record = await backend.get_instance(item.instance_id)
        history = await backend.get_history(item.instance_id)
        if record is None or record.status is not Status.Completed:
            problems.append(f"{item.instance_id}: {record and record.status}")
            continue
        if json.loads(record.output or "null") != expected_output(item.name, item.size):
            problems.append(f"{item.instance_id}: output {record.output}")
        kinds = collections.Counter(type(e) for e in history)
        scheduled = [e.event_id for e in history if isinstance(e, TaskScheduled)]
        completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
        if kinds[ExecutionStarted] != 1 or kinds[ExecutionCompleted] != 1:
            problems.append(f"{item.instance_id}: started {kinds[ExecutionStarted]}x, "
                            f"completed {kinds[ExecutionCompleted]}x")
        if sorted(scheduled) != list(range(item.size)) or sorted(completed) != sorted(scheduled):
            problems.append(f"{item.instance_id}: scheduled {scheduled}, completed {completed}")
    assert not problems, problems[:20]


def read_activity_log(path: Path) -> list[tuple[int, str, int]]:
    """``[(pid, instance_id, step)]`` for every activity execution, in order."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        pid, _kind, instance_id, step = line.split()
        entries.append((int(pid), instance_id, int(step)))
    return entries


def wait_until_sessions_end(url: str, pid: int, timeout: float = 20) -> None:
    """Block until the server has no session left of the (killed) process ``pid``.

    A COMMIT the process sent just before it died may still be running at the server after the
    process is gone, and land afterwards. Once its sessions have ended, nothing it sent can
    change the database any more. Sessions are found by the ``application_name`` durable sets
    (``durable:host:pid``).
    """
    import psycopg

    from durable.storage.postgres.backend import PostgresSettings

    name = f"durable:{socket.gethostname()}:{pid}"
    deadline = time.monotonic() + timeout
    with psycopg.connect(PostgresSettings(url).conninfo, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = left(%s, 63)",
                [name],
            ).fetchone()
            if not row or row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{row[0]} sessions of process {pid} outlived it by "
                                     f"{timeout}s")
            time.sleep(0.01)


def leases_held(url: str, worker_id: str) -> tuple[int, list[tuple[str, int]]]:
    """(instances, [(instance_id, task_id)]) that ``worker_id`` leases right now."""
    import psycopg
    from psycopg import sql

    from durable.storage.postgres.backend import PostgresSettings

    settings = PostgresSettings(url)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.hub)))
        row = conn.execute("SELECT COUNT(*) FROM instances WHERE lease_owner = %s",
                           [worker_id]).fetchone()
        tasks = conn.execute("SELECT instance_id, task_id FROM tasks WHERE lease_owner = %s",
                             [worker_id]).fetchall()
    return (row[0] if row else 0), [(t[0], t[1]) for t in tasks]
