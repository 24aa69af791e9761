"""SQLite-specific behaviour: URLs, durability settings, schema versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from durable.errors import InvalidInputError, SchemaVersionError
from durable.storage import open_backend, sql
from durable.storage.sqlite.backend import SQLiteBackend


def test_urls_name_relative_and_absolute_files() -> None:
    relative = open_backend("sqlite:///data/app.db")
    assert isinstance(relative, SQLiteBackend) and relative.path == "data/app.db"
    absolute = open_backend("sqlite:////tmp/x/app.db?synchronous=normal")
    assert isinstance(absolute, SQLiteBackend)
    assert (absolute.path, absolute.synchronous) == ("/tmp/x/app.db", "NORMAL")
    with pytest.raises(InvalidInputError):
        open_backend("sqlite:///")
    with pytest.raises(InvalidInputError):
        open_backend("mysql://localhost/db")
    with pytest.raises(ValueError):
        open_backend("sqlite:///a.db?synchronous=sometimes")


async def test_files_are_created_with_wal_and_full_sync(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'new' / 'app.db'}")
    await backend.open()
    await backend.close()
    conn = sqlite3.connect(tmp_path / "new" / "app.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    latest = sql.load_migrations("durable.storage.sqlite")[-1][0]
    assert conn.execute("SELECT MAX(version) FROM durable_migrations").fetchone()[0] == latest


async def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    backend = open_backend(f"sqlite:///{path}")
    await backend.open()
    await backend.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO durable_migrations VALUES (99, 0)")
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        await open_backend(f"sqlite:///{path}").open()


async def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    backend = open_backend(url)
    await backend.open()
    await backend.put_setting_if_absent("key", "first")
    assert await backend.put_setting_if_absent("key", "second") == "first"
    await backend.close()
    again = open_backend(url)
    await again.open()
    assert await again.get_setting("key") == "first"
    assert await again.get_setting("missing") is None
    await again.close()


async def test_history_written_before_migration_5_is_kept_in_order(tmp_path: Path) -> None:
    """0005 moves history chunks to a rowid table: a file at schema 4 keeps every chunk."""
    from durable.history import OrchestratorStarted
    from durable.storage.sqlite.backend import _split_statements

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE durable_migrations (version INTEGER PRIMARY KEY, "
                 "applied_at REAL NOT NULL)")
    for version, script in sql.load_migrations("durable.storage.sqlite"):
        if version <= 4:
            for statement in _split_statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO durable_migrations VALUES (?, 0)", (version,))
    assert "WITHOUT ROWID" in conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'history'").fetchone()[0]
    chunks = {"b": [3, 1, 2], "a": [2, 1]}
    for instance_id, numbers in chunks.items():
        for chunk in numbers:
            event = OrchestratorStarted(timestamp=float(chunk))
            conn.execute("INSERT INTO history VALUES (?, ?, ?)",
                         (instance_id, chunk, f"[{sql.encode_event(event)}]"))
    conn.close()
    backend = SQLiteBackend(path)
    await backend.open()
    try:
        for instance_id, numbers in chunks.items():
            events = await backend.get_history(instance_id)
            assert [e.timestamp for e in events] == sorted(float(n) for n in numbers)
    finally:
        await backend.close()
    conn = sqlite3.connect(path)
    assert "WITHOUT ROWID" not in conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'history'").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):  # the key is still unique
        conn.execute("INSERT INTO history VALUES ('a', 1, '[]')")


async def test_a_patched_sqlite3_connect_never_sees_durables_connections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """APM libraries replace sqlite3.connect (and sqlite3.dbapi2.connect) with a wrapper that
    proxies every connection; durable's own must not pass through it (unpatched.py)."""
    opened: list[str] = []
    real = sqlite3.connect

    def patched(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(database))
        return real(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", patched)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", patched)
    for path in (str(tmp_path / "app.db"), ":memory:"):
        backend = SQLiteBackend(path)
        await backend.open()  # migrations, the writer's and the reader's connections
        assert await backend.put_setting_if_absent("key", "value") == "value"
        assert await backend.get_setting("key") == "value"
        with backend.connect_directly() as conn:
            assert type(conn) is sqlite3.Connection
        await backend.close()
    sqlite3.connect(":memory:").close()  # the patch itself works: the app's own use is seen
    assert opened == [":memory:"]

