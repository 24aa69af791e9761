"""OpenTelemetry spans, after the Durable Task SDKs' conventions (optional extra ``otel``).

    pip install 'durable-py[otel]'       # opentelemetry-api + opentelemetry-sdk
    durable run app.py --otel            # spans go to the global TracerProvider

Spans (names and ``durabletask.*`` attributes as the Durable Task SDKs use them):

- ``create_orchestration:NAME`` (producer), around a client's start. Its ``traceparent`` is
  stored with the new instance (``ExecutionStarted.trace_context``), so whichever process runs
  the orchestration continues the same trace. An HTTP starter's incoming ``traceparent``
  header becomes its parent (:meth:`TracingObserver.incoming`).
- ``orchestration:NAME`` (server): ONE span per execution, not per replay or episode. It is
  emitted when the execution ends, starting at its ExecutionStarted and ending at its last
  episode; a failure sets the span's status to error and records the exception.
- ``activity:NAME`` (client), ``orchestration:NAME:timer`` (internal) and
  ``orchestration:CHILD`` (client, for a sub-orchestration) are children of the orchestration
  span, from scheduling to the result. A sub-orchestration's own ``orchestration:CHILD``
  span is a child of that one, in the same trace.

Span IDs of orchestrations and their tasks are derived from (trace, instance, execution, task):
every process computes the same ones without asking storage, so a child emitted by one worker
names a parent that another worker emits later.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "OpenTelemetry is not installed: pip install 'durable-py[otel]'"
    ) from exc

from durable.errors import FailureDetails
from durable.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.storage.base import NewInstance
from durable.telemetry import EpisodeView, Observer
from durable.telemetry.tracebacks import user_frames

TRACER_NAME = "durable"
_PROPAGATOR = TraceContextTextMapPropagator()
_FORCED_SPAN: contextvars.ContextVar[int | None] = contextvars.ContextVar("durable_span_id",
                                                                         default=None)
_FORCED_TRACE: contextvars.ContextVar[int | None] = contextvars.ContextVar("durable_trace_id",
                                                                          default=None)
_MAX_TRACKED = 100_000


def _hash(size: int, *parts: object) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=size).digest()
    return int.from_bytes(digest, "big") or 1


def orchestration_span_id(trace_id: int, instance_id: str, execution_id: str) -> int:
    return _hash(8, trace_id, instance_id, execution_id)


def task_span_id(trace_id: int, instance_id: str, execution_id: str, task_id: int) -> int:
    return _hash(8, trace_id, instance_id, execution_id, "task", task_id)


def parse_traceparent(text: str | None) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of a W3C ``traceparent``, or None if it is not one."""
    if not text:
        return None
    parts = text.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, flags


