"""What the worker's parts share: its state, declared once for the type checker.

:class:`durable.worker.Worker` is assembled from parts that each own one concern (the loops and
leasing in worker.py, episode assembly in episodes.py, committing in committing.py); they
share one object. This base class only declares the attributes and the methods one part calls
on another, so each part type-checks on its own; nothing here runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable.app import Registry
    from durable.clock import Clock
    from durable.errors import FailureDetails
    from durable.storage.base import ActivityResult, Backend, OrchestrationWorkItem
    from durable.telemetry import Observer
    from durable.worker.activities import ActivityExecutor
    from durable.worker.cache import InstanceCache, Runtime
    from durable.worker.options import WorkerOptions
    from durable.worker.poison import Strikes
    from durable.worker.renewal import InFlight
    from durable.worker.timers import TimerQueue
    from durable.worker.versions import VersionGate
    from durable.worker.waiters import FinishWaiters


class WorkerState:
    registry: Registry
    backend: Backend
    clock: Clock
    options: WorkerOptions
    id: str
    observer: Observer | None
    executor: ActivityExecutor
    stats: dict[str, int]
    _cache: InstanceCache
    _strikes: Strikes
    _versions: VersionGate
    _timers: TimerQueue
    _finish_waiters: FinishWaiters
    _wake: asyncio.Event
    _poll_soon: asyncio.Event
    _accepted: list[OrchestrationWorkItem]
    _hinted: dict[str, None]
    _leasing: set[str]
    _with_local: set[str]
    _to_inbox: list[ActivityResult]
    _in_flight: InFlight
    _busy_count: int
    _claims_planned: int
    _left_unclaimed: bool
    _stopping: bool
    _doing: str

    if TYPE_CHECKING:
        def hint(self, instance_id: str) -> None: ...
        def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...
        def _struck(self, instance_id: str, cause: FailureDetails, *, deterministic: bool,
                    exc: BaseException | None = None) -> None: ...
        def _forget(self, instance_id: str) -> None: ...
        def _claim(self) -> bool: ...
        def _new_runtime(self, name: str) -> Runtime | None: ...
