"""Profile the durable side of one workload and summarise where the CPU time goes.

    .venv/bin/python benchmarks/profiling.py W8            # py-spy on the worker processes
    .venv/bin/python benchmarks/profiling.py W1 --quick    # py-spy on the benchmark process
    .venv/bin/python benchmarks/profiling.py W1 --tool pyinstrument   # main thread only
    .venv/bin/python benchmarks/profiling.py W9 --parts a,b,c --gil   # one profile per part
    .venv/bin/python benchmarks/profiling.py W9 --statements          # SQLite statements/op

py-spy (``--tool py-spy``, the default) samples every thread at 1 kHz and records on-CPU
samples only (``record`` without ``--idle``), so the percentages are shares of the time the
process actually ran Python or native code; it needs ptrace permission. For SQLite workloads
it wraps the whole benchmark child (start-up included, a small share); for W8 it attaches to
each ``durable worker`` process once it is serving and stops when the clock stops; for W9 it
attaches to each part's own process for its timed window only (SQLite; parts a, b, c unless
``--parts`` names others; the idle part is about memory, not CPU).
pyinstrument profiles only the event-loop thread, in-process.

py-spy cannot always tell a thread blocked inside C code (``queue.get``, ``epoll``) from a
busy one, so idle activity threads can show up as samples. ``--gil`` keeps only samples that
hold the GIL: the Python CPU time, which is what limits one event loop.

The summary has three views: self time by package/file (where the CPU is spent), self time by
function, and inclusive time of durable's own functions (which engine call sites cost most).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import workloads
from benchmarks.harness import PG_BASE, REPO, new_data_dir, remove_tree, run_child

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _split(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip(), "?"
    return m.group("func"), m.group("file")


def _package(file: str) -> str:
    """A readable owner for a source file: durable's own module path, else the top package."""
    if file.startswith("durable/"):
        return file
    if file.startswith("<frozen"):
        return "python (frozen)"
    top = file.split("/", 1)[0]
    return top.removesuffix(".py")


def summarize(paths: list[Path], top: int = 15) -> dict[str, Any]:
    """Aggregate py-spy ``--format raw --threads`` files (one stack and count per line)."""
    total = 0
    by_thread: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    incl_durable: Counter[str] = Counter()
    for path in paths:
        for raw in path.read_text(errors="replace").splitlines():
            stack, _, count_text = raw.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            thread = frames[0]
            frames = frames[1:]
            total += count
            by_thread[re.sub(r"\(\d+\): ", "", thread)] += count
            if not frames:
                continue
            func, file = _split(frames[-1])
            self_pkg[_package(file)] += count
            self_func[f"{func} ({file})"] += count
            seen: set[str] = set()
            for frame in frames:
                f_func, f_file = _split(frame)
                if f_file.startswith("durable/"):
                    key = f"{f_func} ({f_file})"
                    if key not in seen:
                        seen.add(key)
                        incl_durable[key] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        if not total:
            return []
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "threads": pct(by_thread),
        "self_by_package": pct(self_pkg),
        "self_by_function": pct(self_func),
        "inclusive_durable": pct(incl_durable),
    }


def render(summary: dict[str, Any], title: str) -> str:
    out = [f"### {title}", "", f"{summary['samples']} samples (1 kHz, all threads)", ""]
    for key, heading in (("threads", "by thread"),
                         ("self_by_package", "self time by package / durable module"),
                         ("self_by_function", "self time by function"),
                         ("inclusive_durable", "inclusive time, durable functions")):
        out += [f"{heading}:", ""]
        out += [f"    {share:5.1f}%  {name}" for name, share in summary[key]]
        out.append("")
    return "\n".join(out)


def profile_py_spy(
    wid: str, params: dict[str, Any], out_dir: Path, native: bool = False, gil: bool = False
) -> list[Path]:
    spy = Path(sys.executable).with_name("py-spy")
    if wid == "W9":
        params = dict(params, py_spy_dir=str(out_dir), py_spy_gil=gil, postgres=False)
        params.setdefault("parts", ["a", "b", "c"])
        data = new_data_dir(None)
        try:
            res = run_child([sys.executable, "-m", "benchmarks.child", wid, "--url",
                             "sqlite:///" + str(data / "w9.db"), "--params", json.dumps(params)],
                            cwd=REPO, timeout=1800)
        finally:
            remove_tree(data)
        print(json.dumps(res.record), file=sys.stderr)
        return [out_dir / f"w9-{part}.txt" for part in params["parts"]
                if (out_dir / f"w9-{part}.txt").exists()]
    if wid == "W8":
        params = dict(params, py_spy_dir=str(out_dir), py_spy_native=native, py_spy_gil=gil,
                      in_process=False)
        res = run_child([sys.executable, "-m", "benchmarks.child", wid, "--url", PG_BASE,
                         "--params", json.dumps(params)], cwd=REPO, timeout=900)
        print(json.dumps(res.record), file=sys.stderr)
        return sorted(out_dir.glob("w8-*.txt"))
    data = new_data_dir(None)
    target = out_dir / f"{wid.lower()}.txt"
    try:
        argv = [str(spy), "record", "--rate", "1000", "--format", "raw", "--threads",
                *(["--native"] if native else []), *(["--gil"] if gil else []),
                "--output", str(target), "--", sys.executable, "-m", "benchmarks.child", wid,
                "--url", "sqlite:///" + str(data / "profile.db"), "--params", json.dumps(params)]
        res = run_child(argv, cwd=REPO, timeout=900)
        print(json.dumps(res.record), file=sys.stderr)
    finally:
        remove_tree(data)
    return [target]


