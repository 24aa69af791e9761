"""Building the observer ``durable run`` and ``durable worker`` hand to their Host.

Console logging is always on (at the chosen verbosity); OpenTelemetry and Prometheus only when
asked for, and then only if their extras are installed (a clear error otherwise).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from durable.errors import InvalidInputError
from durable.telemetry import Observer, combine
from durable.telemetry.console import ConsoleObserver, Verbosity

if TYPE_CHECKING:
    from durable.telemetry.metrics import MetricsObserver
    from durable.telemetry.tracing import TracingObserver

log = logging.getLogger("durable.telemetry")


@dataclass(slots=True)
class Telemetry:
    """What was built: the combined observer and, if metrics are on, the metrics observer."""

    observer: Observer | None
    metrics: MetricsObserver | None = None
    tracing: TracingObserver | None = None

    def close(self) -> None:
        if self.observer is not None:
            self.observer.close()


def configure_tracer_provider() -> None:
    """Install an SDK TracerProvider exporting over OTLP/HTTP, unless the app set one.

    The exporter reads the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, default
    http://localhost:4318; ``OTEL_SERVICE_NAME``, default "durable").
    """
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if type(current).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return  # the application configured OpenTelemetry itself
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise InvalidInputError(
            "--otel needs the OpenTelemetry SDK and OTLP exporter: pip install 'durable-py[otel]'"
        ) from exc
    service = os.environ.get("OTEL_SERVICE_NAME", "durable")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("OpenTelemetry: exporting spans over OTLP/HTTP to %s",
             os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"))


def build(verbosity: Verbosity, *, otel: bool = False, metrics: bool = False) -> Telemetry:
    observers: list[Observer | None] = [ConsoleObserver(verbosity)]
    tracing: TracingObserver | None = None
    metrics_observer: MetricsObserver | None = None
    if otel:
        configure_tracer_provider()
        try:
            from durable.telemetry.tracing import TracingObserver
        except ImportError as exc:
            raise InvalidInputError(str(exc)) from exc
        tracing = TracingObserver()
        observers.append(tracing)
    if metrics:
        try:
            from durable.telemetry.metrics import MetricsObserver
        except ImportError as exc:
            raise InvalidInputError(str(exc)) from exc
        metrics_observer = MetricsObserver()
        observers.append(metrics_observer)
    return Telemetry(combine(observers), metrics_observer, tracing)


def close_tracer_provider() -> None:
    """Flush spans still buffered (at shutdown)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
