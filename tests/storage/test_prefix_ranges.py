"""Instance-ID prefixes as key ranges (durable/storage/keys.py), on every backend.

The list by prefix must return exactly what ``str.startswith`` says, in the same order and
pages as before, for prefixes that a naive range or a LIKE pattern gets wrong: wildcards
(``%``, ``_``, ``\\``), case, multi-byte characters, the characters around the surrogate gap,
the highest code point (whose range has no upper bound), and entity IDs ``@name@key``. Both
of SQLite's plans (the key range and the creation-order walk) are run, and the plans are
checked with EXPLAIN: a prefix that matches few instances is a primary-key range on both
backends, whatever the database's default collation.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage import open_backend, sql
from durable.storage.base import Backend, EntityQuery, InstanceQuery, Message
from durable.storage.keys import prefix_upper_bound
from tests.storage.test_backend_contract import entity_event, new_instance
from tests.storage.test_operator_queries import _finish

MAX = "\U0010ffff"

# Instance IDs (storage takes any text without NUL; the client's ID rules are not the point).
IDS = [
    "a", "A", "ab", "aB", "Ab", "a%b", "a%", "a_b", "a_", "aXb", "a\\b", "a\\", "%", "%%", "_",
    "\\x", "é-1", "é-2", "e-1", "É-1", "日本-1", "日本語", "日", "\U0001f600-x", "\U0001f600",
    "\ud7ff-x", "\ue000-x", "\uffff", "\uffff-x", "\U00010000", "~",
    "x" + MAX, "x" + MAX + "y", "x" + MAX + MAX, "y", MAX, MAX + "a", MAX + MAX, "z" * 200,
]
ENTITIES = ["@counter@a", "@counter@%", "@counter@日本", "@a%b@k", "@count@x", "@日本@k"]
PREFIXES = [
    "", "a", "A", "a%", "a_", "a%b", "%", "_", "\\", "a\\", "é", "e", "É", "日本", "日",
    "\U0001f600", "\ud7ff", "\ue000", "\uffff", "~", "x", "x" + MAX, "x" + MAX + MAX, MAX,
    MAX + MAX, MAX + MAX + MAX, "@", "@counter", "@a%", "zzz", "z" * 199,
]


def test_the_upper_bound_is_the_next_string_after_the_prefix() -> None:
    assert prefix_upper_bound("abc") == "abd"
    assert prefix_upper_bound("a%") == "a&" and prefix_upper_bound("_") == "`"
    assert prefix_upper_bound("@") == "A"
    assert prefix_upper_bound("é") == "ê"
    assert prefix_upper_bound("a" + MAX) == "b"
    assert prefix_upper_bound("a" + MAX + MAX) == "b"
    assert prefix_upper_bound("\ud7ff") == "\ue000"  # over the surrogates, which no ID holds
    assert prefix_upper_bound("\uffff") == "\U00010000"
    for unbounded in ("", MAX, MAX * 3):
        assert prefix_upper_bound(unbounded) is None


def test_the_range_is_exactly_the_strings_that_start_with_the_prefix() -> None:
    """Python orders ``str`` by code point, as both stores order instance IDs."""
    edges = ["", "a", "b", "\x7f", "\x80", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff",
             "\U00010000", MAX]
    words = {x + y + z for x in edges for y in edges for z in edges}
    for prefix in [p for p in words if p] + PREFIXES:
        upper = prefix_upper_bound(prefix)
        for word in words:
            inside = word >= prefix and (upper is None or word < upper)
            assert inside == word.startswith(prefix), (prefix, upper, word)
        if upper is not None:
            assert not any(0xD800 <= ord(c) <= 0xDFFF for c in upper)


@pytest.fixture(params=["walk", "mixed", "range"])
def threshold(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """SQLite lists a prefix from its key range up to sql.PREFIX_RANGE_ROWS matches and walks
    creation order beyond: run everything with each plan, and with both mixed."""
    value = {"walk": -1, "mixed": 3, "range": sql.PREFIX_RANGE_ROWS}[request.param]
    monkeypatch.setattr(sql, "PREFIX_RANGE_ROWS", value)
    return value


async def _store(backend: Backend) -> dict[str, tuple[float, Status]]:
    """The IDs above (some sharing a creation time), every third Completed; and entities."""
    base = time.time() - 1000
    stored: dict[str, tuple[float, Status]] = {}
    for index, instance_id in enumerate(IDS):
        created = base + index // 2  # pairs share a creation time: paging must order by ID
        if index % 3 == 0:
            await _finish(backend, instance_id, "done", created)
            stored[instance_id] = (created, Status.Completed)
        else:
            await backend.create_instance(new_instance(instance_id, created_at=created))
            stored[instance_id] = (created, Status.Pending)
    for entity_id in ENTITIES:
        await backend.send_entity_message(Message(entity_id, entity_event(1)))
    return stored


async def _pages(backend: Backend, query: InstanceQuery) -> list[str]:
    seen: list[str] = []
    for _ in range(100):
        page = await backend.query_instances(query)
        assert len(page.instances) <= query.page_size
        seen.extend(r.instance_id for r in page.instances)
        if page.continuation_token is None:
            return seen
        query.continuation_token = page.continuation_token
    raise AssertionError("the pages never end")


async def test_a_prefix_lists_exactly_the_ids_that_start_with_it(
    backend: Backend, threshold: int
) -> None:
    stored = await _store(backend)
    by_time = sorted(stored, key=lambda i: (stored[i][0], i))
    filters: list[tuple[dict[str, Any], Callable[[str], bool]]] = [
        ({}, lambda i: True),
        ({"statuses": [Status.Completed]}, lambda i: stored[i][1] is Status.Completed),
        ({"statuses": [Status.Completed, Status.Pending]}, lambda i: True),
        ({"name": "done"}, lambda i: stored[i][1] is Status.Completed),
        ({"statuses": [Status.Pending], "name": "orch"}, lambda i: stored[i][1] is Status.Pending),
    ]
    for prefix in PREFIXES:
        for extra, keep in filters:
            expected = [i for i in by_time if i.startswith(prefix) and keep(i)]
            for newest_first in (False, True):
                query = InstanceQuery(instance_id_prefix=prefix, page_size=4,
                                      newest_first=newest_first, **extra)
                got = await _pages(backend, query)
                want = expected[::-1] if newest_first else expected
                assert got == want, (prefix, extra, newest_first)


async def test_a_prefix_combines_with_the_time_range(backend: Backend, threshold: int) -> None:
    stored = await _store(backend)
    times = sorted({created for created, _ in stored.values()})
    low, high = times[3], times[12]
    for prefix in ("a", "x" + MAX, MAX, "日"):
        expected = sorted((i for i, (created, _) in stored.items()
                           if i.startswith(prefix) and low <= created <= high),
                          key=lambda i: (stored[i][0], i))
        query = InstanceQuery(instance_id_prefix=prefix, created_from=low, created_to=high,
                              page_size=2)
        assert await _pages(backend, query) == expected, prefix


async def test_a_prefix_of_entity_names_lists_exactly_those_entities(backend: Backend) -> None:
    await _store(backend)
    for name_prefix in (None, "", "counter", "count", "a%", "a", "日", "c", "zzz", MAX, "%"):
        expected = sorted(e for e in ENTITIES if e.startswith("@" + (name_prefix or "")))
        seen: list[str] = []
        token = None
        while True:
            page = await backend.query_entities(EntityQuery(
                name_prefix=name_prefix, page_size=2, continuation_token=token))
            seen.extend(r.instance_id for r in page.instances)
            token = page.continuation_token
            if token is None:
                break
        assert seen == expected, name_prefix


# -- plans --------------------------------------------------------------------------------------


def _chosen(query: InstanceQuery, counts: bool, matches: int) -> sql.Op:
    """The list statement sql.query_instances runs, the count answered with ``matches``."""
    ops: list[sql.Op] = []

    def execute(op: sql.Op) -> Any:
        ops.append(op)
        return (matches,) if op.query == "count_prefix_range" else []

    sql.run_sync(execute, sql.query_instances(query, counts))
    return ops[-1]


def _sqlite_plan(path: Path, op: sql.Op) -> str:
    text = sql.load_queries("durable.storage.sqlite")[op.query]
    params = {k: json.dumps(v) if isinstance(v, list) else v for k, v in op.params.items()}
    with sqlite3.connect(path) as conn:
        return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + text, params))


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "plans.db"
    store = open_backend(f"sqlite:///{path}")
    await store.open()
    await store.close()
    yield path


@pytest.mark.parametrize("statuses", [None, [Status.Completed], [Status.Failed, Status.Pending]])
@pytest.mark.parametrize("name", [None, "orch"])
@pytest.mark.parametrize("newest_first", [False, True])
def test_sqlite_reads_a_narrow_prefix_from_the_primary_key(
    sqlite_store: Path, statuses: list[Status] | None, name: str | None, newest_first: bool
) -> None:
    query = InstanceQuery(instance_id_prefix="order-17", statuses=statuses, name=name,
                          newest_first=newest_first)
    narrow = _chosen(query, True, sql.PREFIX_RANGE_ROWS)
    plan = _sqlite_plan(sqlite_store, narrow)
    assert narrow.query.startswith("query_instances_prefix")
    assert "SEARCH instances USING PRIMARY KEY (instance_id>? AND instance_id<?)" in plan, plan
    assert "instances_by_" not in plan, plan
    # A prefix with more matches walks creation order, the prefix a filter of the walk.
    broad = _chosen(query, True, sql.PREFIX_RANGE_ROWS + 1)
    plan = _sqlite_plan(sqlite_store, broad)
    assert broad.query == sql.query_variant(query)
    assert "PRIMARY KEY" not in plan and "instances_by_" in plan, plan
    # Also without an upper bound (the highest code point).
    unbounded = _chosen(InstanceQuery(instance_id_prefix=MAX), True, 0)
    assert unbounded.params["upper"] is None
    plan = _sqlite_plan(sqlite_store, unbounded)
    assert "PRIMARY KEY (instance_id>? AND instance_id<?)" in plan, plan


def test_sqlite_lists_entities_from_their_key_range(sqlite_store: Path) -> None:
    ops: list[sql.Op] = []

    def execute(op: sql.Op) -> Any:
        ops.append(op)
        return []

    sql.run_sync(execute, sql.query_entities(EntityQuery(name_prefix="counter")))
    assert ops[0].params["upper"] == "@countes"
    plan = _sqlite_plan(sqlite_store, ops[0])
    assert "SEARCH instances USING PRIMARY KEY (instance_id>? AND instance_id<?)" in plan, plan


def test_postgres_binds_prefix_lists_on_the_client() -> None:
    """Not counted, and planned with the values every time (sql.Op.plan_with_values)."""
    op = _chosen(InstanceQuery(instance_id_prefix="order-17"), False, 0)
    assert op.query == "query_instances" and op.plan_with_values
    assert not _chosen(InstanceQuery(), False, 0).plan_with_values


# -- PostgreSQL: plans with statistics, and a database whose default collation is not C -------


def _pg_base() -> str:
    import os

    from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV

    return os.environ.get(PG_URL_ENV, PG_DEFAULT_URL)


@pytest.fixture(scope="module")
def icu_database() -> Iterator[str]:
    """A database whose default collation is ICU en-US (where 'Ab' sorts between 'a' and
    'b'): a comparison that used it instead of the column's "C" would list 'Ab' under 'a'."""
    psycopg = pytest.importorskip("psycopg")
    from tests.pg import _admin_connect, _drop_database, _with_database, run_database_url

    base = _pg_base()
    run_database_url(base)  # skips, saying why, when no server answers
    name = f"durable_test_icu_{uuid.uuid4().hex[:8]}"
    with _admin_connect(base) as conn:
        try:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
                         "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
        except psycopg.Error as exc:
            pytest.skip(f"this PostgreSQL cannot create an ICU database: {exc}")
    try:
        yield _with_database(base, name)
    finally:
        _drop_database(base, name)


