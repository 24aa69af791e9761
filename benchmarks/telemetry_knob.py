"""``DURABLE_BENCH_TELEMETRY=otel,metrics``: run a workload with telemetry on, to measure it.

OpenTelemetry gets an SDK TracerProvider with the batch processor every deployment uses and
an exporter that only counts (no collector runs here); Prometheus gets its observer. Unset,
nothing is built and the workload runs exactly as without this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


class CountingExporter:
    """A span exporter that counts what it is given and drops it."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def observer_from_env() -> Any:
    wanted = {w.strip() for w in os.environ.get("DURABLE_BENCH_TELEMETRY", "").split(",")
              if w.strip()}
    if not wanted:
        return None
    from durable.telemetry import combine

    observers: list[Any] = []
    if "otel" in wanted:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from durable.telemetry.tracing import TracingObserver

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(CountingExporter()))  # type: ignore[arg-type]
        observers.append(TracingObserver(provider))
    if "metrics" in wanted:
        from durable.telemetry.metrics import MetricsObserver

        observers.append(MetricsObserver())
    return combine(observers)
