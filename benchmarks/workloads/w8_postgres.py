"""W8: W1 on PostgreSQL with 1 and 2 ``durable worker`` processes (and, extra, in-process).

For each worker count: a fresh database; this process opens ``Host(app, url, run_worker=False)``
(which creates the schema), launches the workers (``python -m durable.cli worker
benchmarks.apps:app --storage URL``) and waits until each logs that it is serving; then the
clock starts, all instances are started at once (one ``gather`` of ``start_new``) and the
client reads their statuses in start order, re-reading an unfinished one every 5 ms (see
``_wait_all``); the clock stops when the last is terminal. Outputs are checked afterwards.
CPU seconds of the workers, this client and all ``postgres`` server processes, and the
database's commit and row counters, are taken over the clocked interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import (
    REPO,
    Outcome,
    drop_pg_database,
    fresh_pg_database,
    pg_database_stats,
    pg_settings,
    pid_cpu_s,
    processes_cpu_s,
    self_cpu_s,
    system_cpu_ticks,
)
from benchmarks.workloads import PeerRun, Status, fmt, ratio_text, start_all_then_wait

ID = "W8"
TITLE = "W1 on PostgreSQL, 1 and 2 worker processes"
GOAL = ">= 5x DBOS on PostgreSQL"
PARAMS: dict[str, dict[str, Any]] = {
    "full": {"n": 1000, "workers": [1, 2]}, "quick": {"n": 300, "workers": [1, 2]}
}
HEADLINE = "best_orch_per_s"
HIGHER_IS_BETTER = True
EXPECTED = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
UNAVAILABLE = "PostgreSQL backend not available yet"


def backend_available() -> bool:
    """True once ``durable.storage.postgres.backend`` exists and imports."""
    try:
        if importlib.util.find_spec("durable.storage.postgres.backend") is None:
            return False
        importlib.import_module("durable.storage.postgres.backend")
    except Exception:
        return False
    return True


def _start_worker(url: str, log_path: Path, count_to: Path | None) -> subprocess.Popen[bytes]:
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the OS when the worker exits
    entry = ["durable.cli"] if count_to is None else ["benchmarks.count_statements", str(count_to)]
    return subprocess.Popen(
        # -q: no line per orchestration (DBOS runs at WARNING too); "serving" is still logged.
        [sys.executable, "-m", *entry, "worker", "benchmarks.apps:app", "--storage", url, "-q"],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
    )


def _attach_py_spy(pid: int, out: Path, native: bool, gil: bool) -> subprocess.Popen[bytes]:
    """Sample a running worker with py-spy (all threads, on-CPU only) until SIGINT."""
    spy = Path(sys.executable).with_name("py-spy")
    extra = ["--native"] if native else ["--nonblocking"]
    if gil:
        extra.append("--gil")
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--rate", "1000", "--format", "raw",
         "--threads", "--output", str(out), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def _wait_all(
    client: df.DurableOrchestrationClient, ids: list[str], deadline: float
) -> int:
    """Return once every instance is terminal; one primary-key status read per poll.

    The instances are checked in start order; an unfinished one is re-read every 5 ms, so
    the clock stops at most ~5 ms after the last completion and the reads cost about
    ``n + wall / 5 ms`` cheap queries (a status-filtered scan every few ms would load the
    server far more).
    """
    polls = 0
    for instance_id in ids:
        while time.monotonic() < deadline:
            polls += 1
            status = await client.get_status(instance_id, show_input=False)
            if status.runtime_status is not None and status.runtime_status.is_terminal:
                break
            await asyncio.sleep(0.005)
    return polls


async def _one(
    n: int,
    workers: int,
    py_spy_dir: str | None = None,
    native: bool = False,
    count_statements: bool = False,
    gil: bool = False,
) -> dict[str, Any]:
    db = f"durable_bench_w8_{workers}w_{os.getpid()}"
    url = fresh_pg_database(db)
    logs = Path(tempfile.mkdtemp(prefix="w8-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with df.Host(apps.app, storage=url, run_worker=False) as host:
            client = host.client
            for k in range(workers):
                count_to = logs / f"statements{k}.json" if count_statements else None
                procs.append(_start_worker(url, logs / f"worker{k}.log", count_to))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                texts = [(logs / f"worker{k}.log").read_text(errors="replace")
                         for k in range(workers)]
                if all("serving" in t for t in texts):
                    break
                if any(p.poll() is not None for p in procs):
                    raise RuntimeError("a worker exited at start-up:\n" + "\n".join(texts)[-3000:])
                await asyncio.sleep(0.02)
            else:
                raise RuntimeError("workers did not report 'serving' within 60 s")
            spies = []
            if py_spy_dir:
                Path(py_spy_dir).mkdir(parents=True, exist_ok=True)
                spies = [
                    _attach_py_spy(p.pid, Path(py_spy_dir) / f"w8-{workers}w-worker{k}.txt",
                                   native, gil)
                    for k, p in enumerate(procs)
                ]
                await asyncio.sleep(1.0)  # let py-spy attach before the clock starts
            stats0 = await asyncio.to_thread(pg_database_stats, db)
            cpu0, ticks0, pg0 = self_cpu_s(), system_cpu_ticks(), processes_cpu_s("postgres")
            workers0 = [pid_cpu_s(p.pid) for p in procs]
            t0 = time.perf_counter()
            ids = await asyncio.gather(*(client.start_new("hello_sequence") for _ in range(n)))
            t_started = time.perf_counter()
            polls = await _wait_all(client, ids, time.monotonic() + 300)
            wall = time.perf_counter() - t0
            cpu1, ticks1, pg1 = self_cpu_s(), system_cpu_ticks(), processes_cpu_s("postgres")
            workers1 = [pid_cpu_s(p.pid) for p in procs]
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                await asyncio.to_thread(spy.wait, 30)
            statuses = await client.get_status_all()
        ok = sum(1 for s in statuses
                 if s.runtime_status == Status.Completed and s.output == EXPECTED)
        usage = []
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            _, _, ru = await asyncio.to_thread(os.wait4, proc.pid, 0)
            usage.append({"cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                          "peak_rss_mb": round(ru.ru_maxrss / 1024, 1)})
        procs.clear()
        counts = []
        for k in range(workers):
            path = logs / f"statements{k}.json"
            if path.exists():
                counts.append(json.loads(path.read_text()))
        await asyncio.sleep(0.6)  # PostgreSQL flushes per-backend statistics lazily
        stats1 = await asyncio.to_thread(pg_database_stats, db)
        return {
            "workers": workers, "n": n, "wall_s": round(wall, 3),
            "start_phase_s": round(t_started - t0, 3), "orch_per_s": round(n / wall, 1),
            "completed_correctly": ok, "worker_usage": usage,
            "status_polls": polls,
            "workers_cpu_s": [round(b - a, 2) for a, b in zip(workers0, workers1, strict=True)],
            "client_cpu_s": round(cpu1 - cpu0, 2),
            "postgres_cpu_s": round(pg1 - pg0, 2),
            # Counted from just before the clock until the workers stopped (status reads too).
            "pg_delta": {k: stats1.get(k, 0) - stats0.get(k, 0) for k in stats1},
            # All CPUs, busy share while the clock ran (workers + client + PostgreSQL + rest).
            "machine_busy_pct": round(100 * (ticks1[0] - ticks0[0]) / (ticks1[1] - ticks0[1]), 1),
            **({"worker_statements": counts} if counts else {}),
        }
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        drop_pg_database(db)
        shutil.rmtree(logs, ignore_errors=True)


async def _in_process(n: int) -> dict[str, Any]:
    """Extra: client and worker in this one process (the shape of the DBOS script)."""
    db = f"durable_bench_w8_inproc_{os.getpid()}"
    url = fresh_pg_database(db)
    try:
        async with df.Host(apps.app, storage=url) as host:
            cpu0, pg0 = self_cpu_s(), processes_cpu_s("postgres")
            result = await start_all_then_wait(host.client, "hello_sequence", n, EXPECTED, 300)
            cpu1, pg1 = self_cpu_s(), processes_cpu_s("postgres")
        result.update(process_cpu_s=round(cpu1 - cpu0, 2), postgres_cpu_s=round(pg1 - pg0, 2))
        return result
    finally:
        drop_pg_database(db)


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    if not backend_available():
        return {"available": False, "reason": UNAVAILABLE}
    if pg_settings() is None:
        return {"available": False, "reason": "no PostgreSQL server reachable"}
    runs = [
        await _one(params["n"], k, params.get("py_spy_dir"), params.get("py_spy_native", False),
                   params.get("count_statements", False), params.get("py_spy_gil", False))
        for k in params["workers"]
    ]
    in_process = await _in_process(params["n"]) if params.get("in_process", True) else None
    return {
        "available": True,
        "runs": runs,
        "in_process": in_process,
        "best_orch_per_s": max(r["orch_per_s"] for r in runs),
    }


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return [PeerRun("postgres, sync, 1 process", "hello_sequence.py",
                    ["--db", "postgres", "--mode", "sync", "--n", str(params["n"])])]


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    peer = next(iter(out.dbos.values()), None)
    peer_rate = peer.get("wf_per_s") if peer else None
    if peer_rate:
        out.dbos_text = f"{fmt(peer_rate)} wf/s ({peer['label']})"
    if not d.get("available"):
        out.durable_text = d.get("reason", UNAVAILABLE)
        out.met = None
        return
    parts = [f"{r['workers']}w: {fmt(r['orch_per_s'])} orch/s" for r in d["runs"]]
    out.durable_text = "; ".join(parts)
    ratios = []
    if peer_rate:
        ratios = [r["orch_per_s"] / peer_rate for r in d["runs"]]
        out.ratio = min(ratios)
        out.ratio_text = " / ".join(ratio_text(x) for x in ratios)
    for r in d["runs"]:
        out.notes.append(
            f"{r['workers']} worker(s): {r['wall_s']} s wall (starting all: "
            f"{r.get('start_phase_s')} s); CPU s in that window: workers "
            f"{'+'.join(str(x) for x in r.get('workers_cpu_s', []))}, postgres "
            f"{r.get('postgres_cpu_s')}, client {r.get('client_cpu_s')}; machine busy "
            f"{r.get('machine_busy_pct')}%; {r.get('pg_delta', {}).get('xact_commit')} PG commits"
        )
    inproc = d.get("in_process")
    if inproc:
        vs = f" = {inproc['orch_per_s'] / peer_rate:.1f}x DBOS" if peer_rate else ""
        out.notes.append(
            f"extra, client + worker in ONE process (like the DBOS script): "
            f"{fmt(inproc['orch_per_s'])} orch/s{vs}; CPU s: process "
            f"{inproc.get('process_cpu_s')}, postgres {inproc.get('postgres_cpu_s')}"
        )
    correct = all(r["completed_correctly"] == r["n"] for r in d["runs"])
    if not correct:
        out.notes.append("CORRECTNESS: not every instance completed with the expected output")
    out.met = bool(correct and ratios and min(ratios) >= 5)
