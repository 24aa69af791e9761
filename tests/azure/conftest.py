"""Helpers for the Azure app tests: copies of the example projects, run by real ``durable``
processes, driven over real HTTP with the URLs the apps themselves hand out."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "azure"
APPS = Path(__file__).resolve().parent / "apps"
TIMEOUT = 30.0


def copy_project(source: Path, into: Path) -> Path:
    """A fresh copy (its logs, outbox and SQLite file land there, not in the checkout)."""
    target = into / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(
        "__pycache__", "*.db*", "*.log", "outbox", "backup", "issues.json"))
    return target


def poll(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def start(base: str, function: str, body: Any = None, prefix: str = "api") -> dict[str, Any]:
    """POST the app's own starter; return its check-status payload (202)."""
    response = httpx.post(f"{base}/{prefix}/orchestrators/{function}", timeout=TIMEOUT,
                          content=None if body is None else json.dumps(body))
    assert response.status_code == 202, response.text
    payload = response.json()
    assert response.headers["location"] == payload["statusQueryGetUri"]
    return payload


def status(payload: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(payload["statusQueryGetUri"], timeout=TIMEOUT)
    assert response.status_code in (200, 202), response.text
    return response.json()


def finished(payload: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
    return poll(lambda: (s := status(payload))["runtimeStatus"] in
                ("Completed", "Failed", "Terminated") and s,
                f"{payload['id']} to finish", timeout)


def raise_event(payload: dict[str, Any], name: str, data: Any) -> None:
    url = payload["sendEventPostUri"].replace("{eventName}", name)
    response = httpx.post(url, json=data, timeout=TIMEOUT)
    assert response.status_code == 202, response.text


async def burst(url: str, count: int) -> list[httpx.Response]:
    """``count`` POSTs at once, over connections opened beforehand."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        origin = url.split("/api/", 1)[0]
        await asyncio.gather(*(client.get(f"{origin}/api/warmup") for _ in range(count)))
        return list(await asyncio.gather(*(client.post(url) for _ in range(count))))
