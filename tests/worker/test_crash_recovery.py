"""A Host killed with SIGKILL mid-orchestration: a new Host on the same file finishes the work,
without waiting for the dead process's leases to expire."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import durable as df
from tests.worker import crash_app


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the app process exited early: {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


async def test_a_new_host_finishes_what_a_killed_host_left(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'app.db'}"
    marker = tmp_path / "block-started"
    env = dict(os.environ, DURABLE_TEST_BLOCK="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.worker.crash_app", storage, str(marker)],
        env=env, cwd=Path(__file__).parents[2],
    )
    try:
        wait_for_file(marker, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    async with df.Host(crash_app.app, storage) as host:
        # The dead process held 30-second leases; finishing within 15 s shows they were
        # reclaimed at start-up instead of waited out.
        status = await host.client.wait_for_completion("crash-1", timeout=15)
    assert status.runtime_status is df.OrchestrationRuntimeStatus.Completed
    assert status.output == ["unblocked", "echo unblocked"]
    # The activity in flight at the kill ran again (at-least-once), in this process.
    assert marker.read_text() == str(os.getpid())
