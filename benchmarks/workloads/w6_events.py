"""W6: 10,000 orchestrations waiting on an external event, then every event raised.

One process holds the worker and all 10,000 waiting instances. Phases:

1. start all (one ``asyncio.gather`` of ``start_new``), then poll until no instance is
   ``Pending`` any more (each has run its first episode and is waiting): RSS is sampled here;
2. raise all events (one ``gather`` of ``raise_event``), then ``wait_for_completion`` for all:
   "complete" is from the first ``raise_event`` to the last completion.

Peak RSS is the child's ``ru_maxrss`` (whole run, reported by the parent from ``wait4``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import durable as df
from benchmarks import apps
from benchmarks.harness import Outcome, current_rss_mb
from benchmarks.workloads import PeerRun, Status, fmt

ID = "W6"
TITLE = "10,000 orchestrations waiting on an external event, then all events raised"
GOAL = "<= 300 MB peak RSS; all complete <= 10 s"
PARAMS: dict[str, dict[str, Any]] = {"full": {"n": 10_000}, "quick": {"n": 3_000}}
HEADLINE = "complete_s"
HIGHER_IS_BETTER = False


async def _count_pending(client: df.DurableOrchestrationClient) -> bool:
    page, _ = await client.get_status_page(
        runtime_status=[Status.Pending], page_size=1, show_input=False
    )
    return bool(page)


async def run(url: str, params: dict[str, Any]) -> dict[str, Any]:
    n = params["n"]
    rss_start = current_rss_mb()
    async with df.Host(apps.app, storage=url) as host:
        client = host.client
        rss_open = current_rss_mb()
        t0 = time.perf_counter()
        ids = await asyncio.gather(
            *(client.start_new("wait_for_go", f"w6-{i}") for i in range(n))
        )
        t_started = time.perf_counter()
        deadline = time.monotonic() + 300
        while await _count_pending(client) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        t_waiting = time.perf_counter()
        rss_waiting = current_rss_mb()
        await asyncio.gather(*(client.raise_event(i, "go", i) for i in ids))
        t_raised = time.perf_counter()
        statuses = await asyncio.gather(
            *(client.wait_for_completion(i, timeout=300) for i in ids)
        )
        t_done = time.perf_counter()
        rss_done = current_rss_mb()
    ok = sum(1 for i, s in zip(ids, statuses, strict=True)
             if s.runtime_status == Status.Completed and s.output == i)
    return {
        "n": n,
        "start_s": round(t_started - t0, 3),
        "all_waiting_s": round(t_waiting - t0, 3),
        "raise_s": round(t_raised - t_waiting, 3),
        "complete_s": round(t_done - t_waiting, 3),
        "completed_correctly": ok,
        "rss_mb": {"before_host": rss_start, "host_open": rss_open, "all_waiting": rss_waiting,
                   "all_done": rss_done},
    }


def dbos_runs(params: dict[str, Any]) -> list[PeerRun]:
    return []  # no peer script for external events


def judge(out: Outcome, params: dict[str, Any]) -> None:
    d = out.durable
    peak = d.get("peak_rss_mb")
    waiting = d.get("rss_mb", {}).get("all_waiting")
    out.durable_text = (f"peak {fmt(peak)} MB (waiting {fmt(waiting)} MB); "
                        f"complete {fmt(d.get('complete_s'), 2)} s")
    out.notes.append(
        f"start {d.get('start_s')} s, all waiting after {d.get('all_waiting_s')} s, "
        f"raise_event x{d.get('n')} {d.get('raise_s')} s"
    )
    if params["n"] != 10_000:
        out.notes.append(f"quick mode: n={params['n']}")
    out.met = bool(
        d.get("completed_correctly") == d.get("n")
        and peak is not None and peak <= 300
        and d.get("complete_s", 1e9) <= 10
    )
