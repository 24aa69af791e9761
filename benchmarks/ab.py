"""A/B: the same durable workloads from two checkouts, alternating, in one invocation.

    .venv/bin/python benchmarks/ab.py /work/main . --reps 3

Each run is a fresh process (each checkout's own ``.venv``) on a fresh SQLite file; the order
of the two sides flips every repetition, so drift in machine load hits both. Runs W9 (a), (b),
(c) at full size and W1; prints one line per run and the medians. On a shared 2-core machine
only a comparison made this way means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

CASES = [
    ("W9a", ["-m", "benchmarks.workloads.w9_entities", "a"], {"signals": 10000, "keys": 100},
     "ops_per_s"),
    ("W9b", ["-m", "benchmarks.workloads.w9_entities", "b"], {"signals": 10000, "keys": 1},
     "ops_per_s"),
    ("W9c", ["-m", "benchmarks.workloads.w9_entities", "c"],
     {"orchestrations": 1000, "calls": 5, "call_keys": 100}, "orch_per_s"),
    ("W1", ["-m", "benchmarks.child", "W1"], {"n": 1000}, "orch_per_s"),
]
SHOWN = ("cpu_s", "messages_leased_per_op", "wrong_final", "bad_output")


def run_one(repo: Path, args: list[str], params: Mapping[str, object]) -> dict[str, object] | None:
    scratch = tempfile.mkdtemp(prefix="durable-ab-")
    try:
        out = subprocess.run(
            [str(repo / ".venv/bin/python"), *args, "--url", f"sqlite:///{scratch}/ab.db",
             "--params", json.dumps(params)],
            cwd=repo, env=dict(os.environ, PYTHONPATH=str(repo)), capture_output=True,
            text=True, timeout=900)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        print(out.stderr[-1000:])
        return None
    result: dict[str, object] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="checkout A (e.g. /work/main)")
    parser.add_argument("b", type=Path, help="checkout B (e.g. .)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated: W9a,W9b,W9c,W1")
    options = parser.parse_args()
    sides = {"A": options.a.resolve(), "B": options.b.resolve()}
    wanted = set(filter(None, options.only.split(",")))
    results: dict[str, dict[str, list[float]]] = {}
    for rep in range(options.reps):
        for case, args, params, key in CASES:
            if wanted and case not in wanted:
                continue
            for side in ("A", "B") if rep % 2 == 0 else ("B", "A"):
                result = run_one(sides[side], args, params)
                if result is None:
                    print(f"rep {rep + 1} {case} {side} FAILED")
                    continue
                value = float(result[key])  # type: ignore[arg-type]
                results.setdefault(case, {}).setdefault(side, []).append(value)
                extra = {k: result[k] for k in SHOWN if k in result}
                print(f"rep {rep + 1} {case:4} {side} {key}={value:,.1f} {extra} "
                      f"load={os.getloadavg()[0]:.1f}", flush=True)
    print()
    for case, by_side in results.items():
        for side, values in by_side.items():
            ordered = sorted(values)
            print(f"{case:4} {side} ({sides[side]}): median {ordered[len(ordered) // 2]:,.1f} "
                  f"[{ordered[0]:,.1f}-{ordered[-1]:,.1f}]")


if __name__ == "__main__":
    main()
