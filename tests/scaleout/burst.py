"""A client process for the singleton race: fire COUNT requests at once, on a signal.

    python -m tests.scaleout.burst http URL COUNT      # POST URL COUNT times
    python -m tests.scaleout.burst client STORAGE ID COUNT   # client.start_new(hold, ID)

Prints ``ready`` when set up, waits for a line on stdin (so every process fires together),
then prints one JSON line: ``{"ok": n, "conflict": n, "other": [...]}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx

import durable as df
from tests.scaleout.app import app


async def _go() -> None:
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def over_http(url: str, count: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await _go()
        answers = await asyncio.gather(*(client.post(url, json=None) for _ in range(count)))
    tally: dict[str, Any] = {"ok": 0, "conflict": 0, "other": []}
    for answer in answers:
        if answer.status_code == 202:
            tally["ok"] += 1
        elif answer.status_code == 409 and "InstanceAlreadyExistsError" in answer.text:
            tally["conflict"] += 1
        else:
            tally["other"].append([answer.status_code, answer.text[:200]])
    return tally


async def with_client(storage: str, instance_id: str, count: int) -> dict[str, Any]:
    async with df.Host(app, storage, run_worker=False) as host:
        await _go()
        results = await asyncio.gather(
            *(host.client.start_new("hold", instance_id) for _ in range(count)),
            return_exceptions=True,
        )
    tally: dict[str, Any] = {"ok": 0, "conflict": 0, "other": []}
    for result in results:
        if result == instance_id:
            tally["ok"] += 1
        elif isinstance(result, df.InstanceAlreadyExistsError):
            tally["conflict"] += 1
        else:
            tally["other"].append(repr(result))
    return tally


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "http":
        outcome = asyncio.run(over_http(args[0], int(args[1])))
    else:
        outcome = asyncio.run(with_client(args[0], args[1], int(args[2])))
    print(json.dumps(outcome), flush=True)
