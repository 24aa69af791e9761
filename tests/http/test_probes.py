"""``/healthz`` and ``/readyz`` (durable/http/probes.py) on SQLite: in-process over a real Host
for what they answer, and a real ``durable run`` beyond loopback for where they are served.
The PostgreSQL outage cases (a front end and a worker's port) are in tests/scaleout/test_probes.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx

import durable as df
from durable.http.probes import Probes
from tests.http import sample_app
from tests.http.conftest import FAST, MGMT, DurableRun, eventually

APP = Path(sample_app.__file__)


async def test_readiness_follows_the_host_and_its_storage_schema(tmp_path: Path) -> None:
    path = tmp_path / "probes.db"
    host = df.Host(sample_app.app, storage=f"sqlite:///{path}", **FAST)
    probes = Probes(host, detail=True)
    anonymous = Probes(host, detail=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probes),
                                 base_url="http://t") as http, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=anonymous), base_url="http://t") as far:
        # Not started (storage still being waited for): alive, not ready, the rest is 503.
        live = await http.get("/healthz")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        assert live.headers["cache-control"] == "no-store"
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.json()) == (503, {
            "status": "unavailable", "worker": "starting", "host": "starting"})
        other = await http.get("/api/anonymous")
        assert other.status_code == 503 and other.headers["retry-after"] == "5"
        assert "starting" in other.json()["Message"]
        assert (await http.post("/readyz")).status_code == 405
        assert (await http.head("/healthz")).status_code == 200

        await host.start()
        try:
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()) == (200, {
                "status": "ready", "worker": "running", "storage": "ok"})
            assert (await http.get("/READYZ/")).status_code == 200

            def schema(statement: str) -> None:
                with sqlite3.connect(path) as conn:
                    conn.execute(statement)

            latest = sqlite3.connect(path).execute(
                "SELECT MAX(version) FROM durable_migrations").fetchone()[0]
            schema(f"DELETE FROM durable_migrations WHERE version = {latest}")

            async def not_ready() -> httpx.Response | None:
                answer = await http.get("/readyz")
                return answer if answer.status_code == 503 else None

            behind = await eventually(not_ready, what="readiness to see the old schema")
            assert behind.json()["storage"] == "not migrated"
            assert "durable db migrate" in behind.json()["reason"]
            hidden = await far.get("/readyz")  # beyond loopback: what, not why
            assert hidden.status_code == 503 and hidden.json()["storage"] == "not migrated"
            assert "reason" not in hidden.json()

            schema(f"INSERT INTO durable_migrations VALUES ({latest}, 0)")
            schema(f"INSERT INTO durable_migrations VALUES ({latest + 100}, 0)")

            async def newer() -> bool:
                return (await http.get("/readyz")).json().get("storage") == "newer schema"

            await eventually(newer, what="readiness to see a newer schema")
            schema(f"DELETE FROM durable_migrations WHERE version = {latest + 100}")

            async def ready_again() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await eventually(ready_again, what="readiness to come back")
        finally:
            await host.stop()
        stopped = await http.get("/readyz")
        assert stopped.status_code == 503 and stopped.json()["host"] == "stopping"


async def test_probes_read_storage_at_most_once_a_second(tmp_path: Path) -> None:
    """Anonymous and cheap: a flood of probes costs one storage read per second."""
    async with df.Host(sample_app.app, storage=f"sqlite:///{tmp_path / 'p.db'}", **FAST) as host:
        reads = 0
        real = host.backend.probe

        async def counted() -> None:
            nonlocal reads
            reads += 1
            await real()

        host.backend.probe = counted  # type: ignore[method-assign]
        probes = Probes(host, detail=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probes),
                                     base_url="http://t") as http:
            answers = await asyncio.gather(*(http.get("/readyz") for _ in range(100)))
            assert {answer.status_code for answer in answers} == {200}
            assert reads == 1
            for _ in range(50):
                assert (await http.get("/readyz")).status_code == 200
            assert reads <= 2  # the cache lapses after a second: the loop may cross one


def test_durable_run_serves_the_probes_anonymously_beside_the_routes(tmp_path: Path) -> None:
    with DurableRun(APP, "--storage", f"sqlite:///{tmp_path / 'run.db'}", "--host", "0.0.0.0",
                    cwd=tmp_path) as run:
        assert "/healthz" in run.output() and "/readyz" in run.output()
        health = httpx.get(f"{run.base}/healthz", timeout=10)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = httpx.get(f"{run.base}/readyz", timeout=10)
        assert (ready.status_code, ready.json()) == (200, {
            "status": "ready", "worker": "running", "storage": "ok"})
        # Keys are required here (beyond loopback), not for the probes.
        assert httpx.get(f"{run.base}{MGMT}/instances", timeout=10).status_code == 401
        # Never under the route prefix: /api/healthz is a (missing) user route.
        missing = httpx.get(f"{run.base}/api/healthz", timeout=10)
        assert missing.status_code == 404, missing.text
        assert run.stop() == 0
