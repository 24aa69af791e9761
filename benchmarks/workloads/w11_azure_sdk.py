"""W11: W1 through an unmodified Azure Functions v2 app (benchmarks/azure_app), whose
orchestrator runs on the azure-functions-durable SDK's out-of-process protocol, compared with
W1 on durable's own engine in the same invocation of run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import durable as df
from benchmarks.harness import Outcome
from benchmarks.workloads import PeerRun, fmt, start_all_then_wait

ID = "W11"
TITLE = "W1 through an unmodified Azure v2 app (SDK protocol) vs durable's own engine (SQLite)"
GOAL = ">= 0.67x native W1"
GOAL_RATIO = 0.67
PARAMS: dict[str, dict[str, Any]] = {"full": {"n": 1000}, "quick": {"n": 300}}
HEADLINE = "orch_per_s"
HIGHER_IS_BETTER = True
EXPECTED = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
# Run this durable workload too, each repetition, as the comparison (see run.py).
NATIVE_PEER = "W1"
APP = Path(__file__).resolve().parents[1] / "azure_app"


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    from durable.azure import load_project

    app = load_project(APP)
    async with df.Host(app, storage=url) as host:
        return await start_all_then_wait(
            host.client, "hello_sequence", params["n"], EXPECTED, timeout=300
        )


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return []


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    native = out.dbos.get("native")
    out.durable_text = f"{fmt(d.get('orch_per_s'))} orch/s"
    if native and native.get("orch_per_s"):
        out.dbos_text = f"native durable: {fmt(native['orch_per_s'])} orch/s"
        out.ratio = d["orch_per_s"] / native["orch_per_s"]
        out.ratio_text = f"{out.ratio:.2f}x native"
        per_orch_us = (1 / d["orch_per_s"] - 1 / native["orch_per_s"]) * 1e6
        out.notes.append(f"SDK cost: {per_orch_us:,.0f} us more wall time per orchestration "
                         "(4 episodes; the SDK's execution kept alive between them, "
                         "durable/azure/session.py)")
        if d.get("cpu_s") and native.get("cpu_s"):
            out.notes.append(f"CPU time of the whole child process (imports included): "
                             f"{d['cpu_s']:.2f} s vs {native['cpu_s']:.2f} s native "
                             f"({d['cpu_s'] / native['cpu_s']:.1f}x)")
    ok = d.get("completed") == d.get("n") and d.get("wrong_output") == 0
    out.met = None if out.ratio is None else out.ratio >= GOAL_RATIO
    if not ok:
        out.met = False
        out.notes.append(f"only {d.get('completed')}/{d.get('n')} completed correctly")
