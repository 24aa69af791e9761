"""Run by Python at start-up in the ``durable run`` processes of tests/ops/test_apm_patches.py
(their PYTHONPATH starts here), as ``opentelemetry-instrument`` and ``ddtrace-run`` run theirs:
an APM patches ``sqlite3`` for the whole process before durable is even imported.

``$APM_UNDER_TEST`` names the APM:

- ``opentelemetry``: ``SQLite3Instrumentor().instrument()``; every span is exported the moment
  it ends (a ``SimpleSpanProcessor``, on the thread that ended it). No collector anywhere.
- ``ddtrace``: ``import ddtrace.auto``, the agent address a port nobody listens on.

Every finished span, and every call of the patched ``sqlite3.connect`` (a spy laid over the
APM's own wrapper), is appended to ``$APM_RECORD`` as one JSON line naming the thread it
happened on: the test reads from it whose statements the APM saw.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

_RECORD = os.environ.get("APM_RECORD", "")
_LOCK = threading.Lock()


def record(**fields: Any) -> None:
    fields["thread"] = threading.current_thread().name
    with _LOCK, open(_RECORD, "a") as out:
        out.write(json.dumps(fields, default=str) + "\n")


def _opentelemetry() -> None:
    from opentelemetry import trace
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Recorder(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            for span in spans:
                assert isinstance(span, ReadableSpan)
                attributes = span.attributes or {}
                statement = attributes.get("db.statement") or attributes.get("db.query.text")
                record(span=span.name, system=attributes.get("db.system"),
                       statement=statement)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Recorder()))
    trace.set_tracer_provider(provider)
    SQLite3Instrumentor().instrument()


def _ddtrace() -> None:
    import ddtrace.auto  # noqa: F401
    from ddtrace.trace import TraceFilter, tracer

    class Recorder(TraceFilter):
        def process_trace(self, trace: Any) -> Any:
            for span in trace:
                record(span=span.name, system=span.get_tag("db.system"),
                       statement=span.resource)
            return trace

    tracer.configure(trace_processors=[Recorder()])


def _spy() -> None:
    patched = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> Any:
        record(connect=os.fspath(database))
        return patched(database, *args, **kwargs)

    sqlite3.connect = sqlite3.dbapi2.connect = connect  # type: ignore[assignment]


_APM = os.environ.get("APM_UNDER_TEST")
if _APM == "opentelemetry":
    _opentelemetry()
elif _APM == "ddtrace":
    _ddtrace()
if _APM:
    _spy()
