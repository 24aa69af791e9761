"""W9: durable entities. Counters signalled from a client, called from orchestrations, idle.

- (a) 10,000 client ``signal_entity(add, 1)`` spread round-robin over 100 counters;
- (b) 10,000 signals to ONE counter (only batching its operations gets it fast);
- (c) 1,000 orchestrations started at once, each 5 sequential ``call_entity(add, 1)`` on one
  of 100 counters (10 orchestrations per counter);
- (idle) memory with many idle entities: a ``durable worker`` process applies one signal to
  each of 1,000, then 10,000, 50,000 and 100,000 entities; its RSS is read at each stage.
  "Flat" = the last 50,000 idle entities add at most 100 bytes each (5 MB) to the worker's
  RSS. Growth before that is expected: a worker caches up to 10,000 instances (entities
  included) by default; the growth from 1,000 to 100,000 is reported as well.

Every part runs in a fresh process (``python -m benchmarks.workloads.w9_entities PART``) on a
fresh SQLite file (and, if PostgreSQL is reachable, (a)-(c) again on a fresh database), so each
has its own peak RSS and CPU time (``wait4``). (a)-(c) use an in-process ``Host`` (worker and
client in one process, as W1 does).

ops/s = operations APPLIED per second: the clock runs from just before the first signal (one
``asyncio.gather`` of all of them) to the moment every counter's state, read back with
``read_entity_state``, equals the number of signals sent to it. Each counter is polled in turn
until it is complete; the gap between two reads is 1 % of the time elapsed so far (5-200 ms),
which bounds both the measuring error and the load the polling adds; the Restate script polls
the same way. A counter above its target (a duplicate) fails the run. (c) orch/s runs from
the first ``start_new`` to the last ``wait_for_completion``; every orchestration's 5 results
are checked (each ``add`` returns the new value, so a counter's results must be exactly
1..50, each once: an operation applied twice or lost shows).

Profiling: ``benchmarks/profiling.py W9 [--parts b] [--gil]`` runs the parts under py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import (
    REPO,
    Outcome,
    count_syncs,
    drop_pg_database,
    fresh_pg_database,
    pg_settings,
    run_child,
    self_cpu_s,
    self_peak_rss_mb,
)
from benchmarks.sqlite_counters import LeaseCounter, StatementCounter
from benchmarks.workloads import PeerRun, Status, fmt, ratio_text

ID = "W9"
TITLE = ("Entities: (a) 10,000 signals over 100 counters, (b) 10,000 to ONE counter, "
         "(c) 1,000 orchestrations x 5 call_entity, 100,000 idle entities (SQLite)")
GOAL = ("(a), (b) >= 10,000 ops/s and >= 5x Restate; (c) >= 800 orch/s; "
        "RSS flat with 100,000 idle entities")
PARAMS: dict[str, dict[str, Any]] = {
    "full": {"signals": 10_000, "keys": 100, "orchestrations": 1_000, "calls": 5,
             "call_keys": 100, "idle": [1_000, 10_000, 50_000, 100_000], "postgres": True},
    "quick": {"signals": 2_000, "keys": 100, "orchestrations": 300, "calls": 5,
              "call_keys": 100, "idle": [1_000, 12_000, 20_000], "postgres": False},
}
HEADLINE = "a_ops_per_s"
HIGHER_IS_BETTER = True
# Reported per repetition as well (run.py keeps them beside the headline's).
REP_KEYS = ["a_ops_per_s", "b_ops_per_s", "c_orch_per_s", "idle_rss_growth_mb",
            "idle_last_bytes_per_entity"]
PARTS = ["a", "b", "c", "idle"]
# run.py --count-fsyncs: count each of (a)-(c) in its own untimed process (perf stat).
SYNC_PARAMS = {"count_syncs": True, "postgres": False, "parts": ["a", "b", "c"]}
GOALS = {"a": 10_000, "b": 10_000, "c": 800}
# "Flat": each idle entity of the last stage (beyond the worker's 10,000-instance cache) may
# add at most this much to the worker's RSS.
IDLE_LIMIT_BYTES_PER_ENTITY = 100
IDLE_CHUNK = 1_000  # signals per gather in the idle part (a client sending steadily)
log = logging.getLogger("benchmarks.w9")


def poll_gap(elapsed: float) -> float:
    """Seconds between two reads of an unfinished counter: 1 % of the elapsed time."""
    return min(0.2, max(0.005, 0.01 * elapsed))


def expected_counts(n: int, keys: int) -> list[int]:
    return [n // keys + (1 if k < n % keys else 0) for k in range(keys)]


async def wait_for_counters(
    client: df.DurableOrchestrationClient, ids: list[df.EntityId], expected: list[int],
    t0: float, deadline: float,
) -> int:
    """Return (the number of reads) once every counter's state equals its expected value."""
    reads = 0
    for entity, want in zip(ids, expected, strict=True):
        while True:
            reads += 1
            state = await client.read_entity_state(entity)
            value = state.entity_state if state.entity_exists else 0
            if value == want:
                break
            if value > want:
                raise RuntimeError(f"{entity} is {value}, more than the {want} signals sent")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{entity} stuck at {value} of {want}")
            await asyncio.sleep(poll_gap(time.perf_counter() - t0))
    return reads


