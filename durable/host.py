"""``Host``: runs an app in this process (storage, worker) and exposes its client.

    async with durable.Host(app, storage="sqlite:///app.db") as host:
        instance_id = await host.client.start_new("hello_sequence")
        status = await host.client.wait_for_completion(instance_id, timeout=10)

``durable run`` and ``durable worker`` are thin command-line wrappers around it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from types import TracebackType
from typing import Any

from durable.app import DFApp
from durable.client import DurableOrchestrationClient
from durable.clock import Clock, clock_of
from durable.errors import SchemaVersionError, StorageError
from durable.schedules.timers import TimerService
from durable.status import OverridableStates
from durable.storage import open_backend
from durable.storage.base import Backend
from durable.telemetry import Observer
from durable.worker.worker import Worker, WorkerOptions

log = logging.getLogger("durable.host")


class Host:
    """Storage + worker + client for one app, as an async context manager.

    ``storage`` is a URL (``sqlite:///file.db``, ``postgresql://...``), a backend object, or
    ``None`` for ``$DURABLE_STORAGE`` or ``./durable.db``. With ``run_worker=False`` the host
    only serves the client (a front end that leaves the work to ``durable worker`` processes).
    Worker tuning is passed as keyword arguments of :class:`durable.WorkerOptions`.
    ``observer`` (:mod:`durable.telemetry`) receives the worker's and the client's telemetry.
    ``clock`` (:mod:`durable.clock`) is the time storage, worker and client run on: the wall
    clock by default, a :class:`durable.clock.VirtualClock` in tests.
    """

    def __init__(
        self,
        app: DFApp,
        storage: str | Backend | None = None,
        *,
        run_worker: bool = True,
        overridable_states: OverridableStates = OverridableStates.NonRunningStates,
        worker_options: WorkerOptions | None = None,
        observer: Observer | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.backend = open_backend(storage)
        if clock is not None:
            self.backend.clock = clock  # type: ignore[attr-defined]
        self.clock = clock_of(self.backend)
        registry = app.registry()
        self.registry = registry
        # Timer triggers: a built-in orchestrator per timer function (durable/schedules/).
        self.timers = TimerService(app)
        timer_activities = self.timers.install(registry)
        self.worker: Worker | None = None
        if run_worker:
            opts = with_app_versioning(worker_options or WorkerOptions(**options), app)
            # Built-in activities (timer runs) run beside the app's and call_http's.
            self.worker = Worker(
                registry, self.backend, opts, builtin_activities=timer_activities,
                observer=observer,
            )
        elif options:
            raise TypeError(f"Worker options given without a worker: {sorted(options)}")
        self.client = DurableOrchestrationClient(
            self.backend, registry, self.worker, overridable_states=overridable_states,
            observer=observer,
        )
        self.client.default_version = getattr(app, "default_version", None)
        self._running = False
        self._stopping = False

    @property
    def running(self) -> bool:
        """Started (the worker too, if there is one) and not stopping: what readiness wants."""
        return self._running

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        if self._running:
            return
        await self.backend.open()
        started: list[Any] = []
        try:
            for hook in getattr(self.app, "on_host_start", ()):
                await hook(self)
                started.append(hook)
            if self.worker is not None:
                await self.worker.start()
                if self.timers:
                    await self.timers.start(self.client)
        except BaseException:
            # A failed start leaves nothing running or open.
            if self.worker is not None:
                await self.worker.stop()
            if started:
                await self._run_stop_hooks()
            await self.backend.close()
            raise
        self._running = True

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        self._stopping = True
        try:
            if self.worker is not None:
                await self.worker.stop()
        finally:
            try:
                await self._run_stop_hooks()
            finally:
                await self.backend.close()

    async def _run_stop_hooks(self) -> None:
        for hook in getattr(self.app, "on_host_stop", ()):
            try:
                await hook(self)
            except Exception:
                log.exception("an app's stop hook failed")

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def with_app_versioning(options: WorkerOptions, app: Any) -> WorkerOptions:
    """The worker runs the app's version and strategies, where the options leave them unset."""
    defaults = WorkerOptions()
    changes: dict[str, Any] = {}
    for option, setting in (("version", "default_version"),
                            ("version_match", "version_match_strategy"),
                            ("version_failure", "version_failure_strategy")):
        value = getattr(app, setting, None)
        if value is not None and getattr(options, option) == getattr(defaults, option):
            changes[option] = value
    return dataclasses.replace(options, **changes) if changes else options


async def start_with_retry(host: Host, *, first_delay: float = 0.25, max_delay: float = 1.0,
                           log_every: float = 30.0) -> None:
    """Start ``host``, waiting out unreachable storage.

    A worker deployed together with its database, or restarted while the database is down,
    should wait for it rather than exit, and start within about a second of it being back:
    attempts ``first_delay`` apart, doubling to ``max_delay`` (one connection attempt a second
    costs a server nothing). Each new reason to wait is logged at once, the same one again
    every ``log_every`` seconds. A schema written by a newer version of durable is not an
    outage and is raised at once.
    """
    delay = first_delay
    logged: tuple[str, float] | None = None
    while True:
        try:
            await host.start()
            if logged is not None:
                log.info("storage is available again")
            return
        except SchemaVersionError:
            raise
        except StorageError as exc:
            now = time.monotonic()
            if logged is None or logged[0] != str(exc) or now - logged[1] >= log_every:
                log.warning("storage is unavailable: %s; retrying in %.2gs", exc, delay)
                logged = (str(exc), now)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
