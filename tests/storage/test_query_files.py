"""Both SQL backends implement the same queries and the same migrations, by name."""

from __future__ import annotations

import re
from pathlib import Path

from durable.storage import sql

BACKENDS = ("durable.storage.sqlite", "durable.storage.postgres")


def test_every_backend_defines_the_same_query_names() -> None:
    sqlite, postgres = (set(sql.load_queries(package)) for package in BACKENDS)
    assert sqlite == postgres, {
        "only in SQLite": sorted(sqlite - postgres),
        "only in PostgreSQL": sorted(postgres - sqlite),
    }


def test_every_query_the_shared_logic_names_exists() -> None:
    source = Path(sql.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'\b(?:one|rows|count|many)\(\s*"(\w+)"', source))
    for group in re.findall(r"for table in \(([^)]*)\)", source):
        named |= set(re.findall(r'"(\w+)"', group))
    assert {"lock_instance", "insert_history", "delete_tasks"} <= named
    for package in BACKENDS:
        missing = named - set(sql.load_queries(package))
        assert not missing, (package, sorted(missing))


def test_postgres_queries_use_named_parameters_only() -> None:
    for name, text in sql.load_queries("durable.storage.postgres").items():
        assert not re.search(r"(?<![\w:]):\w", text.replace("::", "")), name
        assert "?" not in text, name


def test_migrations_are_numbered_alike() -> None:
    sqlite, postgres = ([v for v, _ in sql.load_migrations(p)] for p in BACKENDS)
    assert sqlite == postgres == list(range(1, len(sqlite) + 1))
