"""W7: one orchestration of 5,000 sequential activities; is the per-step time flat?

The activity records ``perf_counter()`` each time it runs (same process as the worker). The
time of step i is the gap between activity i-1 and activity i: one full cycle (result
committed, orchestrator resumed, next activity scheduled and committed, activity started).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import Outcome, ms, percentile
from benchmarks.workloads import PeerRun, fmt

ID = "W7"
TITLE = "one orchestration of 5,000 sequential activities: per-step time"
GOAL = "last 1,000 steps <= 1.3x the first 1,000"
PARAMS: dict[str, dict[str, Any]] = {
    "full": {"n": 5000, "window": 1000, "bucket": 100},
    "quick": {"n": 2000, "window": 400, "bucket": 50},
}
HEADLINE = "growth"
HIGHER_IS_BETTER = False


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    n, window, bucket = params["n"], params["window"], params["bucket"]
    apps.MARKS.clear()
    async with df.Host(apps.app, storage=url) as host:
        t0 = time.perf_counter()
        instance_id = await host.client.start_new("long_chain", client_input=n)
        status = await host.client.wait_for_completion(instance_id, timeout=600)
        wall = time.perf_counter() - t0
    # First execution of each step (an activity may run again after a lost lease).
    first: dict[int, float] = {}
    for step, at in apps.MARKS:
        first.setdefault(step, at)
    times = [first[i] for i in range(n)]
    gaps = [b - a for a, b in itertools.pairwise(times)]  # gaps[k]: step k+1
    head = gaps[:window]
    tail = gaps[-window:]
    buckets = [
        round(1000 * sum(gaps[i:i + bucket]) / len(gaps[i:i + bucket]), 4)
        for i in range(0, len(gaps), bucket)
    ]
    head_mean = sum(head) / len(head)
    tail_mean = sum(tail) / len(tail)
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "steps_per_s": round(n / wall, 1),
        "correct": status.output == n - 1,
        "first_window_ms": ms(head_mean),
        "last_window_ms": ms(tail_mean),
        "growth": round(tail_mean / head_mean, 3),
        "step_p50_ms": ms(percentile(gaps, 0.5)),
        "step_p99_ms": ms(percentile(gaps, 0.99)),
        "bucket_steps": bucket,
        "bucket_mean_ms": buckets,
        "duplicate_activity_runs": len(apps.MARKS) - n,
    }


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return []  # no long-chain peer script


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    out.durable_text = (f"first {fmt(d.get('first_window_ms'), 3)} ms/step, last "
                        f"{fmt(d.get('last_window_ms'), 3)} ms/step = {fmt(d.get('growth'), 2)}x")
    out.notes.append(f"{d.get('n')} steps in {d.get('wall_s')} s ({d.get('steps_per_s')} steps/s)")
    if params["n"] != 5000:
        out.notes.append(f"quick mode: n={params['n']}, windows of {params['window']}")
    out.met = bool(d.get("correct") and d.get("growth", 1e9) <= 1.3)
