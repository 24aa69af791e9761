"""Render benchmark outcomes: terminal table, Markdown, JSON document, plots."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from benchmarks.harness import Outcome

HEADER = ["id", "durable", "DBOS (same run)", "Restate (same run)", "ratio", "goal", "met?"]
RATIO_MEANING = ("ratio = times better than the peer named (DBOS unless said otherwise): "
                 "throughput durable/peer, time peer/durable")


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("yes" if met else "NO")


def _rows(outcomes: list[Outcome]) -> list[list[str]]:
    return [[o.wid, o.durable_text, o.dbos_text, o.restate_text, o.ratio_text, o.goal,
             verdict(o.met)] for o in outcomes]


def _facts_lines(facts: dict[str, Any], mode: str) -> list[str]:
    f = facts
    pg = f.get("postgres") or {}
    dirty = " (+local changes)" if f.get("durable_dirty") else ""
    lines = [
        f"date {f.get('date_utc')} UTC; {f.get('cpu_count')} CPUs ({f.get('cpu_model')}), "
        f"{f.get('mem_gib')} GiB; Linux {f.get('kernel')}; Python {f.get('python')}; "
        f"mode {mode}",
        f"durable {f.get('durable_commit')}{dirty}: SQLite {f.get('sqlite_version')}, "
        f"{f.get('durable_sqlite')}; files on {f.get('data_dir_fs')}",
        f"DBOS {f.get('dbos_version', 'not run')}: SQLite {f.get('dbos_sqlite_version', '?')}, "
        "synchronous=FULL (SQLite default; DBOS sets no synchronous pragma); journal as labelled",
    ]
    if f.get("restate_server"):
        lines.append(
            f"Restate server {f.get('restate_server')}, TypeScript SDK {f.get('restate_sdk')} "
            f"on Node.js {f.get('restate_node')}: defaults (Bifrost log on local RocksDB, "
            "fsync on; 24 partitions)"
            + ("; own loopback-only network namespace" if f.get("restate_isolated_network")
               else ""))
    if pg:
        lines.append(
            f"PostgreSQL {pg.get('server_version')}: "
            f"synchronous_commit={pg.get('synchronous_commit')}, fsync={pg.get('fsync')}, "
            f"wal_sync_method={pg.get('wal_sync_method')}, "
            f"full_page_writes={pg.get('full_page_writes')}, "
            f"shared_buffers={pg.get('shared_buffers')}"
        )
    else:
        lines.append("PostgreSQL: no server reachable")
    return lines


def text_table(outcomes: list[Outcome], facts: dict[str, Any], mode: str) -> str:
    rows = _rows(outcomes)
    widths = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) if rows else len(HEADER[i])
              for i in range(len(HEADER))]
    widths = [min(w, 60) for w in widths]

    def line(cells: list[str]) -> str:
        padded = (c.ljust(w) if len(c) <= w else c for c, w in zip(cells, widths, strict=True))
        return " | ".join(padded)

    out = ["", *_facts_lines(facts, mode), "", line(HEADER), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    notes = [(o.wid, n) for o in outcomes for n in o.notes]
    if notes:
        out.append("")
        out += [f"{wid}: {note}" for wid, note in notes]
    out.append(f"\n{RATIO_MEANING}; total {facts.get('total_s')} s")
    return "\n".join(out)


def markdown(outcomes: list[Outcome], facts: dict[str, Any], mode: str, command: str) -> str:
    out = [f"Command: `.venv/bin/python {command}`", ""]
    out += [f"- {line}" for line in _facts_lines(facts, mode)]
    out += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in _rows(outcomes)]
    notes = [(o.wid, n) for o in outcomes for n in o.notes]
    if notes:
        out.append("")
        out += [f"- {wid}: {note}" for wid, note in notes]
    out.append("")
    return "\n".join(out)


def as_json(
    outcomes: list[Outcome], facts: dict[str, Any], mode: str, reps: int, command: str
) -> dict[str, Any]:
    return {
        "command": command,
        "mode": mode,
        "reps": reps,
        "machine": facts,
        "ratio_meaning": RATIO_MEANING,
        "workloads": [dataclasses.asdict(o) for o in outcomes],
    }


def plots(outcomes: list[Outcome], folder: Path) -> list[Path]:
    """W4 latency distribution and W7 per-step time, if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    by_id = {o.wid: o for o in outcomes}
    w4 = by_id.get("W4")
    if w4 and w4.durable.get("latencies_ms"):
        lat = sorted(w4.durable["latencies_ms"])
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ys = [(i + 1) / len(lat) for i in range(len(lat))]
        ax.step(lat, ys, where="post", label="durable (start_new + wait_for_completion)")
        styles = iter([(":", "tab:orange"), ("-.", "tab:purple"), (":", "tab:brown")])
        for label, rec in w4.dbos.items():
            if rec.get("p50_ms"):
                style, color = next(styles, (":", "grey"))
                ax.axvline(rec["p50_ms"], linestyle=style, color=color,
                           label=f"DBOS p50, {label}")
        ax.axvline(3, color="green", linestyle="--", linewidth=1)
        ax.axvline(10, color="red", linestyle="--", linewidth=1)
        ax.set_xlabel("start-to-result latency, ms (goal p50 3 ms green, p99 10 ms red)")
        ax.set_ylabel("fraction of runs")
        ax.set_title(f"W4: {len(lat)} sequential 3-activity orchestrations, SQLite WAL+FULL")
        ax.set_xlim(left=0)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        path = folder / "w4_latency_cdf.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    w7 = by_id.get("W7")
    if w7 and w7.durable.get("bucket_mean_ms"):
        buckets = w7.durable["bucket_mean_ms"]
        size = w7.durable.get("bucket_steps", 100)
        fig, ax = plt.subplots(figsize=(7, 3.6))
        xs = [(i + 1) * size for i in range(len(buckets))]
        ax.plot(xs, buckets, marker=".")
        first = w7.durable.get("first_window_ms")
        if first:
            ax.axhline(first * 1.3, color="red", linestyle="--", linewidth=1,
                       label="1.3x the first-window mean (goal ceiling)")
            ax.legend(fontsize=8)
        ax.set_xlabel("step number")
        ax.set_ylabel(f"mean ms per step (per {size} steps)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"W7: one orchestration of {w7.durable.get('n')} sequential activities")
        fig.tight_layout()
        path = folder / "w7_per_step.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
