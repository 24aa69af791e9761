"""Worker settings, and who a worker is."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass

from durable.storage.base import DEFAULT_LEASE_SECONDS, Backend
from durable.versioning import VersionFailure, VersionMatch

log = logging.getLogger("durable.worker")

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
    # Messages read per instance per lease, and so at most run in one episode: a hot entity's
    # backlog is applied in episodes of this many operations (each one commit), so reading
    # and running it never holds up the other instances for long. None: no cap.
    max_messages_per_lease: int | None = 5000
    # Activities a worker keeps for itself (running or queued); None: 4x the thread pool.
    # Activities its orchestrations schedule beyond this are left unclaimed for any worker to
    # take, so a fan-out spreads over every worker instead of queueing behind one.
    activity_backlog: int | None = None
    shutdown_timeout: float = 30.0
    # An instance whose episode fails inside durable this many times (an exception escaping
    # replay, a commit storage refuses) is parked as Failed with the cause, instead of being
    # retried forever; between attempts it backs off from poison_retry_delay, doubling
    # (docs/reliability.md). Deterministic failures (a value storage refuses) park at once.
    poison_attempts: int = 5
    poison_retry_delay: float = 0.5
    # Versioning (durable/versioning.py): the version this worker runs (its app's
    # default_version), which instance versions it takes, and what it does with the others.
    version: str | None = None
    version_match: VersionMatch = VersionMatch.NONE
    version_failure: VersionFailure = VersionFailure.REJECT
    # While the worker runs, Python's collector takes its young generation after this many
    # allocations (default 700), which made W9 (c) 12 % faster; None leaves the collector
    # alone (durable/worker/collector.py).
    gc_young_threshold: int | None = 50_000

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


async def reclaim_dead_owners(backend: Backend) -> None:
    """Release leases of crashed workers of this machine at once instead of waiting for them
    to expire, so a restarted single-machine app resumes immediately.

    Only for single-host backends (SQLite): there a worker ID's host part is this machine and
    a missing process ID proves its owner dead. Elsewhere leases simply expire.
    """
    if not getattr(backend, "single_host", False):
        return
    for owner in dead_local_owners(await backend.lease_owners()):
        log.info("releasing the leases of %s: its process is gone", owner)
        await backend.release_all(owner)
