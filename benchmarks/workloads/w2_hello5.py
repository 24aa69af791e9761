"""W2: Netherite's HelloCities5: 1,000 orchestrations x 5 sequential activities, events/s.

Events are counted the Netherite way: 2 per activity step (the activity is scheduled, its
result is processed), so one 5-activity orchestration is 10 events; orchestration start and
completion are not counted. events/s = 10 x orchestrations / wall.
"""

from __future__ import annotations

from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import Outcome
from benchmarks.workloads import PeerRun, fmt, start_all_then_wait

ID = "W2"
TITLE = "1,000 x 5 sequential activities (Netherite HelloCities5), events/s (SQLite)"
GOAL = ">= 10,000 events/s (Netherite: 1,708 on 2 cores)"
PARAMS: dict[str, dict[str, Any]] = {"full": {"n": 1000}, "quick": {"n": 300}}
HEADLINE = "events_per_s"
HIGHER_IS_BETTER = True
EVENTS_PER_ORCHESTRATION = 10
EXPECTED = [f"Hello {c}!" for c in ("Tokyo", "Seattle", "London", "Cairo", "Lima")]


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    async with df.Host(apps.app, storage=url) as host:
        result = await start_all_then_wait(
            host.client, "hello_cities5", params["n"], EXPECTED, timeout=300
        )
    result["events_per_s"] = round(EVENTS_PER_ORCHESTRATION * params["n"] / result["wall_s"], 1)
    return result


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return []  # the peer scripts have no 5-step chain; W1 is the DBOS comparison


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    out.durable_text = f"{fmt(d.get('events_per_s'))} events/s ({fmt(d.get('orch_per_s'))} orch/s)"
    vs_netherite = d.get("events_per_s", 0) / 1708
    out.ratio_text = f"n/a ({vs_netherite:.1f}x Netherite, published)"
    out.notes.append(f"{vs_netherite:.1f}x Netherite's published 1,708 events/s (EP2, 2 cores)")
    ok = d.get("completed") == d.get("n") and d.get("wrong_output") == 0
    out.met = bool(ok and d.get("events_per_s", 0) >= 10_000)