async def test_postgres_prefixes_compare_bytes_under_an_icu_default_collation(
    icu_database: str,
) -> None:
    store = open_backend(f"{icu_database}?hub=icu_{uuid.uuid4().hex[:8]}")
    await store.open()
    try:
        stored = await _store(store)
        by_time = sorted(stored, key=lambda i: (stored[i][0], i))
        for prefix in PREFIXES:
            for newest_first in (False, True):
                expected = [i for i in by_time if i.startswith(prefix)]
                query = InstanceQuery(instance_id_prefix=prefix, page_size=3,
                                      newest_first=newest_first)
                want = expected[::-1] if newest_first else expected
                assert await _pages(store, query) == want, prefix
        everything = await _pages(store, InstanceQuery(page_size=5))
        ties = [i for i in everything if stored[i][0] == stored["A"][0]]
        assert ties == sorted(ties)  # code-point order within a creation time: 'A' < 'a'
    finally:
        await store.close()


def _pg_plan(conninfo: str, hub: str, op: sql.Op) -> str:
    import psycopg

    text = sql.load_queries("durable.storage.postgres")[op.query]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{hub}"')
        bound = psycopg.ClientCursor(conn).mogrify(text, op.params)
        rows = conn.execute("EXPLAIN (COSTS OFF) " + bound).fetchall()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("database", ["run", "icu"])
