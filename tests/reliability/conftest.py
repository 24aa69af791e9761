"""Real ``durable run`` servers for the reliability tests, on each backend.

``server`` serves :mod:`tests.reliability.poison_app` on the backend of the ``storage_url``
fixture (a SQLite file, and a fresh PostgreSQL hub), so every defect is checked on both
through a real HTTP server. Nothing sleeps to wait for work: helpers poll with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.http.conftest import MGMT, DurableRun

APP = "tests.reliability.poison_app:app"  # a module name: envelopes name it the same
TIMEOUT = 30.0


class Server:
    """A running ``durable run`` of the poison app, and calls against its management API."""

    def __init__(self, run: DurableRun, storage: str) -> None:
        self.run = run
        self.storage = storage
        self.base = run.base
        self.mgmt = f"{run.base}{MGMT}"
        self.http = httpx.Client(timeout=10)

    def start(self, function: str, instance_id: str | None = None, *, json: Any = None,
              content: bytes | None = None) -> httpx.Response:
        url = f"{self.mgmt}/orchestrators/{function}"
        if instance_id is not None:
            url += f"/{instance_id}"
        if content is not None:
            return self.http.post(url, content=content,
                                  headers={"content-type": "application/json"})
        return self.http.post(url, json=json)

    def raise_event(self, instance_id: str, name: str, *, json: Any = None,
                    content: bytes | None = None) -> httpx.Response:
        url = f"{self.mgmt}/instances/{instance_id}/raiseEvent/{name}"
        if content is None:
            return self.http.post(url, json=json)
        return self.http.post(url, content=content, headers={"content-type": "application/json"})

    def status(self, instance_id: str) -> httpx.Response:
        return self.http.get(f"{self.mgmt}/instances/{instance_id}")

    def wait_for(self, instance_id: str, *wanted: str, timeout: float = TIMEOUT
                 ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.status(instance_id)
            assert response.status_code in (200, 202), (response.status_code, response.text)
            body = response.json()
            if body["runtimeStatus"] in wanted:
                return body
            time.sleep(0.02)
        raise AssertionError(f"{instance_id} never became {wanted}: {body}\n"
                             f"{self.run.output()[-3000:]}")

    def log(self) -> str:
        return self.run.output()

    def close(self) -> None:
        self.http.close()
        self.run.kill()


def serve(storage: str, *args: str, env: dict[str, str] | None = None) -> Server:
    return Server(DurableRun(APP, "--storage", storage, *args, env=env), storage)


@pytest.fixture
def server(storage_url: str) -> Iterator[Server]:
    running = serve(storage_url)
    try:
        yield running
    finally:
        running.close()
