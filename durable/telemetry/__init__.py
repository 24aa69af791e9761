"""What the worker and the client tell operators: one observer interface, no-op by default.

The worker and the client hold an ``observer`` that is ``None`` unless something was asked for,
so the hot path pays one attribute test per commit batch and per start. When set, they call:

- :meth:`Observer.incoming` around the handling of an HTTP request (tracing continues the
  caller's ``traceparent``);
- :meth:`Observer.starting` around a client's start of an instance (the OpenTelemetry
  ``create_orchestration`` span; it may stamp the new instance with a ``traceparent``);
- :meth:`Observer.committed` after each commit batch of orchestration episodes, with what each
  episode decided (:class:`EpisodeView`): starts, completions, failures, scheduled and finished
  activities, timers and sub-orchestrations are all visible in the events an episode appends.

Implementations: :mod:`durable.telemetry.console` (the log lines of ``durable run`` and
``durable worker``), :mod:`durable.telemetry.tracing` (OpenTelemetry, optional extra ``otel``)
and :mod:`durable.telemetry.metrics` (Prometheus, optional extra ``metrics``).
:class:`Observers` fans out to several. None of them may raise into the worker: a telemetry
bug is logged and swallowed (see :func:`notify`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from durable.history import ExecutionStarted
from durable.orchestration.actions import Decision
from durable.storage.base import NewInstance

log = logging.getLogger("durable.telemetry")


@dataclass(slots=True)
class EpisodeView:
    """One committed (or refused) episode, as observers see it."""

    instance_id: str
    execution_id: str
    started: ExecutionStarted | None  # the execution's start event (name, parent, trace)
    decision: Decision  # decision.history: the events this episode appended
    ok: bool  # False: the commit's fence failed (the lease moved on); nothing was written

    @property
    def name(self) -> str:
        return self.started.name if self.started is not None else ""


class Observer:
    """Base class: every hook does nothing. Override the ones you need."""

    @contextlib.contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        """Wraps the handling of an HTTP request (tracing adopts its ``traceparent``)."""
        yield

    @contextlib.contextmanager
    def starting(self, new: NewInstance) -> Iterator[None]:
        """Wraps a client's start of ``new`` (it may set ``new.trace_context``)."""
        yield

    def committed(self, episodes: Sequence[EpisodeView], seconds: float) -> None:
        """A commit batch finished after ``seconds``; ``episodes`` in batch order."""

    def close(self) -> None:
        """Flush and release what the observer holds (the process is stopping)."""


class Observers(Observer):
    """Several observers behind one (each hook calls each, in order)."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = list(observers)

    @contextlib.contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self.observers:
                stack.enter_context(observer.incoming(headers))
            yield

    @contextlib.contextmanager
    def starting(self, new: NewInstance) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self.observers:
                stack.enter_context(observer.starting(new))
            yield

    def committed(self, episodes: Sequence[EpisodeView], seconds: float) -> None:
        for observer in self.observers:
            notify(observer.committed, episodes, seconds)

    def close(self) -> None:
        for observer in self.observers:
            notify(observer.close)


def combine(observers: Sequence[Observer | None]) -> Observer | None:
    """``None`` if there is nothing to observe with, the observer itself if one, else all."""
    present = [o for o in observers if o is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Observers(present)


def notify(hook: Any, *args: Any) -> None:
    """Call an observer hook; a failure in telemetry must never stop the work it watches."""
    try:
        hook(*args)
    except Exception:
        log.exception("telemetry observer %r failed", hook)


def observe_commit(
    observer: Observer, episodes: Sequence[Any], outcomes: Sequence[Any], seconds: float
) -> None:
    """Called by the worker after a commit batch, before it updates its cache.

    ``episodes`` are the worker's episode records (``owned``, ``decision``, ``commit``) and
    ``outcomes`` their :class:`~durable.storage.base.CommitOutcome`. Only attribute reads: the
    views are built here so the worker's own structures stay private to it.
    """
    views = [
        EpisodeView(
            instance_id=episode.commit.instance_id,
            execution_id=episode.commit.execution_id,
            started=episode.owned.runtime.started,
            decision=episode.decision,
            ok=outcome.ok,
        )
        for episode, outcome in zip(episodes, outcomes, strict=True)
    ]
    notify(observer.committed, views, seconds)


__all__ = [
    "EpisodeView", "Observer", "Observers", "combine", "notify", "observe_commit",
]
