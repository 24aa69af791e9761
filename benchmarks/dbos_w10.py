"""DBOS side of W10 (run with DBOS's venv): the operations DBOS has, on N finished workflows.

    $DBOS_PY benchmarks/dbos_w10.py --db sqlite --n 1000000 --reps 200

A fresh system database is launched by DBOS (its own migrations), then ``workflow_status`` is
bulk-loaded inside the database (SUCCESS rows, ten names, creation times 1 ms apart), as W10
does for durable. Timed: ``start_workflow`` of a trivial workflow (sequential calls),
``list_workflows(status=SUCCESS, name=..., limit=50, sort_desc=True)`` without inputs and
outputs, and deleting every loaded workflow by creation time (``list_workflows`` with
``end_time`` for the IDs, then ``delete_workflows`` in batches of 2,000). Prints one JSON line.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from datetime import UTC, datetime

sys.path.insert(0, os.environ.get("DURABLE_PEERS_DIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers", "dbos")))

import common  # the peer harness: launch, db_url, pct, ms, emit
from dbos import DBOS

BASE_MS = 1_700_000_000_000
NAMES = 10


@DBOS.workflow()
def trivial(i: int) -> int:
    return i


def _load_sqlite(path: str, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.execute(
        """WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
        INSERT INTO workflow_status (workflow_uuid, status, name, executor_id, created_at,
            updated_at, application_version)
        SELECT printf('bulk-%07d', i), 'SUCCESS', 'bench_wf_' || (i % ?), 'local',
            ? + i, ? + i + 100, 'bench'
        FROM seq""", (n - 1, NAMES, BASE_MS, BASE_MS))
    conn.execute("COMMIT")
    conn.close()


def _load_postgres(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO dbos.workflow_status (workflow_uuid, status, name, executor_id,
                created_at, updated_at, application_version)
            SELECT 'bulk-' || lpad(i::text, 7, '0'), 'SUCCESS', 'bench_wf_' || (i %% %s),
                'local', %s + i, %s + i + 100, 'bench'
            FROM generate_series(0, %s) AS i""", (NAMES, BASE_MS, BASE_MS, n - 1))
        conn.execute("VACUUM ANALYZE dbos.workflow_status")


def _iso(ms_value: int) -> str:
    return datetime.fromtimestamp(ms_value / 1000, UTC).isoformat()


def main() -> None:
    args = common.parse_args(lambda p: (p.add_argument("--n", type=int, default=100_000),
                                        p.add_argument("--reps", type=int, default=50)))
    tag = args.tag or f"w10_{args.db}"
    common.launch(args.db, tag)
    url = common.db_url(args.db, tag, fresh=False)
    t0 = time.perf_counter()
    if args.db == "sqlite":
        _load_sqlite(url.removeprefix("sqlite:///"), args.n)
    else:
        _load_postgres(url, args.n)
    out: dict[str, object] = {"db": args.db, "n": args.n, "load_s": round(
        time.perf_counter() - t0, 1)}
    starts, handles = [], []
    for i in range(args.reps):
        s0 = time.perf_counter()
        handles.append(DBOS.start_workflow(trivial, i))
        starts.append(time.perf_counter() - s0)
    for handle in handles:
        handle.get_result()
    out["start_p50_ms"] = common.ms(common.pct(starts, 0.5))
    out["start_p99_ms"] = common.ms(common.pct(starts, 0.99))
    lists = []
    for i in range(args.reps):
        s0 = time.perf_counter()
        found = DBOS.list_workflows(status="SUCCESS", name=f"bench_wf_{i % NAMES}", limit=50,
                                    sort_desc=True, load_input=False, load_output=False)
        lists.append(time.perf_counter() - s0)
        assert len(found) == 50, len(found)
    out["list_p50_ms"] = common.ms(common.pct(lists, 0.5))
    out["list_p99_ms"] = common.ms(common.pct(lists, 0.99))
    s0 = time.perf_counter()
    ids = [w.workflow_id for w in DBOS.list_workflows(
        start_time=_iso(BASE_MS - 1000), end_time=_iso(BASE_MS + args.n + 1000),
        load_input=False, load_output=False)]
    for start in range(0, len(ids), 2000):
        DBOS.delete_workflows(ids[start:start + 2000])
    out["purge_s"] = round(time.perf_counter() - s0, 2)
    out["purged"] = len(ids)
    out["peak_rss_mb"] = common.peak_rss_mb()
    DBOS.destroy()
    common.emit(out)


if __name__ == "__main__":
    main()
