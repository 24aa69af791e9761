"""The benchmark workloads W1..W11, one module each.

Every module defines:

- ``ID``, ``TITLE``, ``GOAL`` (text for the report) and ``PARAMS`` (``{"full": .., "quick": ..}``);
- ``async def run(url, params) -> dict``: the durable side, executed in a fresh subprocess by
  ``benchmarks/child.py`` against storage ``url`` (a fresh SQLite file or PostgreSQL database);
- ``HEADLINE`` (key of ``run``'s result used to pick the median of repetitions) and
  ``HIGHER_IS_BETTER``;
- ``dbos_runs(params) -> list[PeerRun]``: the DBOS peer scripts to run for comparison (may be
  empty);
- optionally ``restate_runs(params) -> list[PeerRun]``: runs of the Restate driver
  (``benchmarks/peers/restate/bench.mjs``) to compare with, and ``REP_KEYS``: more result keys
  whose value in every repetition the report keeps (besides the headline's);
- ``judge(outcome, params) -> None``: fills the row's texts, ratio and goal verdict;
- optionally ``NATIVE_PEER``: another workload's id whose durable run is repeated alongside
  as this one's comparison (stored as the peer ``"native"``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import durable as df
from benchmarks.harness import ms, percentile

Status = df.OrchestrationRuntimeStatus

ORDER = ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W11"]
# Run only when named (--only): W10 loads a million rows into each backend (~6 min a rep).
ON_REQUEST = ["W10", "W8L"]
MODULES = {
    "W1": "w1_hello3",
    "W2": "w2_hello5",
    "W3": "w3_fan_out",
    "W4": "w4_latency",
    "W5": "w5_singleton",
    "W6": "w6_events",
    "W7": "w7_long_chain",
    "W8": "w8_postgres",
    "W8L": "w8l_latency",
    "W9": "w9_entities",
    "W11": "w11_azure_sdk",
    "W10": "w10_large_store",
}


@dataclass
class PeerRun:
    """One invocation of a peer script: DBOS's (``../shared/peers/dbos/<script>``) or
    Restate's (``benchmarks/peers/restate/<script>``)."""

    label: str
    script: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 300.0


def load(wid: str) -> Any:
    import importlib

    return importlib.import_module(f"benchmarks.workloads.{MODULES[wid]}")


async def start_all_then_wait(
    client: df.DurableOrchestrationClient,
    orchestrator: str,
    n: int,
    expected: Any,
    timeout: float,
) -> dict[str, Any]:
    """Start ``n`` instances at once (one ``asyncio.gather`` of ``start_new``), then wait for all.

    Wall time runs from just before the first ``start_new`` to the last completion; an
    instance's latency is from that same start to the moment its ``wait_for_completion``
    returned (all are started together, so this is also its start-to-result time).
    """
    done_at: dict[str, float] = {}

    async def wait(instance_id: str) -> df.DurableOrchestrationStatus:
        status = await client.wait_for_completion(instance_id, timeout=timeout)
        done_at[instance_id] = time.perf_counter()
        return status

    t0 = time.perf_counter()
    ids = await asyncio.gather(*(client.start_new(orchestrator) for _ in range(n)))
    t_started = time.perf_counter()
    statuses = await asyncio.gather(*(wait(i) for i in ids))
    wall = time.perf_counter() - t0
    completed = sum(1 for s in statuses if s.runtime_status == Status.Completed)
    wrong = sum(1 for s in statuses if s.output != expected)
    latencies = [done_at[i] - t0 for i in ids]
    return {
        "n": n,
        "wall_s": round(wall, 4),
        "start_phase_s": round(t_started - t0, 4),
        "orch_per_s": round(n / wall, 1),
        "completed": completed,
        "wrong_output": wrong,
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p99_ms": ms(percentile(latencies, 0.99)),
    }


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip()


def ratio_text(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.1f}x"
