"""Run ONE durable workload in this (fresh) process and print its result as one JSON line.

    python -m benchmarks.child W1 --url sqlite:////tmp/x/w1.db --params '{"n": 1000}'
    python -m benchmarks.child W1 --url ... --params ... --profile /tmp/w1.pyisession

``benchmarks/run.py`` starts it with the repository as working directory. With ``--profile``
the workload runs under pyinstrument (async mode) and the session is saved for
``benchmarks/profile.py`` to summarise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from typing import Any

from benchmarks import workloads
from benchmarks.harness import self_peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("wid", choices=list(workloads.MODULES))
    parser.add_argument("--url", required=True)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--profile", default=None, help="save a pyinstrument session here")
    parser.add_argument("--interval", type=float, default=0.0005, help="profiler interval (s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    module = workloads.load(args.wid)
    params: dict[str, Any] = json.loads(args.params)
    t0 = time.perf_counter()
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=args.interval, async_mode="disabled")
        profiler.start()
        try:
            result = asyncio.run(module.run(args.url, params))
        finally:
            profiler.stop()
            profiler.last_session.save(args.profile)  # type: ignore[union-attr]
    else:
        result = asyncio.run(module.run(args.url, params))
    result["child_total_s"] = round(time.perf_counter() - t0, 3)
    result["self_peak_rss_mb"] = self_peak_rss_mb()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
