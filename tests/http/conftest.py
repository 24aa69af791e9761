"""Helpers for the HTTP tests.

- :func:`serving`: the ASGI app in-process (httpx ``ASGITransport``) over a real Host on a
  SQLite file, for the route and status-code matrix.
- :class:`DurableRun`: a real ``durable run`` process on a free port (``--port 0``; the port is
  read from the banner), for end-to-end tests.

Nothing sleeps to wait for work: helpers poll with a deadline and fail loudly.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import durable as df
from durable.http.app import DEFAULT_MAX_REQUEST_BODY, create_app
from durable.http.keys import KeyRing, load_keys
from durable.management_urls import WebhookSettings
from tests.http import sample_app

REPO = Path(__file__).resolve().parents[2]
MGMT = "/runtime/webhooks/durabletask"
TIMEOUT = 20.0
FAST: dict[str, Any] = {"lease_seconds": 5.0, "poll_interval": 0.05, "shutdown_timeout": 5.0}
Status = df.OrchestrationRuntimeStatus


@dataclass
class Served:
    host: df.Host
    http: httpx.AsyncClient
    keys: KeyRing

    @property
    def client(self) -> df.DurableOrchestrationClient:
        return self.host.client

    async def finished(self, instance_id: str) -> df.DurableOrchestrationStatus:
        return await self.client.wait_for_completion(instance_id, timeout=TIMEOUT)


@asynccontextmanager
async def serving(
    tmp_path: Path,
    *,
    app: df.DFApp = sample_app.app,
    keys_required: bool = False,
    max_request_body: int = DEFAULT_MAX_REQUEST_BODY,
    environ: dict[str, str] | None = None,
) -> AsyncIterator[Served]:
    url = f"sqlite:///{tmp_path / 'http.db'}"
    async with df.Host(app, storage=url, **FAST) as host:
        keys = await load_keys(host.backend, required=keys_required, environ=environ or {})
        host.client.webhooks = WebhookSettings(
            origin="http://origin.example:7071",
            system_key=keys.system if keys.required else None,
        )
        asgi = create_app(app, host.client, keys=keys, max_request_body=max_request_body)
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Served(host, http, keys)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = TIMEOUT, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def wait_until(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """Synchronous :func:`eventually` for tests that drive processes."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class DurableRun:
    """A ``durable run APP --port 0`` subprocess; ``base`` is its URL once it listens.

    ``port=None`` gives no ``--port`` (the project's ``LocalHttpPort``, or 7071, applies)."""

    def __init__(
        self, app_path: Path | str, *args: str, env: dict[str, str] | None = None,
        cwd: Path = REPO, port: str | None = "0",
    ) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        environment.update(env or {})
        # The checkout last: a test may put its own modules (a sitecustomize) first.
        first = (env or {}).get("PYTHONPATH")
        environment["PYTHONPATH"] = f"{first}{os.pathsep}{REPO}" if first else str(REPO)
        ports = ["--port", port] if port is not None else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "durable.cli", "run", str(app_path), *ports, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env=environment,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.base = self._wait_for_banner()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _wait_for_banner(self) -> str:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            found = re.search(r"Listening on (http://\S+)", line)
            if found:
                return found.group(1).replace("localhost", "127.0.0.1")
        self.kill()
        raise AssertionError("durable run did not start:\n" + self.output())

    def output(self) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("durable run did not stop:\n" + self.output()) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)

    def __enter__(self) -> DurableRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
