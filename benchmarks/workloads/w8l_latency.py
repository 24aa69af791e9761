"""W8L: W8 with PostgreSQL a network hop away (0, 0.5 and 2 ms round trips), DBOS on the same line.

This kernel has no netem, so the hop is ``benchmarks/delay_line.py``, run as two processes of
its own: one carries the client's connections, one the workers'; each forwards every byte
``rtt / 2`` after reading it, and counts the messages each side sent to the server (a client
write following a server reply starts a message, i.e. a round trip waited for). At 0 ms no
proxy is used (the W8 set-up). Per round trip and worker count: a fresh database; this process
opens ``Host(app, url, run_worker=False)`` through the client line, launches the workers
through the worker line, starts all ``n`` instances with one ``gather`` of ``start_new``
(``start_phase_s``: the 1,000 concurrent starts), then waits for all with one ``gather`` of
``wait_for_completion`` (one shared poll per backend, woken by NOTIFY). DBOS runs
``hello_sequence.py --db postgres --mode sync`` through a line of the same delay in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import durable as df
from benchmarks import apps
from benchmarks.delay_line import ask
from benchmarks.harness import PG_BASE, REPO, drop_pg_database, fresh_pg_database, peer_python
from benchmarks.workloads import PeerRun, Status, fmt
from benchmarks.workloads.w8_postgres import EXPECTED, _start_worker, backend_available

ID = "W8L"
TITLE = "W8 with PostgreSQL 0 / 0.5 / 2 ms round trips away (delay line), DBOS on the same line"
GOAL = "at 2 ms: >= 5x DBOS and >= 50% of durable's 0 ms figure"
PARAMS: dict[str, dict[str, Any]] = {
    "full": {"n": 1000, "workers": [1, 2], "rtts": [0.0, 0.5, 2.0]},
    "quick": {"n": 300, "workers": [1, 2], "rtts": [0.0, 2.0]},
}
HEADLINE = "orch_per_s_at_2ms"
HIGHER_IS_BETTER = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Line:
    """A delay line process: ``base`` is PG_BASE with the proxy as host."""

    def __init__(self, rtt_ms: float) -> None:
        target = urlsplit(PG_BASE)
        self.port, self.control = _free_port(), _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.delay_line", "--listen", str(self.port),
             "--control", str(self.control), "--rtt-ms", str(rtt_ms),
             "--target", f"{target.hostname or '127.0.0.1'}:{target.port or 5432}"],
            stdout=subprocess.PIPE, cwd=REPO, start_new_session=True)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()
        user = target.username or "postgres"
        self.base = f"postgresql://{user}@127.0.0.1:{self.port}"

    def url(self, db: str) -> str:
        return f"{self.base}/{db}"

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


async def _one(n: int, workers: int, rtt: float) -> dict[str, Any]:
    db = f"durable_bench_w8l_{workers}w_{os.getpid()}"
    direct = fresh_pg_database(db)
    lines = [Line(rtt), Line(rtt)] if rtt > 0 else []
    client_url = lines[0].url(db) if lines else direct
    worker_url = lines[1].url(db) if lines else direct
    logs = Path(tempfile.mkdtemp(prefix="w8l-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with df.Host(apps.app, storage=client_url, run_worker=False) as host:
            client = host.client
            procs = [_start_worker(worker_url, logs / f"worker{k}.log", None)
                     for k in range(workers)]
            deadline = time.monotonic() + 60
            while not all("serving" in (logs / f"worker{k}.log").read_text(errors="replace")
                          for k in range(workers)):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError("workers did not start")
                await asyncio.sleep(0.02)
            for line in lines:
                await ask(line.control, "reset")
            t0 = time.perf_counter()
            ids = await asyncio.gather(*(client.start_new("hello_sequence") for _ in range(n)))
            t_started = time.perf_counter()
            statuses = await asyncio.gather(
                *(client.wait_for_completion(i, timeout=300) for i in ids))
            wall = time.perf_counter() - t0
            counts = [await ask(line.control) for line in lines]
        ok = sum(1 for s in statuses
                 if s.runtime_status == Status.Completed and s.output == EXPECTED)
        result: dict[str, Any] = {
            "rtt_ms": rtt, "workers": workers, "n": n, "wall_s": round(wall, 3),
            "start_phase_s": round(t_started - t0, 3), "orch_per_s": round(n / wall, 1),
            "completed_correctly": ok,
        }
        if counts:
            result["client_msgs_per_orch"] = round(counts[0]["client_messages"] / n, 3)
            result["worker_msgs_per_orch"] = round(counts[1]["client_messages"] / n, 3)
        return result
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for line in lines:
            line.close()
        drop_pg_database(db)
        shutil.rmtree(logs, ignore_errors=True)


def _dbos(n: int, rtt: float) -> dict[str, Any]:
    from benchmarks.peers import run_peer

    python = peer_python()
    if python is None:
        return {"error": "DBOS peer not installed"}
    line = Line(rtt) if rtt > 0 else None
    try:
        peer = PeerRun(f"postgres, sync, 1 process, +{rtt} ms RTT", "hello_sequence.py",
                       ["--db", "postgres", "--mode", "sync", "--n", str(n)],
                       env={"PEER_PG_URL": line.base} if line else {})
        data = Path(tempfile.mkdtemp(prefix="w8l-dbos-"))
        try:
            record = run_peer(python, peer, data, f"w8l_{os.getpid()}_{int(rtt * 10)}")
        finally:
            shutil.rmtree(data, ignore_errors=True)
        return {"rtt_ms": rtt, **{k: record.get(k) for k in ("wf_per_s", "wall_s", "error")}}
    finally:
        if line is not None:
            line.close()


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    if not backend_available():
        return {"available": False, "reason": "PostgreSQL backend not available"}
    runs = [await _one(params["n"], k, rtt) for rtt in params["rtts"] for k in params["workers"]]
    dbos = [await asyncio.to_thread(_dbos, params["n"], rtt) for rtt in params["rtts"]]
    best = {rtt: max(r["orch_per_s"] for r in runs if r["rtt_ms"] == rtt)
            for rtt in params["rtts"]}
    return {"available": True, "runs": runs, "dbos": dbos,
            "orch_per_s_at_2ms": best.get(2.0), "best_by_rtt": best}


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return []  # DBOS runs inside run(), through the same delay line


def judge(out: Any, params: dict[str, Any]) -> None:
    d = out.durable
    if not d.get("available"):
        out.durable_text = d.get("reason", "")
        out.met = None
        return
    peers = {p["rtt_ms"]: p.get("wf_per_s") for p in d["dbos"]}
    parts = []
    for r in d["runs"]:
        peer = peers.get(r["rtt_ms"])
        vs = f" = {r['orch_per_s'] / peer:.1f}x DBOS" if peer else ""
        msgs = (f"; msgs/orch client {r['client_msgs_per_orch']}, workers "
                f"{r['worker_msgs_per_orch']}" if "client_msgs_per_orch" in r else "")
        out.notes.append(f"{r['rtt_ms']} ms, {r['workers']}w: {fmt(r['orch_per_s'])} orch/s{vs}"
                         f" (starts {r['start_phase_s']} s{msgs})")
    for rtt, rate in d["best_by_rtt"].items():
        parts.append(f"{rtt} ms: {fmt(rate)} orch/s")
    out.durable_text = "; ".join(parts)
    out.dbos_text = "; ".join(f"{rtt} ms: {fmt(v)} wf/s" for rtt, v in peers.items())
    best = {float(k): v for k, v in d["best_by_rtt"].items()}  # JSON made the keys strings
    at2, zero, peer2 = best.get(2.0), best.get(0.0), peers.get(2.0)
    if at2 and peer2:
        out.ratio = at2 / peer2
        out.ratio_text = f"{out.ratio:.1f}x at 2 ms"
    correct = all(r["completed_correctly"] == r["n"] for r in d["runs"])
    out.met = bool(correct and at2 and peer2 and zero and at2 >= 5 * peer2 and at2 >= zero / 2)
