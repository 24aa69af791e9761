"""Probes of a front end (``durable run --no-worker``) and of a worker's port (``durable worker
--metrics-port``) follow a PostgreSQL server that is not there yet, comes up, crashes and comes
back: alive throughout, ready only while storage answers. On a private server (pg_ctl)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import wait_until
from tests.scaleout.harness import APP, DurableProcess
from tests.scaleout.private_pg import PrivateServer, private_server


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    yield from private_server()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None


def readiness(base: str, status: int) -> dict[str, str] | None:
    answer = get(f"{base}/readyz")
    return answer.json() if answer is not None and answer.status_code == status else None


def test_probes_follow_the_database_down_up_crashed_and_back(
    server: PrivateServer, tmp_path: Path, activity_log: Path
) -> None:
    url = server.url(hub="probes")
    front_port, worker_port = free_port(), free_port()
    front = DurableProcess(["run", APP, "--storage", url, "--port", str(front_port),
                            "--no-worker"], tmp_path, "front", activity_log)
    worker = DurableProcess(["worker", APP, "--storage", url, "--metrics-port",
                             str(worker_port), "--lease-seconds", "3"], tmp_path, "worker",
                            activity_log)
    bases = {"front": f"http://127.0.0.1:{front_port}",
             "worker": f"http://127.0.0.1:{worker_port}"}
    try:
        # The database does not exist yet: both listen, alive, not ready; the rest waits.
        for name, base in bases.items():
            live = wait_until(lambda base=base: get(f"{base}/healthz"), what=f"{name} to listen")
            assert live.status_code == 200
            body = readiness(base, 503)
            assert body is not None and body["host"] == "starting", body
        starting = get(f"{bases['front']}/runtime/webhooks/durabletask/instances")
        assert starting is not None and starting.status_code == 503
        assert get(f"{bases['worker']}/metrics").status_code == 503  # type: ignore[union-attr]

        server.start()
        for name, base in bases.items():
            body = wait_until(lambda base=base: readiness(base, 200), what=f"{name} ready")
            assert body["storage"] == "ok"
        assert wait_until(lambda: readiness(bases["front"], 200))["worker"] == "none"
        assert readiness(bases["worker"], 200)["worker"] == "running"  # type: ignore[index]
        metrics = get(f"{bases['worker']}/metrics")
        assert metrics is not None and metrics.status_code == 200
        assert "durable_instances" in metrics.text

        server.kill()
        for name, base in bases.items():
            body = wait_until(lambda base=base: readiness(base, 503), what=f"{name} not ready")
            assert body["storage"] in ("unavailable", "no answer"), body
            started = time.monotonic()
            live = get(f"{base}/healthz")
            assert live is not None and live.status_code == 200
            assert time.monotonic() - started < 1.0  # liveness never waits for storage

        server.start()
        for name, base in bases.items():
            wait_until(lambda base=base: readiness(base, 200), what=f"{name} ready again")
        for process in (front, worker):
            assert process.process.poll() is None, process.log()[-3000:]
    finally:
        front.close()
        worker.close()
