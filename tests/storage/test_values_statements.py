"""A table of rows bound as one multi-row VALUES list (durable/storage/sqlite/values.py): every
row lands once, whatever the count (chunk edges, padding), and the padding changes nothing."""

from __future__ import annotations

import sqlite3

import pytest

from durable.storage.sqlite.values import MAX_ROWS, ValuesStatements

QUERIES = {
    "insert_rows": "WITH r(k, v) AS (VALUES (?, ?))\n"
                   "INSERT INTO t (k, v) SELECT k, v FROM r WHERE k IS NOT NULL",
    "update_rows": "WITH r(k, v) AS (VALUES (?, ?))\n"
                   "UPDATE t SET v = r.v FROM r WHERE t.k = r.k",
    "delete_rows": "WITH r(k) AS (VALUES (?)) DELETE FROM t WHERE k IN (SELECT k FROM r)",
    "not_a_table": "SELECT * FROM json_each(:ids) WHERE value IN (VALUES (?))",
}


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    return connection


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, MAX_ROWS - 1, MAX_ROWS, MAX_ROWS + 1,
                                   2 * MAX_ROWS + 3])
def test_every_row_is_written_once_and_the_padding_writes_nothing(
        conn: sqlite3.Connection, count: int) -> None:
    statements = ValuesStatements(QUERIES)
    table = [[k, f"v{k}"] for k in range(count)]
    assert statements.run(conn, "insert_rows", table) == count
    assert conn.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [tuple(r) for r in table]
    assert statements.run(conn, "update_rows", [[k, "x"] for k in range(0, count, 2)]) == len(
        range(0, count, 2))
    assert conn.execute("SELECT count(*) FROM t WHERE v = 'x'").fetchone()[0] == len(
        range(0, count, 2))
    assert statements.run(conn, "delete_rows", [[k] for k in range(count)]) == count
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_values_keep_their_types(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE u (a, b, c, d)")
    statements = ValuesStatements({"insert_u": "WITH r(a, b, c, d) AS (VALUES (?, ?, ?, ?)) "
                                               "INSERT INTO u SELECT * FROM r WHERE a IS NOT NULL"})
    text = '{"Name": "a\\"b", "x": [1.5e300, "ü"]}'
    statements.run(conn, "insert_u", [[1, 1733.25, text, None]])
    assert conn.execute("SELECT a, b, c, d, typeof(a), typeof(b) FROM u").fetchone() == (
        1, 1733.25, text, None, "integer", "real")


def test_a_row_of_the_wrong_width_is_refused(conn: sqlite3.Connection) -> None:
    statements = ValuesStatements(QUERIES)
    with pytest.raises(ValueError, match="2 values"):
        statements.run(conn, "insert_rows", [[1, "a"], [2]])
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0


def test_only_queries_with_one_row_of_placeholders_take_a_table() -> None:
    statements = ValuesStatements(QUERIES)
    assert "insert_rows" in statements and "delete_rows" in statements
    assert "not_a_table" not in statements


def test_every_sqlite_rows_query_takes_a_table() -> None:
    from durable.storage import batched, sql

    queries = sql.load_queries("durable.storage.sqlite")
    statements = ValuesStatements(queries)
    tables = {name for name in batched.SERIAL_QUERIES
              if name.endswith("_rows") or name.endswith("_in")}
    assert tables and all(name in statements for name in tables), sorted(tables)