def profile_pyinstrument(wid: str, params: dict[str, Any], out_dir: Path) -> str:
    data = new_data_dir(None)
    session = out_dir / f"{wid.lower()}.pyisession"
    try:
        res = run_child([sys.executable, "-m", "benchmarks.child", wid, "--url",
                         "sqlite:///" + str(data / "profile.db"), "--params", json.dumps(params),
                         "--profile", str(session)], cwd=REPO, timeout=900)
        print(json.dumps(res.record), file=sys.stderr)
    finally:
        remove_tree(data)
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    loaded = Session.load(str(session))
    return ConsoleRenderer(unicode=False, color=False, show_all=False).render(loaded)


def count_statements(params: dict[str, Any]) -> str:
    """W8 with psycopg calls counted in each worker: round trips per orchestration."""
    params = dict(params, count_statements=True)
    res = run_child([sys.executable, "-m", "benchmarks.child", "W8", "--url", PG_BASE,
                     "--params", json.dumps(params)], cwd=REPO, timeout=900)
    record = res.record or {}
    if not record.get("available"):
        return f"W8 not run: {record.get('reason', res.stderr_tail[-500:])}"
    out = []
    for run in record["runs"]:
        total: Counter[str] = Counter()
        for counts in run.get("worker_statements", []):
            total.update(counts)
        n = run["n"]
        out += [f"### W8, {run['workers']} worker(s): {run['orch_per_s']} orch/s", "",
                f"per orchestration: {total['round_trips'] / n:.1f} round trips (messages to "
                f"the server), {total['statements'] / n:.1f} SQL statements", ""]
        rows = [(k, v) for k, v in total.items()
                if k.startswith(("stmt:", "many:", "in_batch:"))]
        rows.sort(key=lambda kv: -kv[1])
        out += [f"    {v / n:6.2f}  {k}" for k, v in rows[:25]]
        out.append("")
    return "\n".join(out)


def w9_statements(params: dict[str, Any]) -> str:
    """W9's parts (SQLite) with the backend's statements and leases counted in-process."""
    params = dict(params, count_statements=True, postgres=False)
    params.setdefault("parts", ["a", "b", "c"])
    data = new_data_dir(None)
    try:
        res = run_child([sys.executable, "-m", "benchmarks.child", "W9", "--url",
                         "sqlite:///" + str(data / "w9.db"), "--params", json.dumps(params)],
                        cwd=REPO, timeout=1800)
    finally:
        remove_tree(data)
    out = []
    for part, rec in ((res.record or {}).get("parts") or {}).items():
        counted = rec.get("statements")
        if not counted:
            out.append(f"### W9 part {part}: {rec.get('error', 'no counts')}")
            continue
        unit = "operation" if part in ("a", "b") else "orchestration"
        rate = rec.get("ops_per_s") or rec.get("orch_per_s")
        out += [f"### W9 part {part}: {rate}/s; per {unit}, and ms in the database threads", "",
                f"    {counted['write_jobs']} write calls in {counted['write_transactions']} "
                f"transactions; writer thread busy {counted['write_thread_s']} s; "
                f"leases: {rec.get('leases')}", ""]
        for name, row in counted["statements"].items():
            out.append(f"    {row['per_unit']:7.3f}  {row['ms']:8.1f} ms  {name}")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wid", choices=workloads.ORDER)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tool", choices=["py-spy", "pyinstrument"], default="py-spy")
    parser.add_argument("--out", default=None, help="keep raw profiles in this directory")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--statements", action="store_true",
                        help="W8: count psycopg statements per orchestration instead; W9: "
                             "count SQLite statements and leased messages per operation")
    parser.add_argument("--gil", action="store_true",
                        help="py-spy --gil: only samples holding the GIL (Python CPU; drops "
                             "threads blocked in C, which py-spy may otherwise count as busy)")
    parser.add_argument("--native", action="store_true",
                        help="py-spy --native: show C frames (libpq, sqlite3) too")
    parser.add_argument("--parts", default=None,
                        help="W9 only: comma-separated parts to profile (default a,b,c)")
    args = parser.parse_args()
    params = dict(workloads.load(args.wid).PARAMS["quick" if args.quick else "full"])
    if args.parts:
        params["parts"] = [p.strip() for p in args.parts.split(",") if p.strip()]
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="durable-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.statements:
        print(w9_statements(params) if args.wid == "W9" else count_statements(params))
        return 0
    if args.tool == "pyinstrument":
        print(profile_pyinstrument(args.wid, params, out_dir))
        return 0
    paths = profile_py_spy(args.wid, params, out_dir, args.native, args.gil)
    if args.wid == "W9":
        for path in paths:
            print(render(summarize([path], args.top), f"W9 part {path.stem.removeprefix('w9-')}"))
    elif args.wid == "W8":
        for workers in params["workers"]:
            group = [p for p in paths if p.name.startswith(f"w8-{workers}w-")]
            if group:
                print(render(summarize(group, args.top), f"W8, {workers} worker(s)"))
    else:
        print(render(summarize(paths, args.top), args.wid))
    print(f"raw profiles in {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
