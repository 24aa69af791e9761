"""Both SQL backends implement the same queries and the same migrations, by name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from durable.storage import batched, sql
from durable.storage.sqlite import grouped as sqlite_grouped

BACKENDS = ("durable.storage.sqlite", "durable.storage.postgres")


def test_every_backend_defines_the_same_query_names() -> None:
    """Except the set-based commit's and client batches', which only SQLite (serial writes)
    runs, and the prefix list's count and key-range plan, which only SQLite (no statistics)
    needs."""
    sqlite, postgres = (set(sql.load_queries(package)) for package in BACKENDS)
    only_sqlite = (batched.SERIAL_QUERIES | sqlite_grouped.SQLITE_QUERIES
                   | sql.PREFIX_COUNT_QUERIES)
    assert sqlite >= only_sqlite
    assert not only_sqlite & postgres
    sqlite -= only_sqlite
    assert sqlite == postgres, {
        "only in SQLite": sorted(sqlite - postgres),
        "only in PostgreSQL": sorted(postgres - sqlite),
    }


def test_every_query_the_shared_logic_names_exists() -> None:
    source = Path(sql.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'\b(?:one|rows|count|many|values)\(\s*"(\w+)"', source))
    for group in re.findall(r"for table in \(([^)]*)\)", source):
        named |= set(re.findall(r'"(\w+)"', group))
    assert {"lock_instance", "insert_history", "delete_tasks"} <= named
    assert "count_prefix_range" in named
    for package in BACKENDS:
        missing = named - set(sql.load_queries(package))
        if package.endswith("postgres"):  # PostgreSQL plans prefix lists itself
            missing -= sql.PREFIX_COUNT_QUERIES
        assert not missing, (package, sorted(missing))


def test_only_backends_that_count_prefix_matches_lack_the_prefix_plan() -> None:
    from durable.storage.sqlite.backend import SQLiteBackend

    postgres = pytest.importorskip("durable.storage.postgres.backend")
    assert SQLiteBackend.counts_prefix_matches
    assert not postgres.PostgresBackend.counts_prefix_matches
    assert set(sql.load_queries("durable.storage.sqlite")) >= sql.PREFIX_COUNT_QUERIES


def test_the_set_based_commit_names_only_queries_it_declares() -> None:
    source = Path(batched.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'\b(?:one|rows|count|many|values)\(\s*"(\w+)"', source))
    shared = set(sql.load_queries("durable.storage.postgres"))
    assert named - shared == batched.SERIAL_QUERIES
    assert named <= set(sql.load_queries("durable.storage.sqlite"))


def test_sqlite_client_batches_name_only_queries_sqlite_declares() -> None:
    source = Path(sqlite_grouped.__file__).read_text(encoding="utf-8")
    named = set(re.findall(r'\b(?:one|rows|count|many|values)\(\s*"(\w+)"', source))
    shared = set(sql.load_queries("durable.storage.postgres"))
    assert named >= sqlite_grouped.SQLITE_QUERIES
    assert named - shared <= batched.SERIAL_QUERIES | sqlite_grouped.SQLITE_QUERIES
    assert named <= set(sql.load_queries("durable.storage.sqlite"))


def test_postgres_queries_use_named_parameters_only() -> None:
    for name, text in sql.load_queries("durable.storage.postgres").items():
        assert not re.search(r"(?<![\w:]):\w", text.replace("::", "")), name
        assert "?" not in text, name


def test_migrations_are_numbered_alike() -> None:
    sqlite, postgres = ([v for v, _ in sql.load_migrations(p)] for p in BACKENDS)
    assert sqlite == postgres
    assert sqlite == sorted(set(sqlite)) and sqlite[0] == 1
    # Numbers are handed out per branch (0002 and 0003 are developed side by side), so a gap
    # can exist on a branch; on main they are 1..N.


def test_the_shared_logic_never_reads_what_postgres_defers() -> None:
    """The PostgreSQL driver sends the queries in ``_UNREAD`` later, batched, and answers with a
    stand-in; that is only sound while sql.py yields them as bare statements."""
    statements = pytest.importorskip("durable.storage.postgres.statements")
    tree = ast.parse(Path(sql.__file__).read_text(encoding="utf-8"))
    bare = {id(stmt.value) for stmt in ast.walk(tree) if isinstance(stmt, ast.Expr)}
    deferred = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Yield) and isinstance(node.value, ast.Call) and node.value.args
        and isinstance(node.value.args[0], ast.Constant)
        and node.value.args[0].value in statements._UNREAD
    ]
    assert deferred, "expected sql.py to run some of the deferred queries"
    read = [ast.unparse(node) for node in deferred if id(node) not in bare]
    assert not read, f"sql.py reads the result of deferred queries: {read}"
