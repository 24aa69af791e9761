"""W3: one orchestration fans out 10,000 activities and sums the results."""

from __future__ import annotations

import time
from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import Outcome
from benchmarks.workloads import PeerRun, fmt, ratio_text

ID = "W3"
TITLE = "one orchestration fans out 10,000 activities and sums them (SQLite)"
GOAL = "<= 3 s wall"
PARAMS: dict[str, dict[str, Any]] = {"full": {"n": 10_000}, "quick": {"n": 2_000}}
HEADLINE = "wall_s"
HIGHER_IS_BETTER = False


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    n = params["n"]
    async with df.Host(apps.app, storage=url) as host:
        t0 = time.perf_counter()
        instance_id = await host.client.start_new("fan_out_sum", client_input=n)
        status = await host.client.wait_for_completion(instance_id, timeout=600)
        wall = time.perf_counter() - t0
    return {
        "n": n,
        "wall_s": round(wall, 4),
        "activities_per_s": round(n / wall, 1),
        "status": status.runtime_status.value if status.runtime_status else None,
        "correct": status.output == n * (n - 1) // 2,
    }


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    # asyncio.gather over n async steps inside one async workflow: DBOS's fastest fan-out.
    return [PeerRun("sqlite WAL+FULL, gather", "fan_out.py",
                    ["--db", "sqlite", "--variant", "gather", "--n", str(params["n"])],
                    {"PEER_SQLITE_WAL": "1"}, timeout=600)]


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    out.durable_text = f"{fmt(d.get('wall_s'), 2)} s ({fmt(d.get('activities_per_s'))} act/s)"
    peer = next(iter(out.dbos.values()), None)
    if peer and peer.get("wall_s"):
        out.dbos_text = f"{fmt(peer['wall_s'], 2)} s ({fmt(peer.get('units_per_s'))} steps/s)"
        out.ratio = peer["wall_s"] / d["wall_s"]
        out.ratio_text = ratio_text(out.ratio)
    if params["n"] != 10_000:
        scaled = 3 * params["n"] / 10_000
        out.notes.append(f"quick mode: n={params['n']}, goal scaled to {scaled} s")
    out.met = bool(d.get("correct") and d.get("wall_s", 1e9) <= 3.0 * params["n"] / 10_000)