async def test_postgres_plans_a_narrow_prefix_as_a_primary_key_range(
    database: str, request: pytest.FixtureRequest
) -> None:
    """20,000 instances, analyzed: a prefix that matches ten is read from the primary key's
    range (no walk of the creation-order indexes); one that matches all of them walks."""
    pytest.importorskip("psycopg")
    from durable.storage.postgres.settings import PostgresSettings
    from tests.pg import fresh_hub_url

    if database == "icu":
        url = f"{request.getfixturevalue('icu_database')}?hub=plan_{uuid.uuid4().hex[:8]}"
    else:
        url = fresh_hub_url(_pg_base())
    store = open_backend(url)
    await store.open()
    await store.close()
    settings = PostgresSettings(url)
    import psycopg

    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{settings.hub}"')
        conn.execute(
            """INSERT INTO instances (instance_id, name, execution_id, status, created_at,
                updated_at, revision)
            SELECT 'order-' || lpad(i::text, 6, '0'), 'orch_' || (i % 10), md5(i::text),
                'Completed', 1700000000 + i * 0.001, 1700000000 + i * 0.001, 1
            FROM generate_series(0, 19999) AS i""")
        conn.execute("ANALYZE instances")
    for extra in ({}, {"statuses": [Status.Completed]}, {"name": "orch_3"},
                  {"statuses": [Status.Completed], "name": "orch_3"}):
        for newest_first in (False, True):
            narrow = _chosen(InstanceQuery(instance_id_prefix="order-00001", page_size=50,
                                           newest_first=newest_first, **extra), False, 0)
            plan = _pg_plan(settings.conninfo, settings.hub, narrow)
            assert "instances_pkey" in plan, plan
            assert "instance_id >= 'order-00001'::text" in plan, plan
            assert "instance_id < 'order-00002'::text" in plan, plan
            broad = _chosen(InstanceQuery(instance_id_prefix="order-", page_size=50,
                                          newest_first=newest_first, **extra), False, 0)
            plan = _pg_plan(settings.conninfo, settings.hub, broad)
            assert "instances_by_" in plan and "instances_pkey" not in plan, plan
    unbounded = _chosen(InstanceQuery(instance_id_prefix=MAX), False, 0)
    plan = _pg_plan(settings.conninfo, settings.hub, unbounded)
    assert "instances_pkey" in plan and "instance_id >= " in plan, plan
    ops: list[sql.Op] = []
    sql.run_sync(lambda op: ops.append(op) or [],
                 sql.query_entities(EntityQuery(name_prefix="counter")))
    plan = _pg_plan(settings.conninfo, settings.hub, ops[0])
    assert "instances_pkey" in plan and "instance_id < '@countes'::text" in plan, plan