def format_traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class _ForcedIds:
    """Wraps a tracer's ID generator: IDs set in the context variables win (see module doc)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def generate_span_id(self) -> int:
        forced = _FORCED_SPAN.get()
        return forced if forced is not None else self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _FORCED_TRACE.get()
        return forced if forced is not None else self.inner.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        return False


@dataclass(slots=True)
class _Task:
    kind: str  # "activity" | "timer" | "sub"
    name: str
    scheduled_at: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Execution:
    tasks: dict[int, _Task] = field(default_factory=dict)
    events: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)


def _ns(timestamp: float) -> int:
    return int(timestamp * 1_000_000_000)


class TracingObserver(Observer):
    """Emits the spans of the module docstring through ``tracer_provider`` (default: global)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer(TRACER_NAME)
        generator = getattr(self.tracer, "id_generator", None)
        if generator is not None and not isinstance(generator, _ForcedIds):
            self.tracer.id_generator = _ForcedIds(generator)  # an SDK tracer: ours alone
        self._executions: dict[tuple[str, str], _Execution] = {}

    # -- client -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        """Make an HTTP request's ``traceparent`` the current context while it is handled."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if "traceparent" not in lowered:
            yield
            return
        token = otel_context.attach(_PROPAGATOR.extract(lowered))
        try:
            yield
        finally:
            otel_context.detach(token)

    @contextlib.contextmanager
    def starting(self, new: NewInstance) -> Iterator[None]:
        attributes = {
            "durabletask.type": "orchestration",
            "durabletask.task.name": new.name,
            "durabletask.task.instance_id": new.instance_id,
            "durabletask.task.execution_id": new.execution_id,
        }
        if new.version:
            attributes["durabletask.task.version"] = new.version
        with self.tracer.start_as_current_span(
            f"create_orchestration:{new.name}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            context = span.get_span_context()
            if context.is_valid:
                new.trace_context = format_traceparent(context)
            yield

    # -- worker -------------------------------------------------------------------------------

    def committed(self, episodes: Sequence[EpisodeView], seconds: float) -> None:
        for episode in episodes:
            if episode.ok and episode.started is not None:
                self._episode(episode, episode.started)

    def _trace_of(self, started: ExecutionStarted) -> tuple[int, int | None, int]:
        """(trace id, parent span id or None for a root, flags) of an execution."""
        parsed = parse_traceparent(started.trace_context)
        if parsed is None:
            return _hash(16, started.instance_id, started.execution_id), None, 1
        trace_id, client_span, flags = parsed
        if started.parent_instance_id and started.parent_execution_id is not None:
            parent = task_span_id(trace_id, started.parent_instance_id,
                                  started.parent_execution_id, started.parent_task_id or 0)
            return trace_id, parent, flags
        return trace_id, client_span, flags

    def _episode(self, episode: EpisodeView, started: ExecutionStarted) -> None:
        key = (episode.instance_id, episode.execution_id)
        execution = self._executions.get(key)
        if execution is None:
            if len(self._executions) > _MAX_TRACKED:
                self._executions.clear()  # executions that moved to other workers
            execution = self._executions[key] = _Execution()
        trace_id, parent, flags = self._trace_of(started)
        own = orchestration_span_id(trace_id, episode.instance_id, episode.execution_id)
        for event in episode.decision.history:
            self._event(event, execution, episode, trace_id, own, flags)
        if episode.decision.is_done:
            del self._executions[key]
            self._orchestration_span(episode, started, execution, trace_id, parent, own, flags)

    def _event(self, event: HistoryEvent, execution: _Execution, episode: EpisodeView,
               trace_id: int, own: int, flags: int) -> None:
        tasks = execution.tasks
        if isinstance(event, TaskScheduled):
            tasks[event.event_id] = _Task("activity", event.name, event.timestamp)
        elif isinstance(event, TimerCreated):
            tasks[event.event_id] = _Task("timer", "", event.timestamp, {"fire_at": event.fire_at})
        elif isinstance(event, SubOrchestrationInstanceCreated):
            tasks[event.event_id] = _Task("sub", event.name, event.timestamp,
                                          {"instance_id": event.instance_id})
        elif isinstance(event, (TaskCompleted, TaskFailed, SubOrchestrationInstanceCompleted,
                                SubOrchestrationInstanceFailed)):
            failure = getattr(event, "failure", None)
            self._task_span(episode, execution, event.task_scheduled_id, event.timestamp,
                            failure, trace_id, own, flags)
        elif isinstance(event, TimerFired):
            self._task_span(episode, execution, event.timer_id, event.timestamp, None,
                            trace_id, own, flags)
        elif isinstance(event, EventRaised):
            execution.events.append(("event_raised", event.timestamp, {"name": event.name}))
        elif isinstance(event, ExecutionSuspended):
            execution.events.append(("suspended", event.timestamp, {}))
        elif isinstance(event, ExecutionResumed):
            execution.events.append(("resumed", event.timestamp, {}))

    def _task_span(self, episode: EpisodeView, execution: _Execution, task_id: int, ended: float,
                   failure: FailureDetails | None, trace_id: int, own: int, flags: int) -> None:
        task = execution.tasks.pop(task_id, None)
        if task is None:  # scheduled by another worker before a hand-over: time unknown
            task = _Task("activity", f"#{task_id}", ended)
        attributes: dict[str, Any] = {
            "durabletask.task.instance_id": episode.instance_id,
            "durabletask.task.execution_id": episode.execution_id,
            "durabletask.task.task_id": task_id,
        }
        if task.kind == "activity":
            name, kind = f"activity:{task.name}", SpanKind.CLIENT
            attributes.update({"durabletask.type": "activity", "durabletask.task.name": task.name})
        elif task.kind == "timer":
            name, kind = f"orchestration:{episode.name}:timer", SpanKind.INTERNAL
            attributes.update({"durabletask.type": "timer",
                               "durabletask.fire_at": _iso(task.extra["fire_at"])})
        else:
            name, kind = f"orchestration:{task.name}", SpanKind.CLIENT
            attributes.update({"durabletask.type": "orchestration",
                               "durabletask.task.name": task.name,
                               "durabletask.task.target_instance_id": task.extra["instance_id"]})
        self._emit(name, kind, attributes, task.scheduled_at, ended, failure, trace_id,
                   parent=own, span_id=task_span_id(trace_id, episode.instance_id,
                                                    episode.execution_id, task_id), flags=flags)

    def _orchestration_span(self, episode: EpisodeView, started: ExecutionStarted,
                            execution: _Execution, trace_id: int, parent: int | None, own: int,
                            flags: int) -> None:
        decision = episode.decision
        status = decision.status.value
        attributes: dict[str, Any] = {
            "durabletask.type": "orchestration",
            "durabletask.task.name": started.name,
            "durabletask.task.instance_id": episode.instance_id,
            "durabletask.task.execution_id": episode.execution_id,
            "durabletask.task.status": status,
        }
        if started.version:
            attributes["durabletask.task.version"] = started.version
        ended = decision.history[-1].timestamp if decision.history else started.timestamp
        self._emit(f"orchestration:{started.name}", SpanKind.SERVER, attributes,
                   started.timestamp, ended, decision.failure, trace_id, parent=parent,
                   span_id=own, flags=flags, events=execution.events,
                   failed_without_details=status == "Failed")

    def _emit(self, name: str, kind: SpanKind, attributes: dict[str, Any], start: float,
              end: float, failure: FailureDetails | None, trace_id: int, *, parent: int | None,
              span_id: int, flags: int, events: Sequence[tuple[str, float, dict[str, Any]]] = (),
              failed_without_details: bool = False) -> None:
        if parent is not None:
            parent_context = trace.set_span_in_context(trace.NonRecordingSpan(SpanContext(
                trace_id, parent, is_remote=True, trace_flags=TraceFlags(flags))))
        else:
            parent_context = otel_context.Context()  # a root: no ambient span may adopt it
        span_token = _FORCED_SPAN.set(span_id)
        trace_token = _FORCED_TRACE.set(trace_id)
        try:
            span = self.tracer.start_span(name, context=parent_context, kind=kind,
                                          attributes=attributes, start_time=_ns(start))
        finally:
            _FORCED_SPAN.reset(span_token)
            _FORCED_TRACE.reset(trace_token)
        for event_name, at, event_attributes in events:
            span.add_event(event_name, event_attributes, timestamp=_ns(at))
        if failure is not None:
            span.set_status(Status(StatusCode.ERROR, f"{failure.error_type}: {failure.message}"))
            span.add_event("exception", {
                "exception.type": failure.error_type,
                "exception.message": failure.message,
                "exception.stacktrace": user_frames(failure.details) or "",
            }, timestamp=_ns(end))
        elif failed_without_details:
            span.set_status(Status(StatusCode.ERROR, "Failed"))
        span.end(end_time=_ns(max(end, start)))


def _iso(timestamp: float) -> str:
    from durable.history import to_datetime

    return to_datetime(timestamp).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = ["TracingObserver", "format_traceparent", "orchestration_span_id",
           "parse_traceparent", "task_span_id"]
