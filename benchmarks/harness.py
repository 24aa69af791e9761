"""Shared plumbing: child processes with exact peak RSS, percentiles, machine facts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

def _dbos_scripts() -> Path:
    """``../shared/peers/dbos`` of the checkout, or of a folder above it (a worktree such as
    ``/work/wt/<name>`` has the shared folder two levels up); ``DURABLE_PEERS_DIR`` wins."""
    if os.environ.get("DURABLE_PEERS_DIR"):
        return Path(os.environ["DURABLE_PEERS_DIR"])
    for parent in REPO.parents:
        candidate = parent / "shared" / "peers" / "dbos"
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "peers" / "dbos"


PEER_DIR = _dbos_scripts()
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile, ``q`` in [0, 1]."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def current_rss_mb() -> float:
    """Resident set size of this process now (Linux /proc), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def system_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat; diff two samples for utilisation."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def machine_busy_pct(seconds: float = 0.5) -> float:
    """Share of all CPUs busy over the next ``seconds`` (other users of the machine)."""
    b0, t0 = system_cpu_ticks()
    time.sleep(seconds)
    b1, t1 = system_cpu_ticks()
    return round(100 * (b1 - b0) / max(1, t1 - t0), 1)


def wait_for_quiet(limit_pct: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until the machine is less than ``limit_pct`` busy.

    Returns the last measured busy percentage. Other engineers' test runs on a shared 2-core
    machine would otherwise be measured as our slowness.
    """
    deadline = time.monotonic() + max_wait
    busy = machine_busy_pct()
    while busy >= limit_pct and time.monotonic() < deadline:
        busy = machine_busy_pct(1.0)
    return busy


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def self_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass
class ChildResult:
    """What one benchmark subprocess produced."""

    returncode: int
    wall_s: float
    peak_rss_mb: float  # ru_maxrss of exactly this child, from wait4()
    cpu_s: float  # user + system CPU of the child
    record: dict[str, Any] | None  # the last JSON line the child printed
    stderr_tail: str = ""
    timed_out: bool = False


def run_child(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300.0,
) -> ChildResult:
    """Run ``argv``, return its last stdout JSON line with its own peak RSS and CPU time.

    ``os.wait4`` gives the rusage of this one child (``RUSAGE_CHILDREN`` would be the maximum
    over every child ever reaped, so it is not used).
    """
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below, after wait4
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd, text=True,
        start_new_session=True,
    )
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err.seek(0)
    stderr = err.read()
    err.close()
    record = None
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            break
    return ChildResult(
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        record=record,
        stderr_tail=stderr[-2000:],
        timed_out=timed_out.is_set(),
    )


def count_syncs(argv: list[str], *, env: dict[str, str] | None = None,
                cwd: Path | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """Run ``argv`` under ``perf stat`` and count its fsync/fdatasync system calls.

    An independent check that commits really reach the disk (synchronous=FULL syncs the WAL
    on every commit) and of how many syncs group commit saves. The syscall tracepoints are
    counted in the kernel (children and threads included) at next to no cost; it is still a
    separate, untimed run.
    """
    perf = shutil.which("perf")
    if perf is None:
        return {"error": "perf not installed"}
    with tempfile.NamedTemporaryFile(suffix=".perf", delete=False) as tmp:
        out_path = tmp.name
    try:
        res = run_child([perf, "stat", "-x,", "-o", out_path, "-e",
                         "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "--", *argv],
                        env=env, cwd=cwd, timeout=timeout)
        counts: dict[str, Any] = {}
        for line in Path(out_path).read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2].startswith("syscalls:sys_enter_"):
                name = parts[2].removeprefix("syscalls:sys_enter_")
                counts[name] = int(parts[0]) if parts[0].isdigit() else None
        if not counts:
            counts["error"] = "perf could not count syscalls: " + res.stderr_tail[-300:]
        counts["total"] = sum(v for v in counts.values() if isinstance(v, int))
        if res.returncode != 0:
            counts["error"] = f"exit {res.returncode}"
        counts["record"] = res.record
        return counts
    finally:
        Path(out_path).unlink(missing_ok=True)


def durable_python() -> str:
    return sys.executable


def peer_python() -> str | None:
    """The DBOS venv's python (``setup.sh`` creates it on first use), or None."""
    override = os.environ.get("PEER_PYTHON")
    if override:
        return override
    setup = PEER_DIR / "setup.sh"
    if not setup.exists():
        return None
    try:
        out = subprocess.run(
            ["bash", str(setup)], capture_output=True, text=True, timeout=600, check=True
        )
    except (subprocess.SubprocessError, OSError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[-1] if lines else None


def _cmd(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None


def pg_settings() -> dict[str, Any] | None:
    """``SHOW`` the durability-relevant PostgreSQL settings, or None without a server."""
    try:
        import psycopg
    except ImportError:
        return None
    names = ["server_version", "synchronous_commit", "fsync", "wal_sync_method",
             "full_page_writes", "shared_buffers", "max_connections"]
    try:
        with psycopg.connect(PG_BASE + "/postgres", connect_timeout=3) as conn:
            return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}  # type: ignore[index]
    except Exception:
        return None


def pid_cpu_s(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes_cpu_s(name: str) -> float:
    """Total CPU seconds so far of every live process whose command name is ``name``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != name:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def pg_database_stats(name: str) -> dict[str, int]:
    """Cumulative commit and row counters of database ``name`` (pg_stat_database)."""
    import psycopg

    cols = ["xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
            "tup_fetched"]
    with psycopg.connect(PG_BASE + "/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            f"SELECT {', '.join(cols)} FROM pg_stat_database WHERE datname = %s", [name]
        ).fetchone()
    return dict(zip(cols, row, strict=True)) if row else {}


def fresh_pg_database(name: str) -> str:
    """Drop and create database ``name``; return its URL."""
    import psycopg

    with psycopg.connect(PG_BASE + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_BASE}/{name}"


def drop_pg_database(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(PG_BASE + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass


def machine_facts(peer_py: str | None, data_dir: Path) -> dict[str, Any]:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    fs = _cmd(["df", "-T", str(data_dir)])
    fs_type = fs.splitlines()[-1].split()[1] if fs and len(fs.splitlines()) > 1 else None
    facts: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gib": mem_total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite_version": sqlite3.sqlite_version,
        "data_dir": str(data_dir),
        "data_dir_fs": fs_type,
        "durable_commit": _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "durable_dirty": bool(_cmd(["git", "-C", str(REPO), "status", "--porcelain", "durable"])),
        "durable_sqlite": "journal_mode=WAL, synchronous=FULL (the default of sqlite:/// URLs)",
        "postgres": pg_settings(),
    }
    if peer_py:
        facts["dbos_python"] = peer_py
        facts["dbos_version"] = _cmd([
            peer_py, "-c", "import importlib.metadata as m; print(m.version('dbos'))"])
        facts["dbos_sqlite_version"] = _cmd([
            peer_py, "-c", "import sqlite3; print(sqlite3.sqlite_version)"])
    return facts


@dataclass
class Outcome:
    """One workload's row in the report."""

    wid: str
    title: str
    goal: str
    durable: dict[str, Any] = field(default_factory=dict)
    dbos: dict[str, Any] = field(default_factory=dict)
    restate: dict[str, Any] = field(default_factory=dict)  # Restate runs, by label
    durable_text: str = ""
    dbos_text: str = "n/a"
    restate_text: str = "n/a"
    ratio: float | None = None  # vs DBOS
    restate_ratio: float | None = None  # vs Restate (the smallest, if several)
    ratio_text: str = "n/a"
    met: bool | None = None
    notes: list[str] = field(default_factory=list)


def new_data_dir(base: str | None) -> Path:
    root = Path(base) if base else Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="durable-bench-", dir=root))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
