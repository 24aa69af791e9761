"""W10: operators on a large store: 1,000,000 completed instances, SQLite and PostgreSQL.

For each backend: a fresh store (durable's own schema, every migration applied) is bulk-loaded
with ``n`` completed instances (ten orchestrator names, one history chunk each, creation times
one millisecond apart), generated inside the database (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL) rather than run, which would take hours. SQLite gets no
ANALYZE (durable never runs one); PostgreSQL gets the VACUUM ANALYZE its autovacuum would do.

Then, through durable's client on that store (no worker), each timed ``reps`` times:

- ``start_new`` of a new instance (sequential calls), p50/p99;
- ``get_status`` of an existing instance, p50;
- the list page's query: one status + one name, 50 per page, newest first, p50 (and the same
  50 pages deep, following continuation tokens);
- the dashboard's list page (HTML, through its ASGI app) with that filter, p50;
- the list by instance-ID prefix (one status, 50 per page, newest first), p50, for a prefix
  that matches nothing, one that matches ten instances and one that matches all of them;
- counting instances by status (the dashboard's cards, cached there for 5 s), once;
- purging all ``n`` by creation time range (batched transactions), once.

The prefix lists are also timed on smaller stores (``prefix_sizes``, each loaded fresh), so
the result shows their cost against the number of instances: a prefix is a range of the
primary key (durable/storage/keys.py), so it should not grow with the store.

The DBOS peer (``benchmarks/dbos_w10.py``) does what DBOS has of this on the same number of
``workflow_status`` rows: ``start_workflow``, ``list_workflows(status, name, limit,
sort_desc)``, and deleting by time range (``list_workflows`` for the IDs, then
``delete_workflows``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import REPO, Outcome, drop_pg_database, fresh_pg_database, ms, percentile
from benchmarks.workloads import PeerRun, Status, fmt

ID = "W10"
TITLE = "1,000,000 completed instances: start, status, filtered list, purge (SQLite, PostgreSQL)"
GOAL = ("start_new and status+name list p50 <= 50 ms on both; purge of 1M by time <= 60 s; "
        "prefix list flat from 1,000 instances to n")
PARAMS: dict[str, dict[str, Any]] = {
    "full": {"n": 1_000_000, "reps": 200, "prefix_sizes": [1_000, 10_000, 100_000]},
    "quick": {"n": 100_000, "reps": 50, "prefix_sizes": [1_000, 10_000]},
}
# Prefixes of the loaded IDs (bulk-0000000 ...): none, ten (bulk-0000010..19), all of them.
PREFIXES = {"none": "none-", "ten": "bulk-000001", "all": "bulk-"}
HEADLINE = "worst_list_p50_ms"
HIGHER_IS_BETTER = False
NAMES = 10
BASE_TIME = 1_700_000_000.0
PAGE = 50

_HISTORY = (
    '[{"type":"OrchestratorStarted","timestamp":1700000000.0},'
    '{"type":"ExecutionStarted","timestamp":1700000000.0,"name":"orch","instanceId":"x",'
    '"executionId":"x","input":"\\"x\\""},'
    '{"type":"ExecutionCompleted","timestamp":1700000000.1,"status":"Completed",'
    '"result":"\\"done\\""}]'
)


def _sqlite_load(path: str, n: int) -> None:
    from durable.storage.sqlite import unpatched  # durable's store, opened as durable opens it

    conn = unpatched.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.execute(
        """WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
        INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at,
            completed_at, input, output, revision)
        SELECT printf('bulk-%07d', i), 'orch_' || (i % ?), lower(hex(randomblob(16))),
            'Completed', ? + i * 0.001, ? + i * 0.001 + 0.1, ? + i * 0.001 + 0.1, '"x"',
            '"done"', 3
        FROM seq""", (n - 1, NAMES, BASE_TIME, BASE_TIME, BASE_TIME))
    conn.execute(
        """WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
        INSERT INTO history (instance_id, chunk, events)
        SELECT printf('bulk-%07d', i), 1, ? FROM seq""", (n - 1, _HISTORY))
    conn.execute("COMMIT")
    conn.close()


def _postgres_load(url: str, hub: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{hub}"')
        conn.execute(
            """INSERT INTO instances (instance_id, name, execution_id, status, created_at,
                updated_at, completed_at, input, output, revision)
            SELECT 'bulk-' || lpad(i::text, 7, '0'), 'orch_' || (i %% %s), md5(i::text),
                'Completed', %s + i * 0.001, %s + i * 0.001 + 0.1, %s + i * 0.001 + 0.1,
                '"x"', '"done"', 3
            FROM generate_series(0, %s) AS i""",
            (NAMES, BASE_TIME, BASE_TIME, BASE_TIME, n - 1))
        conn.execute(
            """INSERT INTO history (instance_id, chunk, events)
            SELECT 'bulk-' || lpad(i::text, 7, '0'), 1, %s FROM generate_series(0, %s) AS i""",
            (_HISTORY, n - 1))
        conn.execute("VACUUM ANALYZE instances")
        conn.execute("VACUUM ANALYZE history")


async def _timed(calls: int, make: Any) -> list[float]:
    took = []
    for index in range(calls):
        t0 = time.perf_counter()
        await make(index)
        took.append(time.perf_counter() - t0)
    return took


def _summary(prefix: str, took: list[float]) -> dict[str, Any]:
    return {f"{prefix}_p50_ms": ms(percentile(took, 0.5)),
            f"{prefix}_p99_ms": ms(percentile(took, 0.99))}


async def _measure(url: str, n: int, reps: int) -> dict[str, Any]:
    from durable.client import DurableOrchestrationClient
    from durable.dashboard import Dashboard
    from durable.storage import open_backend

    backend = open_backend(url)
    await backend.open()
    out: dict[str, Any] = {}
    try:
        client = DurableOrchestrationClient(backend)
        rng = random.Random(7)
        # Warm the connection/caches a little, as a serving process would be.
        for _ in range(5):
            await client.get_status(f"bulk-{rng.randrange(n):07d}")
        out.update(_summary("start_new", await _timed(
            reps, lambda i: client.start_new("orch_0", f"new-{i:05d}", {"i": i}))))
        out.update(_summary("get_status", await _timed(
            reps, lambda i: client.get_status(f"bulk-{rng.randrange(n):07d}"))))

        async def first_page(i: int) -> None:
            page, _ = await client.get_status_page(
                runtime_status=[Status.Completed], page_size=PAGE, show_input=False,
                name=f"orch_{i % NAMES}", newest_first=True)
            assert len(page) == PAGE

        out.update(_summary("list", await _timed(reps, first_page)))
        tokens: list[str | None] = [None]

        async def next_page(i: int) -> None:
            page, token = await client.get_status_page(
                runtime_status=[Status.Completed], page_size=PAGE, show_input=False,
                name="orch_3", continuation_token=tokens[-1], newest_first=True)
            assert len(page) == PAGE
            tokens.append(token)

        out.update(_summary("list_deep", await _timed(min(reps, 50), next_page)))
        out["prefix"] = await _prefix_lists(client, n, reps)
        dashboard = Dashboard(client)
        transport = httpx.ASGITransport(app=dashboard)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            async def html(i: int) -> None:
                response = await http.get("/dashboard/", params={
                    "status": "Completed", "name": f"orch_{i % NAMES}"})
                assert response.status_code == 200

            out.update(_summary("dashboard_list", await _timed(reps, html)))
        t0 = time.perf_counter()
        counts = await backend.count_by_status()
        out["count_by_status_ms"] = ms(time.perf_counter() - t0)
        assert counts.get(Status.Completed) == n, counts
        t0 = time.perf_counter()
        result = await client.purge_instance_history_by(
            _datetime(BASE_TIME - 1), _datetime(BASE_TIME + n * 0.001 + 1))
        out["purge_s"] = round(time.perf_counter() - t0, 2)
        out["purged"] = result.instances_deleted
        remaining = await backend.count_by_status()
        out["left_after_purge"] = {s.value: c for s, c in remaining.items()}
    finally:
        await backend.close()
    return out


async def _prefix_lists(client: Any, n: int, reps: int) -> dict[str, float]:
    """p50 (ms) of the operators' list by ID prefix: one status, newest first, 50 a page."""
    out: dict[str, float] = {}
    for label, prefix in PREFIXES.items():
        expected = {"none": 0, "ten": min(10, max(0, n - 10)), "all": min(PAGE, n)}[label]

        async def page(i: int, prefix: str = prefix, expected: int = expected) -> None:
            found, _ = await client.get_status_page(
                runtime_status=[Status.Completed], instance_id_prefix=prefix, page_size=PAGE,
                show_input=False, newest_first=True)
            assert len(found) == expected, (prefix, len(found))

        out[label] = ms(percentile(await _timed(reps, page), 0.5))
    return out


