"""Durable's own SQLite connections, out of reach of APM libraries that patch ``sqlite3``.

APM libraries trace an application's SQLite use by replacing the *module attribute*
``sqlite3.connect`` (and ``sqlite3.dbapi2.connect``) with a wrapper that returns a proxy around
each new connection: OpenTelemetry's ``SQLite3Instrumentor().instrument()`` (its proxy traces
``cursor().execute``) and ``ddtrace`` (``import ddtrace.auto``, ``ddtrace-run``,
``patch(sqlite3=True)``; its proxy traces ``execute`` on the connection too) both do. Opened
through that wrapper, durable's own statements (migrations, every commit of the writer thread,
the ``PRAGMA data_version`` probe every 50 ms) become spans of the app's service, recorded on
durable's writer thread. Where ddtrace runs its writer synchronously (it does when it believes
it runs in Azure Functions, a GCP function, AWS Lambda with its extension or a Ray job), each
span is sent before the statement returns: about 3 s per statement with no agent listening, so
start-up took minutes and requests hung behind the writer.

So durable opens its connections by calling the connection class of the C module ``_sqlite3``
directly (``sqlite3.Connection`` is that class). The patches replace functions of the public
modules, never this class, and a C type cannot be changed in place, so a connection made here
is a plain ``sqlite3.Connection`` whether the app patched ``sqlite3`` before or after durable
was imported. The app's own ``sqlite3.connect`` stays patched and traced, as its user asked.
"""

from __future__ import annotations

import sqlite3
from _sqlite3 import Connection as _CONNECTION
from typing import Any


def connect(database: str, **options: Any) -> sqlite3.Connection:
    """``sqlite3.connect(database, **options)`` without passing through any patch of it (the
    class raises the same ``sqlite3.connect`` audit events itself)."""
    return _CONNECTION(database, **options)
