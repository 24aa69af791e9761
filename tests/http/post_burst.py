"""A client process for the race test: POST one URL ``count`` times at once, on a signal.

    python -m tests.http.post_burst URL COUNT

Prints ``ready`` once connected, waits for a line on stdin (so that every client process fires
together), then prints a JSON list of ``[status_code, content_type]``, one per request.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx


async def main(url: str, count: int) -> None:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        # Open the connections first, so the burst is not spread out by connection set-up.
        await asyncio.gather(*(client.get(url.rsplit("/api/", 1)[0] + "/warmup")
                               for _ in range(count)))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        responses = await asyncio.gather(*(client.post(url) for _ in range(count)))
    print(json.dumps([[r.status_code, r.headers.get("content-type")] for r in responses]),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
