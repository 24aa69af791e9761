"""Worker settings, and who a worker is."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from durable.storage.base import DEFAULT_LEASE_SECONDS

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_MAX_CACHED = 10_000
MAX_RETRY_DELAY = 30.0  # longest back-off between attempts while storage is down


@dataclass(slots=True)
class WorkerOptions:
    """Tuning knobs; every default is safe for one process on a laptop."""

    max_concurrent_activities: int = 16  # sync activities: thread pool size
    max_concurrent_async_activities: int = 1000
    max_concurrent_orchestrations: int = 1000  # instances in an episode at once
    max_cached_orchestrations: int = DEFAULT_MAX_CACHED
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL
    # Instances or activities leased per poll. Small enough that idle workers woken together
    # share a burst of new work instead of the first one to poll taking it all.
    lease_batch: int = 50
    # Activities a worker keeps for itself (running or queued); None: 4x the thread pool.
    # Activities its orchestrations schedule beyond this are left unclaimed for any worker to
    # take, so a fan-out spreads over every worker instead of queueing behind one.
    activity_backlog: int | None = None
    shutdown_timeout: float = 30.0

    @property
    def backlog(self) -> int:
        if self.activity_backlog is not None:
            return self.activity_backlog
        return 4 * self.max_concurrent_activities


def new_worker_id() -> str:
    """``host:pid:random``: unique per process start, and telling where the owner runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_local_owners(owners: list[str]) -> list[str]:
    """Worker IDs of this machine whose process no longer exists."""
    host = socket.gethostname()
    dead = []
    for owner in owners:
        owner_host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if owner_host == host and pid_text.isdigit() and not _process_alive(int(pid_text)):
            dead.append(owner)
    return dead


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
