"""PostgreSQL for the tests: a fresh database per test run, a fresh task hub per test.

``fresh_hub_url`` is what ``tests/conftest.py`` calls for the ``postgres`` backend case. The
first call checks that a server answers (2 s timeout) and creates a database named after this
process; it is dropped when the test run exits. Each call then names a new hub (schema) in it,
so tests never see each other's data. When no server is reachable the test is skipped, with the
address and the error, so a missing server is visible in the summary rather than silent.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

_state: dict[str, str] = {}


def _admin_connect(base_url: str, timeout: int = 2):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(base_url, autocommit=True, connect_timeout=timeout)


def _with_database(base_url: str, dbname: str, query: str = "") -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, query, ""))


def run_database_url(base_url: str) -> str:
    """The URL of this run's database (created on first use), or skip if no server answers."""
    if "url" in _state:
        return _state["url"]
    if "skip" in _state:
        pytest.skip(_state["skip"])
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _state["skip"] = "psycopg is not installed (pip install 'durable-py[postgres]')"
        pytest.skip(_state["skip"])
    try:
        conn = _admin_connect(base_url)
    except Exception as exc:
        _state["skip"] = f"no PostgreSQL server reachable at {base_url}: {exc}".strip()
        pytest.skip(_state["skip"])
    dbname = f"durable_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    atexit.register(_drop_database, base_url, dbname)
    _state["url"] = _with_database(base_url, dbname)
    return _state["url"]


def _drop_database(base_url: str, dbname: str) -> None:
    with contextlib.suppress(Exception), _admin_connect(base_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def fresh_hub_url(base_url: str, tmp_path: Path | None = None, **options: str) -> str:
    """A storage URL naming a new, empty task hub in this run's test database."""
    url = run_database_url(base_url)
    query = "&".join(f"{k}={v}" for k, v in {"hub": f"t_{uuid.uuid4().hex[:12]}",
                                             **options}.items())
    return f"{url}?{query}"
