"""Run the benchmark workloads W1..W11 on durable and, where they have one, on DBOS and Restate;
print a table.

    .venv/bin/python benchmarks/run.py                       # everything, full size
    .venv/bin/python benchmarks/run.py --quick               # smaller sizes, a few minutes
    .venv/bin/python benchmarks/run.py --only W1,W4 --reps 3 --json out.json
    .venv/bin/python benchmarks/run.py --no-dbos --no-restate  # durable only

Every durable run is a fresh subprocess (``benchmarks/child.py``) on a fresh SQLite file
(``journal_mode=WAL``, ``synchronous=FULL``) in a new temporary directory, or a fresh
PostgreSQL database (W8). Peak RSS and CPU time come from ``wait4()`` of that child. DBOS runs
its own scripts from ``../shared/peers/dbos/`` in its own venv (``setup.sh``). Restate runs
``benchmarks/peers/restate/bench.mjs`` (a fresh restate-server and data directory per run) with
the packages ``benchmarks/peers/restate/setup.sh`` installs outside the repository. With
``--reps`` > 1 the run with the median headline figure is reported (and every value is kept in
the JSON).

Ratio = how many times better durable is: throughput durable/peer, time peer/durable.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from benchmarks.peers import (
    HEADLINES,
    RestatePeer,
    peer_argv,
    restate_argv,
    restate_facts,
    restate_peer,
    run_peer,
    run_restate,
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pick_median(
    records: list[dict[str, Any]], key: str, higher: bool, also: list[str] | None = None
) -> dict[str, Any]:
    """The record whose ``key`` is the median (lower median for even counts).

    For each key in ``also`` the values of every repetition are kept too (``reps_by_key``),
    with their median, so a workload with several figures can report each one's spread.
    """
    usable = [r for r in records if isinstance(r.get(key), (int, float))]
    if not usable:
        return records[-1]
    usable.sort(key=lambda r: r[key], reverse=higher)
    chosen = dict(usable[(len(usable) - 1) // 2])
    if len(records) > 1:
        chosen["reps"] = [r.get(key) for r in records]
        values = [r[key] for r in usable]
        chosen["reps_median"] = statistics.median(values)
        by_key: dict[str, Any] = {}
        for extra in also or []:
            got = [r.get(extra) for r in records]
            numbers = [v for v in got if isinstance(v, (int, float))]
            by_key[extra] = {"reps": got,
                             "median": statistics.median(numbers) if numbers else None}
        if by_key:
            chosen["reps_by_key"] = by_key
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
    wid: str, params: dict[str, Any], data_dir: Path, peer_py: str | None, peers: list[Any],
    restate: RestatePeer | None = None, restate_runs: list[Any] | None = None,
) -> dict[str, Any]:
    """fsync/fdatasync calls of one extra (untimed) run on each side (perf stat).

    A workload module's ``SYNC_PARAMS`` (W9) changes its parameters for this run; if its
    record then has ``part_syncs`` (counted per part by the module), they are kept too. A
    Restate run's count includes the server's start-up, so one run with ``--n 1`` is counted
    as its baseline.
    """
    result: dict[str, Any] = {}
    if wid == "W8":
        return result  # PostgreSQL's fsyncs happen in the server, not in our processes
    params = dict(params, **getattr(workloads.load(wid), "SYNC_PARAMS", {}))
    counts = count_syncs(durable_argv(wid, params, data_dir, 99), cwd=REPO)
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"{wid.lower()}-99.db{suffix}").unlink(missing_ok=True)
    record = counts.pop("record", None) or {}
    result["durable"] = counts
    if record.get("part_syncs"):
        result["durable_by_part"] = record["part_syncs"]
    if peer_py and peers:
        argv, env = peer_argv(peer_py, peers[0], data_dir / "dbos", f"{wid.lower()}_sync")
        peer_counts = count_syncs(argv, env=env)
        peer_counts.pop("record", None)
        result["dbos"] = dict(peer_counts, label=peers[0].label)
    if restate and restate_runs:
        first = restate_runs[0]
        args = list(first.args)
        if "--n" in args:
            args[args.index("--n") + 1] = "1"
        baseline = dataclasses.replace(first, label=f"{first.label}, --n 1", args=args)
        for k, run in enumerate([*restate_runs, baseline]):
            argv, env = restate_argv(restate, run, data_dir / "restate", f"{wid.lower()}_sync{k}")
            counts = count_syncs(argv, env=env)
            record = counts.pop("record", None) or {}
            result[f"restate {run.label}"] = dict(counts, ops=record.get("n"),
                                                  startup_included=True)
    return result


def run_workload(
    wid: str, mode: str, reps: int, data_dir: Path, peer_py: str | None, fsyncs: bool = False,
    restate: RestatePeer | None = None,
) -> Outcome:
    module = workloads.load(wid)
    params = module.PARAMS[mode]
    out = Outcome(wid=wid, title=module.TITLE, goal=module.GOAL)
    peers = module.dbos_runs(params) if peer_py else []
    restate_of = getattr(module, "restate_runs", None)
    restate_runs = restate_of(params) if (restate and restate_of) else []
    durable_recs: list[dict[str, Any]] = []
    peer_recs: dict[str, list[dict[str, Any]]] = {p.label: [] for p in peers}
    restate_recs: dict[str, list[dict[str, Any]]] = {r.label: [] for r in restate_runs}
    # A workload may compare with durable itself on another workload (W11: the same app on
    # durable's own engine), run alternately with it like a peer.
    native = getattr(module, "NATIVE_PEER", None)
    native_recs: list[dict[str, Any]] = []
    for rep in range(reps):
        busy = quiet()
        t0 = time.perf_counter()
        rec = run_durable(wid, params, data_dir, rep)
        rec["busy_before_pct"] = busy
        durable_recs.append(rec)
        log(f"  {wid} durable rep {rep + 1}/{reps}: {time.perf_counter() - t0:.1f} s"
            + (f"  ERROR {rec['error'][:300]}" if "error" in rec else ""))
        if native:
            busy = quiet()
            t0 = time.perf_counter()
            nrec = run_durable(native, params, data_dir, 100 + rep)
            nrec["busy_before_pct"] = busy
            native_recs.append(nrec)
            log(f"  {wid} peer ({native} native) rep {rep + 1}/{reps}: "
                f"{time.perf_counter() - t0:.1f} s")
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
        for k, run in enumerate(restate_runs):
            assert restate is not None
            busy = quiet()
            t0 = time.perf_counter()
            rrec = run_restate(restate, run, data_dir / "restate", f"{wid.lower()}_{k}_{rep}")
            rrec["busy_before_pct"] = busy
            restate_recs[run.label].append(rrec)
            log(f"  {wid} Restate [{run.label}] rep {rep + 1}/{reps}: "
                f"{time.perf_counter() - t0:.1f} s"
                + (f"  ERROR {rrec['error'][:300]}" if "error" in rrec else ""))
    if native:
        out.dbos["native"] = pick_median(native_recs, module.HEADLINE, module.HIGHER_IS_BETTER)
    out.durable = pick_median(durable_recs, module.HEADLINE, module.HIGHER_IS_BETTER,
                              getattr(module, "REP_KEYS", None))
    for run in restate_runs:
        key, higher = HEADLINES.get(run.script, ("", False))
        out.restate[run.label] = pick_median(restate_recs[run.label], key, higher)
    if fsyncs:
        counted = sync_counts(wid, params, data_dir, peer_py, peers, restate, restate_runs)
        if counted:
            out.durable["sync_calls"] = counted
            parts = [f"{side} {c.get('total')}" for side, c in counted.items()
                     if side != "durable_by_part"]
            parts += [f"durable part {part} {c.get('total')}" for part, c in
                      counted.get("durable_by_part", {}).items() if c]
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
    errors = [v["error"] for v in out.restate.values() if "error" in v]
    if errors:
        out.notes.append("Restate error: " + errors[0][-300:])
    if restate_of and restate is None and restate_of(params):
        out.restate_text = "not run"
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
    parser.add_argument("--no-restate", action="store_true", help="skip the Restate peer")
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
    restate: RestatePeer | None = None
    if not args.no_restate and any(
        hasattr(workloads.load(w), "restate_runs") for w in selected
    ):
        restate, why = restate_peer()
        if restate is None:
            log(f"Restate peer not available ({why}); Restate columns will read 'not run'")
    facts = machine_facts(peer_py, data_dir)
    if restate is not None:
        facts.update(restate_facts(restate))
    log(f"durable benchmarks ({mode}), data in {data_dir}")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    try:
        for wid in selected:
            log(f"{wid}: {workloads.load(wid).TITLE}")
            outcomes.append(run_workload(wid, mode, reps, data_dir, peer_py, args.count_fsyncs,
                                         restate))
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