async def all_counters(client: df.DurableOrchestrationClient) -> dict[str, Any]:
    """Every counter's state, by key (``list_entities`` in pages)."""
    found: dict[str, Any] = {}
    token: str | None = None
    while True:
        page = await client.list_entities("counter", page_size=1000, continuation_token=token)
        found.update({e.entity_id.key: e.state for e in page.entities})
        token = page.continuation_token
        if token is None:
            return found


def _stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def _statement_counter(url: str, params: dict[str, Any]) -> StatementCounter | None:
    """With ``count_statements`` (SQLite only): count the backend's statements. Installed
    before the host opens, since its database threads pick up the executor at start."""
    if params.get("count_statements") and url.startswith("sqlite"):
        return StatementCounter().install()
    return None


@contextlib.asynccontextmanager
async def profiled(params: dict[str, Any], tag: str) -> AsyncIterator[None]:
    """With ``py_spy_dir`` in ``params``: py-spy samples this process (every thread, 1 kHz,
    on-CPU only; ``py_spy_gil``: only while holding the GIL) during the block, i.e. the
    timed window without start-up and imports. Otherwise nothing."""
    folder = params.get("py_spy_dir")
    if not folder:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    out = Path(folder) / f"w9-{tag}.txt"
    proc = subprocess.Popen(
        [str(spy), "record", "--pid", str(os.getpid()), "--rate", "1000", "--format", "raw",
         "--threads", "--nonblocking", *(["--gil"] if params.get("py_spy_gil") else []),
         "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(1.0)  # let py-spy attach before the clock starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(proc.wait, 30)


async def part_signals(url: str, n: int, keys: int, params: dict[str, Any], tag: str
                       ) -> dict[str, Any]:
    """(a) with ``keys`` = 100, (b) with ``keys`` = 1."""
    statements = _statement_counter(url, params)
    async with df.Host(apps.app, storage=url) as host, profiled(params, tag):
        client = host.client
        assert host.worker is not None
        leases = LeaseCounter().install(host.backend)
        ids = [df.EntityId("Counter", f"k{k}") for k in range(keys)]
        expected = expected_counts(n, keys)
        stats0, cpu0 = dict(host.worker.stats), self_cpu_s()
        t0 = time.perf_counter()
        await asyncio.gather(*(client.signal_entity(ids[i % keys], "add", 1) for i in range(n)))
        t_sent = time.perf_counter()
        reads = await wait_for_counters(client, ids, expected, t0, time.monotonic() + 600)
        wall = time.perf_counter() - t0
        cpu1, stats1 = self_cpu_s(), dict(host.worker.stats)
        final = await all_counters(client)
    wrong = sum(1 for k, want in enumerate(expected) if final.get(f"k{k}") != want)
    stats = _stats_delta(stats0, stats1)
    return {
        "n": n, "keys": keys, "wall_s": round(wall, 4), "send_s": round(t_sent - t0, 4),
        "ops_per_s": round(n / wall, 1), "reads": reads, "wrong_final": wrong,
        "cpu_s": round(cpu1 - cpu0, 3), "worker": stats,
        # One episode of an entity = one batch of its pending operations.
        "ops_per_batch": round(n / stats["episodes"], 1) if stats["episodes"] else None,
        # Each leased message is read and JSON-decoded: ideally 1 per operation.
        "leases": leases.summary(),
        "messages_leased_per_op": round(leases.messages / n, 2),
        **({"statements": statements.summary(n)} if statements else {}),
    }


async def part_calls(url: str, m: int, calls: int, keys: int, params: dict[str, Any],
                     tag: str) -> dict[str, Any]:
    """(c): ``m`` orchestrations, each ``calls`` sequential call_entity(add, 1)."""
    statements = _statement_counter(url, params)
    async with df.Host(apps.app, storage=url) as host, profiled(params, tag):
        client = host.client
        assert host.worker is not None
        leases = LeaseCounter().install(host.backend)
        stats0, cpu0 = dict(host.worker.stats), self_cpu_s()
        t0 = time.perf_counter()
        ids = await asyncio.gather(*(
            client.start_new("call_counter", None, [f"k{i % keys}", calls]) for i in range(m)))
        t_started = time.perf_counter()
        statuses = await asyncio.gather(
            *(client.wait_for_completion(i, timeout=600) for i in ids))
        wall = time.perf_counter() - t0
        cpu1, stats1 = self_cpu_s(), dict(host.worker.stats)
        final = await all_counters(client)
    per_key: dict[str, list[int]] = {}
    bad = 0
    for i, status in enumerate(statuses):
        out = status.output
        if (status.runtime_status != Status.Completed or not isinstance(out, list)
                or len(out) != calls or out != sorted(set(out))):
            bad += 1
            continue
        per_key.setdefault(f"k{i % keys}", []).extend(out)
    counts = expected_counts(m, keys)
    used = [k for k in range(keys) if counts[k]]
    exact = sum(1 for k in used
                if sorted(per_key.get(f"k{k}", [])) == list(range(1, calls * counts[k] + 1))
                and final.get(f"k{k}") == calls * counts[k])
    return {
        "n": m, "calls": calls, "keys": keys, "wall_s": round(wall, 4),
        "start_phase_s": round(t_started - t0, 4), "orch_per_s": round(m / wall, 1),
        "calls_per_s": round(m * calls / wall, 1), "bad_output": bad,
        "counters": len(used), "counters_exact": exact, "cpu_s": round(cpu1 - cpu0, 3),
        "worker": _stats_delta(stats0, stats1),
        "leases": leases.summary(),
        **({"statements": statements.summary(m)} if statements else {}),
    }


def _proc_memory(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    # RssShmem is SQLite's WAL index (the -shm file, mapped): it grows with the WAL between
    # checkpoints, which is not memory the worker's own structures hold.
    return {"rss_mb": values.get("VmRSS", float("nan")),
            "peak_mb": values.get("VmHWM", float("nan")),
            "anon_mb": values.get("RssAnon", float("nan")),
            "file_mb": values.get("RssFile", float("nan")),
            "shmem_mb": values.get("RssShmem", float("nan"))}


async def _wait_all_applied(client: df.DurableOrchestrationClient, total: int,
                            deadline: float) -> int:
    """Return once the first ``total`` entities (``e000000``...) hold state 1; page reads.

    Every entity's row exists once its signal is committed, so pages of ``include_deleted``
    listings are stable; an incomplete page is read again from the same token.
    """
    token: str | None = None
    checked = reads = 0
    while checked < total:
        reads += 1
        page = await client.list_entities("counter", include_deleted=True, page_size=1000,
                                          continuation_token=token)
        done = [e for e in page.entities if e.exists and e.state == 1]
        if len(done) == len(page.entities) and (len(done) == 1000 or
                                                checked + len(done) == total):
            checked += len(done)
            token = page.continuation_token
            if token is None:
                break
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {checked + len(done)} of {total} entities applied")
        await asyncio.sleep(0.05)
    if checked != total:
        raise RuntimeError(f"{checked} entities found, {total} expected")
    return reads


async def part_idle(url: str, stages: list[int]) -> dict[str, Any]:
    """Worker RSS with 1,000 / 10,000 / 100,000 idle entities (one signal each)."""
    logs = Path(tempfile.mkdtemp(prefix="w9-idle-"))
    log_path = logs / "worker.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        async with df.Host(apps.app, storage=url, run_worker=False) as host:
            client = host.client
            with open(log_path, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "durable.cli", "worker", "benchmarks.apps:app",
                     "--storage", url],
                    stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
            deadline = time.monotonic() + 60
            while "serving" not in log_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("worker did not start: " + log_path.read_text()[-2000:])
                await asyncio.sleep(0.02)
            memory = [dict(entities=0, **_proc_memory(proc.pid))]
            created = 0
            for target in stages:
                t0 = time.perf_counter()
                for start in range(created, target, IDLE_CHUNK):
                    await asyncio.gather(*(
                        client.signal_entity(df.EntityId("Counter", f"e{i:06d}"), "add", 1)
                        for i in range(start, min(start + IDLE_CHUNK, target))))
                t_sent = time.perf_counter()
                reads = await _wait_all_applied(client, target, time.monotonic() + 900)
                applied = time.perf_counter() - t0
                memory.append(dict(entities=target, **_proc_memory(proc.pid),
                                   send_s=round(t_sent - t0, 2),
                                   applied_s=round(applied, 2),
                                   entities_per_s=round((target - created) / applied, 1),
                                   page_reads=reads))
                created = target
        os.killpg(proc.pid, signal.SIGTERM)
        _, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        first, before_last, last = memory[1], memory[-2], memory[-1]
        added = last["entities"] - before_last["entities"]
        last_growth = last["rss_mb"] - before_last["rss_mb"]
        return {
            "stages": memory,
            "worker_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "worker_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
            "from_entities": first["entities"], "to_entities": last["entities"],
            "last_stage_growth_mb": round(last_growth, 1),
            "last_stage_entities": added,
            "last_bytes_per_entity": round(last_growth * 1024 * 1024 / added) if added else None,
        }
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(logs, ignore_errors=True)


async def run_part(part: str, url: str, params: dict[str, Any], tag: str | None = None
                   ) -> dict[str, Any]:
    tag = tag or part
    if part == "a":
        return await part_signals(url, params["signals"], params["keys"], params, tag)
    if part == "b":
        return await part_signals(url, params["signals"], 1, params, tag)
    if part == "c":
        return await part_calls(url, params["orchestrations"], params["calls"],
                                params["call_keys"], params, tag)
    if part == "idle":
        return await part_idle(url, params["idle"])
    raise ValueError(f"unknown W9 part {part!r}")


# -- the parent side: one fresh process per part ----------------------------------------------


def _part_url(url: str, part: str) -> tuple[str, list[Path]]:
    """A fresh SQLite file beside ``url``'s for one part (and the files to delete after)."""
    path = Path(url.removeprefix("sqlite:///"))
    part_path = path.with_name(f"{path.stem}-{part}{path.suffix}")
    files = [part_path.with_name(part_path.name + s) for s in ("", "-wal", "-shm")]
    return "sqlite:///" + str(part_path), files


def _part_argv(part: str, url: str, params: dict[str, Any], tag: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.workloads.w9_entities", part, "--url", url,
            "--params", json.dumps(params), "--tag", tag]


async def _run_part_process(part: str, url: str, params: dict[str, Any], tag: str
                            ) -> dict[str, Any]:
    argv = _part_argv(part, url, params, tag)
    if params.get("count_syncs"):
        counts = await asyncio.to_thread(count_syncs, argv, cwd=REPO, timeout=1800)
        record = dict(counts.pop("record", None) or {})
        record["sync_calls"] = counts
        return record
    res = await asyncio.to_thread(run_child, argv, cwd=REPO, timeout=1800)
    record: dict[str, Any] = dict(res.record or {})
    record.update(peak_rss_mb=res.peak_rss_mb, process_cpu_s=res.cpu_s,
                  process_wall_s=round(res.wall_s, 2))
    if res.returncode != 0 or res.record is None:
        record["error"] = f"part {tag}: exit {res.returncode}: {res.stderr_tail[-1200:]}"
    return record


def _postgres_reason() -> str | None:
    try:
        import durable.storage.postgres.backend  # noqa: F401
    except ImportError:
        return "psycopg not installed"
    if pg_settings() is None:
        return "no PostgreSQL server reachable"
    return None


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    parts = params.get("parts", PARTS)
    result: dict[str, Any] = {"parts": {}}
    for part in parts:
        part_url, files = _part_url(url, part)
        try:
            result["parts"][part] = await _run_part_process(part, part_url, params, part)
        finally:
            for f in files:
                f.unlink(missing_ok=True)
    if params.get("postgres"):
        reason = _postgres_reason()
        pg: dict[str, Any] = {"available": reason is None}
        if reason:
            pg["reason"] = reason
        for part in [p for p in parts if p != "idle"] if reason is None else []:
            db = f"durable_bench_w9_{part}_{os.getpid()}"
            try:
                pg[part] = await _run_part_process(part, fresh_pg_database(db), params,
                                                   f"{part}-pg")
            finally:
                drop_pg_database(db)
        result["postgres"] = pg
    got = result["parts"]
    result["a_ops_per_s"] = got.get("a", {}).get("ops_per_s")
    result["b_ops_per_s"] = got.get("b", {}).get("ops_per_s")
    result["c_orch_per_s"] = got.get("c", {}).get("orch_per_s")
    result["idle_rss_growth_mb"] = got.get("idle", {}).get("rss_growth_mb")
    result["idle_last_bytes_per_entity"] = got.get("idle", {}).get("last_bytes_per_entity")
    errors = [v["error"] for v in got.values() if "error" in v]
    if errors:
        result["part_errors"] = errors
    if params.get("count_syncs"):
        result["part_syncs"] = {part: rec.get("sync_calls") for part, rec in got.items()}
    return result


# -- peers --------------------------------------------------------------------------------------


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return []  # DBOS has no entities / virtual objects


def restate_runs(params: dict[str, Any]) -> list[PeerRun]:
    n = str(params["signals"])
    return [
        PeerRun("(a) virtual object, 100 keys", "bench.mjs",
                ["--workload", "w9a", "--n", n, "--keys", str(params["keys"])], timeout=900),
        PeerRun("(b) virtual object, 1 key", "bench.mjs",
                ["--workload", "w9b", "--n", n], timeout=1800),
    ]


def _us(seconds: float, count: int) -> int:
    return round(1e6 * seconds / count) if count else 0


def _at_most(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    parts = d.get("parts", {})
    a, b, c, idle = (parts.get(p, {}) for p in PARTS)
    texts = []
    if a:
        texts.append(f"(a) {fmt(a.get('ops_per_s'))} ops/s")
    if b:
        texts.append(f"(b) {fmt(b.get('ops_per_s'))} ops/s")
    if c:
        texts.append(f"(c) {fmt(c.get('orch_per_s'))} orch/s")
    if idle.get("stages"):
        texts.append(f"idle RSS {fmt(idle['stages'][1]['rss_mb'])} MB @ "
                     f"{idle['from_entities']:,} -> {fmt(idle['stages'][-1]['rss_mb'])} MB @ "
                     f"{idle['to_entities']:,} ({idle['last_bytes_per_entity']} B/entity "
                     f"over the last {idle['last_stage_entities']:,})")
    out.durable_text = "; ".join(texts)
    peer_a = next((v for v in out.restate.values() if v.get("workload") == "w9a"), {})
    peer_b = next((v for v in out.restate.values() if v.get("workload") == "w9b"), {})
    shown = [f"({k}) {fmt(v['ops_per_s'])} ops/s" for k, v in (("a", peer_a), ("b", peer_b))
             if v.get("ops_per_s")]
    if shown:
        out.restate_text = "; ".join(shown)
    ratios: dict[str, float] = {}
    for key, mine, peer in (("a", a, peer_a), ("b", b, peer_b)):
        if mine.get("ops_per_s") and peer.get("ops_per_s"):
            ratios[key] = mine["ops_per_s"] / peer["ops_per_s"]
    for key, peer in (("a", peer_a), ("b", peer_b)):
        if peer.get("ops_per_s"):
            cpu = sum(peer.get(k) or 0 for k in ("server_cpu_s", "service_cpu_s",
                                                 "driver_cpu_s"))
            out.notes.append(
                f"Restate ({key}): {peer['n']:,} sends to {peer['keys']} key(s) applied in "
                f"{peer['wall_s']:.2f} s (sending {peer['send_s']:.2f} s, {peer['concurrency']} "
                f"in flight); CPU in the window: server {peer.get('server_cpu_s')} + service "
                f"{peer.get('service_cpu_s')} + client {peer.get('driver_cpu_s')} s = "
                f"{_us(cpu, peer['n'])} us/op; peak RSS server {peer.get('server_peak_rss_mb')}"
                f" MB, service {peer.get('service_peak_rss_mb')} MB")
    if ratios:
        out.restate_ratio = min(ratios.values())
        out.ratio_text = ", ".join(f"({k}) {ratio_text(r)} Restate" for k, r in ratios.items())
    for key, part in (("a", a), ("b", b)):
        if part.get("ops_per_s"):
            out.notes.append(
                f"({key}) {part['n']:,} signals over {part['keys']} counter(s): all applied in "
                f"{part['wall_s']} s (sending {part['send_s']} s); "
                f"{part.get('ops_per_batch')} ops per entity batch "
                f"({part['worker']['episodes']} batches); {part.get('messages_leased_per_op')} "
                f"inbox messages leased per op ({part['leases']['lease_calls']} leases); "
                f"CPU in the window {part['cpu_s']} s = {_us(part['cpu_s'], part['n'])} us/op; "
                f"peak RSS {part.get('peak_rss_mb')} MB; {part['reads']} state reads")
    if c.get("orch_per_s"):
        out.notes.append(
            f"(c) {c['n']:,} orchestrations x {c['calls']} call_entity over {c['keys']} "
            f"counters: {c['wall_s']} s ({fmt(c['calls_per_s'])} calls/s; starting all "
            f"{c['start_phase_s']} s); {c['worker']['episodes']} episodes; CPU in the window "
            f"{c['cpu_s']} s = {_us(c['cpu_s'], c['n'] * c['calls'])} us/call; peak RSS "
            f"{c.get('peak_rss_mb')} MB")
    if idle.get("stages"):
        steps = ", ".join(f"{s['entities']:,}: {s['rss_mb']} MB" for s in idle["stages"])
        rate = idle["stages"][-1].get("entities_per_s")
        out.notes.append(
            f"idle: worker RSS by idle entities {steps} (+{idle['rss_growth_mb']} MB from "
            f"{idle['from_entities']:,}; the last {idle['last_stage_entities']:,} added "
            f"{idle['last_stage_growth_mb']} MB = {idle['last_bytes_per_entity']} B each, limit "
            f"{IDLE_LIMIT_BYTES_PER_ENTITY}); worker peak {idle['worker_peak_rss_mb']} MB; "
            f"last stage applied {fmt(rate)} new entities/s (separate worker process)")
    pg = d.get("postgres") or {}
    if pg.get("available"):
        shown_pg = [f"({k}) {fmt(pg[k].get(m))} {u}" for k, m, u in (
            ("a", "ops_per_s", "ops/s"), ("b", "ops_per_s", "ops/s"),
            ("c", "orch_per_s", "orch/s")) if k in pg]
        out.notes.append("PostgreSQL (extra, in-process Host): " + "; ".join(shown_pg))
    elif pg:
        out.notes.append(f"PostgreSQL not run: {pg.get('reason')}")
    for e in d.get("part_errors", []):
        out.notes.append("ERROR " + e[-400:])
    if params["signals"] != 10_000:
        out.notes.append(f"quick mode: {params['signals']:,} signals, "
                         f"{params['orchestrations']:,} orchestrations, idle {params['idle']}")
    correct = (a.get("wrong_final") == 0 and b.get("wrong_final") == 0
               and c.get("bad_output") == 0
               and c.get("counters_exact") == c.get("counters", c.get("keys")))
    if not correct:
        out.notes.append("CORRECTNESS: a counter or an orchestration output was wrong")
    goals = [a.get("ops_per_s", 0) >= GOALS["a"], b.get("ops_per_s", 0) >= GOALS["b"],
             c.get("orch_per_s", 0) >= GOALS["c"],
             _at_most(idle.get("last_bytes_per_entity"), IDLE_LIMIT_BYTES_PER_ENTITY),
             bool(ratios) and min(ratios.values()) >= 5]
    out.met = bool(correct and all(goals))


# -- one part in this (fresh) process -----------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one W9 part; print one JSON line.")
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--params", default=json.dumps(PARAMS["quick"]))
    parser.add_argument("--tag", default=None, help="names the py-spy output (profiling)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    params = json.loads(args.params)
    result = asyncio.run(run_part(args.part, args.url, params, args.tag))
    result["self_peak_rss_mb"] = self_peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