async def _prefix_only(url: str, n: int, reps: int) -> dict[str, float]:
    from durable.client import DurableOrchestrationClient
    from durable.storage import open_backend

    backend = open_backend(url)
    await backend.open()
    try:
        return await _prefix_lists(DurableOrchestrationClient(backend), n, reps)
    finally:
        await backend.close()


async def _prefix_sweep(backend: str, url: str, sizes: list[int], reps: int) -> dict[str, Any]:
    """The prefix lists on a fresh store of each size (SQLite: a file next to ``url``'s;
    PostgreSQL: a hub of its own in ``url``'s database)."""
    from durable.storage import open_backend

    found: dict[str, Any] = {}
    for size in sizes:
        if backend == "sqlite":
            path = url.removeprefix("sqlite:///") + f".{size}"
            store_url = f"sqlite:///{path}"
        else:
            hub = f"w10p{size}"
            store_url = f"{url}?hub={hub}"
        store = open_backend(store_url)
        await store.open()
        await store.close()
        if backend == "sqlite":
            _sqlite_load(path, size)
        else:
            await asyncio.to_thread(_postgres_load, url, hub, size)
        found[str(size)] = await _prefix_only(store_url, size, reps)
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path + suffix)
    return found


def _datetime(timestamp: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    from durable.storage import open_backend

    n, reps = params["n"], params["reps"]
    sizes = [size for size in params.get("prefix_sizes", []) if size < n]
    result: dict[str, Any] = {"n": n, "reps": reps}
    # SQLite: the child's file URL.
    result["sqlite_prefix_by_n"] = await _prefix_sweep("sqlite", url, sizes, reps)
    path = url.removeprefix("sqlite:///")
    store = open_backend(url)
    await store.open()  # migrations
    await store.close()
    t0 = time.perf_counter()
    _sqlite_load(path, n)
    result["sqlite_load_s"] = round(time.perf_counter() - t0, 1)
    result["sqlite_file_mb"] = round(os.path.getsize(path) / 2**20, 1)
    result["sqlite"] = await _measure(url, n, reps)
    result["sqlite_prefix_by_n"][str(n)] = result["sqlite"]["prefix"]
    # PostgreSQL: a fresh database.
    dbname = "durable_bench_w10"
    base = fresh_pg_database(dbname)
    pg_url = f"{base}?hub=w10"
    try:
        result["postgres_prefix_by_n"] = await _prefix_sweep("postgres", base, sizes, reps)
        store = open_backend(pg_url)
        await store.open()
        await store.close()
        t0 = time.perf_counter()
        await asyncio.to_thread(_postgres_load, base, "w10", n)
        result["postgres_load_s"] = round(time.perf_counter() - t0, 1)
        result["postgres"] = await _measure(pg_url, n, reps)
        result["postgres_prefix_by_n"][str(n)] = result["postgres"]["prefix"]
    finally:
        drop_pg_database(dbname)
    worst = [result[b]["list_p50_ms"] for b in ("sqlite", "postgres")]
    result["worst_list_p50_ms"] = max(worst)
    return result


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    script = str(Path(REPO) / "benchmarks" / "dbos_w10.py")
    n = str(params["n"])
    reps = str(params["reps"])
    return [
        PeerRun("sqlite WAL", script, ["--db", "sqlite", "--n", n, "--reps", reps],
                {"PEER_SQLITE_WAL": "1"}, timeout=1800),
        PeerRun("postgres", script, ["--db", "postgres", "--n", n, "--reps", reps],
                timeout=1800),
    ]


def _side(d: dict[str, Any], backend: str) -> str:
    side = d.get(backend) or {}
    return (f"{backend}: start {fmt(side.get('start_new_p50_ms'), 1)} ms, "
            f"list {fmt(side.get('list_p50_ms'), 1)} ms, "
            f"purge {fmt(side.get('purge_s'), 1)} s")


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    out.durable_text = "; ".join(_side(d, b) for b in ("sqlite", "postgres"))
    texts = []
    for label, peer in out.dbos.items():
        if peer.get("list_p50_ms") is not None:
            texts.append(f"{label}: start {fmt(peer.get('start_p50_ms'), 1)} ms, list "
                         f"{fmt(peer.get('list_p50_ms'), 1)} ms, purge "
                         f"{fmt(peer.get('purge_s'), 1)} s")
    if texts:
        out.dbos_text = "; ".join(texts)
    peers = {label.split()[0]: peer for label, peer in out.dbos.items()}
    ratios = []
    for backend in ("sqlite", "postgres"):
        ours = (d.get(backend) or {}).get("list_p50_ms")
        theirs = (peers.get(backend) or {}).get("list_p50_ms")
        if ours and theirs:
            ratios.append(theirs / ours)
    if ratios:
        out.ratio = min(ratios)
        out.ratio_text = "list " + " / ".join(f"{r:.1f}x" for r in ratios)
    flat = {b: prefix_flat(d.get(f"{b}_prefix_by_n") or {}) for b in ("sqlite", "postgres")}
    ok = all(flat.values()) and all(
        (d.get(b) or {}).get("start_new_p50_ms", 1e9) <= 50
        and (d.get(b) or {}).get("list_p50_ms", 1e9) <= 50
        and (d.get(b) or {}).get("purge_s", 1e9) <= 60
        and (d.get(b) or {}).get("purged") == d.get("n")
        for b in ("sqlite", "postgres")
    )
    out.met = ok if params["n"] >= 1_000_000 else None
    if params["n"] < 1_000_000:
        out.notes.append(f"n = {params['n']:,} (quick mode): the goal is judged at 1,000,000")
    for backend in ("sqlite", "postgres"):
        side = d.get(backend) or {}
        out.notes.append(
            f"{backend}: get_status p50 {fmt(side.get('get_status_p50_ms'), 2)} ms, "
            f"list 50 pages deep p50 {fmt(side.get('list_deep_p50_ms'), 2)} ms, dashboard page "
            f"p50 {fmt(side.get('dashboard_list_p50_ms'), 1)} ms, count by status "
            f"{fmt(side.get('count_by_status_ms'), 0)} ms, load "
            f"{fmt(d.get(backend + '_load_s'), 1)} s")
        by_n = d.get(f"{backend}_prefix_by_n") or {}
        if by_n:
            cells = ", ".join(
                f"{int(size):,}: " + "/".join(fmt(v.get(k), 2) for k in PREFIXES)
                for size, v in sorted(by_n.items(), key=lambda kv: int(kv[0])))
            out.notes.append(f"{backend}: prefix list p50 ms (matching none/ten/all) by "
                             f"instances: {cells}; flat: {'yes' if flat[backend] else 'NO'}")


def prefix_flat(by_n: dict[str, dict[str, float]]) -> bool:
    """Whether the prefix lists that match few instances cost about the same on the largest
    store as on the smallest: at most 3 times, or 1 ms more (timer noise at ~0.2 ms)."""
    if len(by_n) < 2:
        return False
    sizes = sorted(by_n, key=int)
    small, large = by_n[sizes[0]], by_n[sizes[-1]]
    return all(large[k] <= max(3 * small[k], small[k] + 1.0) for k in ("none", "ten"))
