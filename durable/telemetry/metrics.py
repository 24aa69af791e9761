"""Prometheus metrics (optional extra ``metrics``: prometheus-client).

``durable run --metrics`` serves them at ``/metrics``; ``durable worker --metrics-port N``
serves them on a port of its own, beside its probes (:mod:`durable.http.probes`). Two kinds:

- **Counted here**, from the episodes this process commits: orchestrations started and
  finished (by name and status), activity results (by name and outcome), episodes, commit
  batches, lease losses, and histograms of episode, commit, activity and orchestration
  durations.
- **Read from storage** when scraped, at most once a second (so every process reports the
  whole task hub, and nothing is read while nobody scrapes): instances by status, the backlog
  of due orchestration messages and of waiting activities with the age of the oldest, and the
  number of live workers (distinct workers holding an unexpired lease).

The list with help texts is in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "prometheus-client is not installed: pip install 'durable-py[metrics]'"
    ) from exc

from durable.history import (
    ExecutionStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from durable.status import OrchestrationRuntimeStatus
from durable.storage.base import Backend
from durable.telemetry import EpisodeView, Observer

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from durable.http.keys import KeyRing

log = logging.getLogger("durable.telemetry")

CONTENT_TYPE = CONTENT_TYPE_LATEST
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
_MAX_TRACKED = 100_000


class MetricsObserver(Observer):
    """Counts what the worker commits; reads task-hub gauges from storage on refresh."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.started = Counter("durable_orchestrations_started", "Orchestration executions "
                               "started (first episode committed here)", ["name"], registry=r)
        self.finished = Counter("durable_orchestrations_finished", "Orchestration executions "
                                "that ended, by final status", ["name", "status"], registry=r)
        self.activities = Counter("durable_activities_finished", "Activity results delivered "
                                  "to their orchestration", ["name", "outcome"], registry=r)
        self.episodes = Counter("durable_episodes", "Orchestration episodes committed",
                                registry=r)
        self.commits = Counter("durable_commits", "Commit batches (one transaction each)",
                               registry=r)
        self.lease_lost = Counter("durable_lease_losses", "Episodes refused because the "
                                  "worker's lease moved on (fencing)", registry=r)
        self.episode_seconds = Histogram("durable_episode_duration_seconds", "From an "
                                         "episode's start to its commit", buckets=_FAST,
                                         registry=r)
        self.commit_seconds = Histogram("durable_commit_duration_seconds", "Duration of one "
                                        "commit batch", buckets=_FAST, registry=r)
        self.activity_seconds = Histogram("durable_activity_duration_seconds", "From an "
                                          "activity's scheduling to its result", ["name"],
                                          buckets=_SLOW, registry=r)
        self.orchestration_seconds = Histogram("durable_orchestration_duration_seconds",
                                               "From an execution's start to its end",
                                               ["name"], buckets=_SLOW, registry=r)
        self.instances = Gauge("durable_instances", "Instances in the task hub, by status",
                               ["status"], registry=r)
        self.backlog_messages = Gauge("durable_orchestration_backlog", "Due inbox messages "
                                      "waiting for an orchestration episode", registry=r)
        self.backlog_message_age = Gauge("durable_orchestration_backlog_oldest_seconds",
                                         "Age of the oldest due inbox message", registry=r)
        self.backlog_activities = Gauge("durable_activity_backlog", "Activities waiting for "
                                        "a worker (unleased, or their lease expired)",
                                        registry=r)
        self.backlog_activity_age = Gauge("durable_activity_backlog_oldest_seconds",
                                          "Age of the oldest waiting activity", registry=r)
        self.live_workers = Gauge("durable_workers_live", "Workers holding an unexpired "
                                  "lease", registry=r)
        self.scrape_errors = Counter("durable_metrics_storage_errors", "Failed reads of the "
                                     "storage gauges", registry=r)
        self._scheduled: dict[tuple[str, str, int], tuple[str, float]] = {}
        self._last_refresh = 0.0
        self._refresh_lock: asyncio.Lock | None = None

    # -- worker hook --------------------------------------------------------------------------

    def committed(self, episodes: Sequence[EpisodeView], seconds: float) -> None:
        now = time.time()
        self.commits.inc()
        self.commit_seconds.observe(seconds)
        if len(self._scheduled) > _MAX_TRACKED:
            self._scheduled.clear()
        for episode in episodes:
            if not episode.ok:
                self.lease_lost.inc()
                continue
            self.episodes.inc()
            decision = episode.decision
            if decision.history:
                self.episode_seconds.observe(max(0.0, now - decision.history[0].timestamp))
            for event in decision.history:
                self._event(episode, event)
            if decision.is_done:
                name = episode.name
                status = ("ContinuedAsNew" if decision.continue_as_new is not None
                          else decision.status.value)
                self.finished.labels(name, status).inc()
                if episode.started is not None:
                    self.orchestration_seconds.labels(name).observe(
                        max(0.0, now - episode.started.timestamp))

    def _event(self, episode: EpisodeView, event: object) -> None:
        if isinstance(event, ExecutionStarted):
            self.started.labels(event.name).inc()
        elif isinstance(event, TaskScheduled):
            key = (episode.instance_id, episode.execution_id, event.event_id)
            self._scheduled[key] = (event.name, event.timestamp)
        elif isinstance(event, (TaskCompleted, TaskFailed)):
            key = (episode.instance_id, episode.execution_id, event.task_scheduled_id)
            name, scheduled_at = self._scheduled.pop(key, ("unknown", None))
            outcome = "completed" if isinstance(event, TaskCompleted) else "failed"
            self.activities.labels(name, outcome).inc()
            if scheduled_at is not None:
                self.activity_seconds.labels(name).observe(
                    max(0.0, event.timestamp - scheduled_at))
        elif isinstance(event, (SubOrchestrationInstanceCompleted,
                                SubOrchestrationInstanceFailed)):
            pass  # counted by the child's own finish

    # -- storage gauges -----------------------------------------------------------------------

    async def refresh(self, backend: Backend, *, max_age: float = 1.0) -> None:
        """Read the task-hub gauges from storage (at most once per ``max_age`` seconds)."""
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            if time.monotonic() - self._last_refresh < max_age:
                return
            try:
                counts = await backend.count_by_status()
                backlog = await backend.backlog()
            except Exception as exc:
                self.scrape_errors.inc()
                log.warning("metrics: reading storage failed: %s", exc)
                return
            for status in OrchestrationRuntimeStatus:
                self.instances.labels(status.value).set(counts.get(status, 0))
            self.backlog_messages.set(backlog.messages)
            self.backlog_message_age.set(backlog.oldest_message_age)
            self.backlog_activities.set(backlog.activities)
            self.backlog_activity_age.set(backlog.oldest_activity_age)
            self.live_workers.set(backlog.live_workers)
            self._last_refresh = time.monotonic()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class MetricsEndpoint:
    """``/metrics`` as an ASGI app: refreshes the storage gauges, then renders everything.

    Beyond loopback it wants the system or master key, like the management API (Prometheus:
    ``params: {code: [KEY]}`` or an ``x-functions-key`` header in the scrape config).
    """

    def __init__(self, observer: MetricsObserver, backend: Backend,
                 keys: KeyRing | None = None) -> None:
        self.observer = observer
        self.backend = backend
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request
        from starlette.responses import Response

        from durable.http.keys import presented_key

        request = Request(scope)
        keys = self.keys
        if keys is not None and keys.required and not keys.allows(
            "system", presented_key(request.headers, request.query_params)
        ):
            response = Response("A valid key is required.\n", 401, media_type="text/plain")
        elif request.method not in ("GET", "HEAD"):
            response = Response("Method not allowed.\n", 405, media_type="text/plain")
        else:
            await self.observer.refresh(self.backend)
            response = Response(self.observer.render(), 200, media_type=CONTENT_TYPE)
        await response(scope, receive, send)


__all__ = ["CONTENT_TYPE", "MetricsEndpoint", "MetricsObserver"]
