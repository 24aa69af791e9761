"""W4: one 3-activity orchestration, 200 times one after another; start-to-result latency.

Each sample is ``start_new`` + ``wait_for_completion`` (in-process worker, SQLite WAL+FULL).
The first ``warmup`` runs are not counted (the DBOS script drops 5 as well).
"""

from __future__ import annotations

import time
from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import Outcome, ms, percentile
from benchmarks.workloads import PeerRun, fmt, ratio_text

ID = "W4"
TITLE = "one 3-activity orchestration, 200 times one after another: start-to-result latency"
GOAL = "p50 <= 3 ms, p99 <= 10 ms"
PARAMS: dict[str, dict[str, Any]] = {
    "full": {"n": 200, "warmup": 5}, "quick": {"n": 100, "warmup": 5}
}
HEADLINE = "p50_ms"
HIGHER_IS_BETTER = False
EXPECTED = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    n, warmup = params["n"], params["warmup"]
    latencies: list[float] = []
    wrong = 0
    async with df.Host(apps.app, storage=url) as host:
        client = host.client
        for i in range(n + warmup):
            t0 = time.perf_counter()
            instance_id = await client.start_new("hello_sequence")
            status = await client.wait_for_completion(instance_id, timeout=60)
            elapsed = time.perf_counter() - t0
            if status.output != EXPECTED:
                wrong += 1
            if i >= warmup:
                latencies.append(elapsed)
    return {
        "n": n,
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p90_ms": ms(percentile(latencies, 0.9)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies)),
        "mean_ms": ms(sum(latencies) / len(latencies)),
        "wrong_output": wrong,
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
    }


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    n = str(params["n"])
    wal = {"PEER_SQLITE_WAL": "1"}
    return [
        PeerRun("sqlite WAL+FULL, start+get_result", "seq_latency.py",
                ["--db", "sqlite", "--mode", "start", "--n", n], wal),
        PeerRun("sqlite WAL+FULL, direct call", "seq_latency.py",
                ["--db", "sqlite", "--mode", "sync", "--n", n], wal),
    ]


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    out.durable_text = f"p50 {fmt(d.get('p50_ms'), 2)} / p99 {fmt(d.get('p99_ms'), 2)} ms"
    peers = [v for v in out.dbos.values() if v.get("p50_ms")]
    best = min(peers, key=lambda v: v["p50_ms"]) if peers else None
    if best is not None:
        out.dbos_text = (f"p50 {fmt(best['p50_ms'], 2)} / p99 {fmt(best.get('p99_ms'), 2)} ms "
                         f"({best['label']})")
        out.ratio = best["p50_ms"] / d["p50_ms"]
        out.ratio_text = f"{ratio_text(out.ratio)} (p50)"
    out.met = bool(
        d.get("wrong_output") == 0
        and d.get("p50_ms", 1e9) <= 3.0
        and d.get("p99_ms", 1e9) <= 10.0
    )
