"""Run the benchmark workloads W1..W8 on durable and, where it has one, on DBOS; print a table.

    .venv/bin/python benchmarks/run.py                       # everything, full size
    .venv/bin/python benchmarks/run.py --quick               # smaller sizes, ~1-2 minutes
    .venv/bin/python benchmarks/run.py --only W1,W4 --reps 3 --json out.json
    .venv/bin/python benchmarks/run.py --no-dbos             # durable only

Every durable run is a fresh subprocess (``benchmarks/child.py``) on a fresh SQLite file
(``journal_mode=WAL``, ``synchronous=FULL``) in a new temporary directory, or a fresh
PostgreSQL database (W8). Peak RSS and CPU time come from ``wait4()`` of that child. DBOS runs
its own scripts from ``../shared/peers/dbos/`` in its own venv (``setup.sh``). With ``--reps``
> 1 the run with the median headline figure is reported (and every value is kept in the JSON).

Ratio = how many times better durable is: throughput durable/DBOS, time DBOS/durable.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report, workloads
from benchmarks.harness import (
    PG_BASE,
    REPO,
    Outcome,
    count_syncs,
    machine_facts,
    new_data_dir,
    peer_python,
    remove_tree,
    run_child,
    wait_for_quiet,
)
from benchmarks.peers import HEADLINES, peer_argv, run_peer


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pick_median(records: list[dict[str, Any]], key: str, higher: bool) -> dict[str, Any]:
    """The record whose ``key`` is the median (lower median for even counts)."""
    usable = [r for r in records if isinstance(r.get(key), (int, float))]
    if not usable:
        return records[-1]
    usable.sort(key=lambda r: r[key], reverse=higher)
    chosen = dict(usable[(len(usable) - 1) // 2])
    if len(records) > 1:
        chosen["reps"] = [r.get(key) for r in records]
        values = [r[key] for r in usable]
        chosen["reps_median"] = statistics.median(values)
    return chosen


def durable_argv(wid: str, params: dict[str, Any], data_dir: Path, rep: int) -> list[str]:
    url = PG_BASE if wid == "W8" else "sqlite:///" + str(data_dir / f"{wid.lower()}-{rep}.db")
    return [sys.executable, "-m", "benchmarks.child", wid, "--url", url,
            "--params", json.dumps(params)]


def run_durable(wid: str, params: dict[str, Any], data_dir: Path, rep: int) -> dict[str, Any]:
    res = run_child(durable_argv(wid, params, data_dir, rep), cwd=REPO, timeout=900)
    record: dict[str, Any] = dict(res.record or {})
    record.update({"peak_rss_mb": res.peak_rss_mb, "cpu_s": res.cpu_s,
                   "process_wall_s": round(res.wall_s, 3)})
    if res.returncode != 0 or res.record is None:
        record["error"] = f"exit {res.returncode}: {res.stderr_tail[-1500:]}"
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"{wid.lower()}-{rep}.db{suffix}").unlink(missing_ok=True)
    return record


QUIET = {"limit_pct": 15.0, "max_wait": 20.0}


def quiet() -> float:
    busy = wait_for_quiet(QUIET["limit_pct"], QUIET["max_wait"])
    if busy >= QUIET["limit_pct"]:
        log(f"  warning: machine {busy}% busy before this run (other processes)")
    return busy


def sync_counts(
    wid: str, params: dict[str, Any], data_dir: Path, peer_py: str | None, peers: list[Any]
) -> dict[str, Any]:
    """fsync/fdatasync calls of one extra (untimed) run on each side (perf stat)."""
    result: dict[str, Any] = {}
    if wid == "W8":
        return result  # PostgreSQL's fsyncs happen in the server, not in our processes
    counts = count_syncs(durable_argv(wid, params, data_dir, 99), cwd=REPO)
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"{wid.lower()}-99.db{suffix}").unlink(missing_ok=True)
    counts.pop("record", None)
    result["durable"] = counts
    if peer_py and peers:
        argv, env = peer_argv(peer_py, peers[0], data_dir / "dbos", f"{wid.lower()}_sync")
        peer_counts = count_syncs(argv, env=env)
        peer_counts.pop("record", None)
        result["dbos"] = dict(peer_counts, label=peers[0].label)
    return result


def run_workload(
    wid: str, mode: str, reps: int, data_dir: Path, peer_py: str | None, fsyncs: bool = False
) -> Outcome:
    module = workloads.load(wid)
    params = module.PARAMS[mode]
    out = Outcome(wid=wid, title=module.TITLE, goal=module.GOAL)
    peers = module.dbos_runs(params) if peer_py else []
    durable_recs: list[dict[str, Any]] = []
    peer_recs: dict[str, list[dict[str, Any]]] = {p.label: [] for p in peers}
    for rep in range(reps):
        busy = quiet()
        t0 = time.perf_counter()
        rec = run_durable(wid, params, data_dir, rep)
        rec["busy_before_pct"] = busy
        durable_recs.append(rec)
        log(f"  {wid} durable rep {rep + 1}/{reps}: {time.perf_counter() - t0:.1f} s"
            + (f"  ERROR {rec['error'][:300]}" if "error" in rec else ""))
        for k, peer in enumerate(peers):
            assert peer_py is not None
            busy = quiet()
            t0 = time.perf_counter()
            prec = run_peer(peer_py, peer, data_dir / "dbos", f"{wid.lower()}_{k}_{rep}")
            prec["busy_before_pct"] = busy
            peer_recs[peer.label].append(prec)
            log(f"  {wid} DBOS [{peer.label}] rep {rep + 1}/{reps}: "
                f"{time.perf_counter() - t0:.1f} s"
                + (f"  ERROR {prec['error'][:300]}" if "error" in prec else ""))
    out.durable = pick_median(durable_recs, module.HEADLINE, module.HIGHER_IS_BETTER)
    if fsyncs:
        counted = sync_counts(wid, params, data_dir, peer_py, peers)
        if counted:
            out.durable["sync_calls"] = counted
            parts = [f"{side} {c.get('total')}" for side, c in counted.items()]
            out.notes.append("fsync+fdatasync calls (separate run, perf stat): " + ", ".join(parts))
    for peer in peers:
        key, higher = HEADLINES.get(peer.script, ("", False))
        out.dbos[peer.label] = pick_median(peer_recs[peer.label], key, higher)
    if "error" in out.durable:
        out.durable_text = "ERROR (see JSON)"
        out.notes.append(out.durable["error"][-400:])
        out.met = False
        return out
    module.judge(out, params)
    if not peer_py and module.dbos_runs(params):
        out.dbos_text = "not run (--no-dbos)"
    if len(peers) > 1:
        shown = []
        for peer in peers:
            key, _ = HEADLINES.get(peer.script, ("", False))
            shown.append(f"{peer.label}: {out.dbos[peer.label].get(key)} {key}")
        out.notes.append("DBOS variants (best one compared): " + "; ".join(shown))
    errors = [v["error"] for v in out.dbos.values() if "error" in v]
    if errors:
        out.notes.append("DBOS error: " + errors[0][-300:])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=None, help="comma-separated ids, e.g. W1,W3")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (see PARAMS)")
    parser.add_argument("--reps", type=int, default=None,
                        help="repetitions, median reported (default 3, or 1 with --quick)")
    parser.add_argument("--quiet-pct", type=float, default=15.0,
                        help="before each run wait until the machine is less busy than this")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="...but at most this many seconds (0: never wait)")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS peer")
    parser.add_argument("--count-fsyncs", action="store_true",
                        help="one extra untimed run per side under perf stat, counting fsyncs")
    parser.add_argument("--json", default=None, help="write all results as JSON here")
    parser.add_argument("--markdown", default=None, help="write the table as Markdown here")
    parser.add_argument("--plots", default=None, help="write PNG plots into this directory")
    parser.add_argument("--data-dir", default=None,
                        help="parent of the temporary data directory (default: system temp)")
    args = parser.parse_args(argv)

    selected = workloads.ORDER
    if args.only:
        selected = [w.strip().upper() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in selected if w not in workloads.MODULES]
        if unknown:
            parser.error(f"unknown workload(s): {', '.join(unknown)}")
    mode = "quick" if args.quick else "full"
    reps = args.reps or (1 if args.quick else 3)
    QUIET.update(limit_pct=args.quiet_pct, max_wait=args.quiet_wait)
    data_dir = new_data_dir(args.data_dir)
    peer_py = None if args.no_dbos else peer_python()
    if not args.no_dbos and peer_py is None:
        log("DBOS peer not available (setup.sh failed); DBOS columns will read n/a")
    facts = machine_facts(peer_py, data_dir)
    log(f"durable benchmarks ({mode}), data in {data_dir}")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    try:
        for wid in selected:
            log(f"{wid}: {workloads.load(wid).TITLE}")
            outcomes.append(run_workload(wid, mode, reps, data_dir, peer_py, args.count_fsyncs))
    finally:
        remove_tree(data_dir)
    facts["total_s"] = round(time.perf_counter() - started, 1)
    command = "benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc = report.as_json(outcomes, facts, mode, reps, command.strip())
    print(report.text_table(outcomes, facts, mode))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        log(f"JSON written to {args.json}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(report.markdown(outcomes, facts, mode, command.strip()))
        log(f"Markdown written to {args.markdown}")
    if args.plots:
        for path in report.plots(outcomes, Path(args.plots)):
            log(f"plot written to {path}")
    failed = [o.wid for o in outcomes if "error" in o.durable]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
