"""Storage backends, opened by URL.

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (query option
  ``synchronous=full|normal``, default full)
- ``postgresql://user@host:port/dbname`` (query option ``hub=<task hub>``)
- ``memory://``: SQLite in memory, for tests (gone when the backend closes; one process)

The environment variable ``DURABLE_STORAGE`` supplies the URL when none is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from durable.errors import InvalidInputError
from durable.storage.base import Backend

ENV_VAR = "DURABLE_STORAGE"
DEFAULT_SQLITE_FILE = "durable.db"


def default_url(base_dir: str | Path | None = None) -> str:
    """``DURABLE_STORAGE`` if set, else a SQLite file in ``base_dir`` (or the current dir)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return configured
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    return "sqlite:///" + str((folder / DEFAULT_SQLITE_FILE).resolve())


def open_backend(url: str | Backend | None = None) -> Backend:
    """Create (not yet open) the backend named by ``url``; a Backend passes through."""
    if url is None:
        url = default_url()
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme == "memory":
        from durable.storage.sqlite.backend import SQLiteBackend

        return SQLiteBackend(":memory:")
    if parts.scheme == "sqlite":
        from durable.storage.sqlite.backend import SQLiteBackend

        # sqlite:///rel.db has path "/rel.db" (relative); sqlite:////abs.db has "//abs.db".
        raw = parts.path
        if not raw or raw == "/":
            raise InvalidInputError(f"The SQLite URL {url!r} names no file.")
        path = raw[1:]
        return SQLiteBackend(path, synchronous=options.get("synchronous", "FULL"))
    if parts.scheme in ("postgres", "postgresql"):
        try:
            from durable.storage.postgres.backend import PostgresBackend
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InvalidInputError(
                "PostgreSQL storage needs psycopg: pip install 'durable-py[postgres]'"
            ) from exc
        return PostgresBackend(url)
    raise InvalidInputError(
        f"Unknown storage URL {url!r}: use sqlite:///file.db, postgresql://... or memory://"
    )


__all__ = ["ENV_VAR", "Backend", "default_url", "open_backend"]
