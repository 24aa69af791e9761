"""W1: 1,000 orchestrations started at once, each three sequential ``say_hello`` activities."""

from __future__ import annotations

from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import Outcome
from benchmarks.telemetry_knob import observer_from_env
from benchmarks.workloads import PeerRun, fmt, ratio_text, start_all_then_wait

ID = "W1"
TITLE = "1,000 orchestrations x 3 sequential activities, started at once (SQLite)"
GOAL = ">= 1,000 orch/s and >= 10x DBOS"
PARAMS: dict[str, dict[str, Any]] = {"full": {"n": 1000}, "quick": {"n": 300}}
HEADLINE = "orch_per_s"
HIGHER_IS_BETTER = True
EXPECTED = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    # DURABLE_BENCH_TELEMETRY=otel,metrics measures W1 with telemetry on (docs/benchmarks.md).
    async with df.Host(apps.app, storage=url, observer=observer_from_env()) as host:
        return await start_all_then_wait(
            host.client, "hello_sequence", params["n"], EXPECTED, timeout=300
        )


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    n = str(params["n"])
    return [
        # Same durability as durable: WAL + synchronous=FULL (SQLite's default synchronous).
        PeerRun("sqlite WAL+FULL, sync", "hello_sequence.py",
                ["--db", "sqlite", "--mode", "sync", "--n", n], {"PEER_SQLITE_WAL": "1"}),
        # DBOS out of the box: rollback journal (DELETE) + synchronous=FULL.
        PeerRun("sqlite DELETE+FULL (DBOS default), sync", "hello_sequence.py",
                ["--db", "sqlite", "--mode", "sync", "--n", n]),
    ]


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    out.durable_text = f"{fmt(d.get('orch_per_s'))} orch/s"
    peers = [v for v in out.dbos.values() if v.get("wf_per_s")]
    best = max(peers, key=lambda v: v["wf_per_s"]) if peers else None
    if best is not None:
        out.dbos_text = f"{fmt(best['wf_per_s'])} wf/s ({best['label']})"
        out.ratio = d["orch_per_s"] / best["wf_per_s"]
        out.ratio_text = ratio_text(out.ratio)
    ok = d.get("completed") == d.get("n") and d.get("wrong_output") == 0
    out.met = bool(ok and d.get("orch_per_s", 0) >= 1000 and (out.ratio or 0) >= 10)
    if not ok:
        out.notes.append(f"only {d.get('completed')}/{d.get('n')} completed correctly")
