"""Running a statement over a table of rows: the rows bound as one multi-row ``VALUES`` list.

The set-based statements (durable/storage/batched.py, grouped.py) used to take their rows as
one JSON array, which SQLite unpacked with ``json_each`` and one ``json_extract`` per column:
parsing the array again for every column, after Python had escaped the JSON texts inside it
(history chunks, message events). Measured on 6,500 inbox rows: 50 ms in SQLite plus 11 ms to
encode, against 10-14 ms as ``VALUES`` rows bound as plain parameters (SQLite 3.40).

A query written for this names its rows in a common table expression with ONE row of
placeholders, e.g. ``WITH r(id, event) AS (VALUES (?, ?)) INSERT ... SELECT ... FROM r WHERE
id IS NOT NULL``. Here that row is repeated to one of a few sizes (powers of two up to
:data:`MAX_ROWS`), so each query has a handful of statement texts that stay in the
connection's statement cache, and the last rows of a chunk are padded with NULLs, which every
such query must ignore (NULL matches no key and an INSERT filters it out).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any

MAX_ROWS = 512  # rows per statement: 512 x 9 columns stays far below SQLite's 32,766 variables
_MIN_ROWS = 8
_ROW = re.compile(r"VALUES\s*(\((?:\s*\?\s*,)*\s*\?\s*\))")


def _size(rows: int) -> int:
    size = _MIN_ROWS
    while size < rows:
        size *= 2
    return size


class ValuesStatements:
    """The expanded texts of the queries that take a table of rows (``sql.values``)."""

    def __init__(self, queries: dict[str, str]) -> None:
        self._parts: dict[str, tuple[str, str, str, int]] = {}
        for name, text in queries.items():
            match = _ROW.search(text)
            if match is not None and "json_each" not in text:
                row = match.group(1)
                self._parts[name] = (text[: match.start(1)], row, text[match.end(1):],
                                     row.count("?"))
        self._texts: dict[tuple[str, int], str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._parts

    def run(self, conn: sqlite3.Connection, name: str, table: Sequence[Sequence[Any]]) -> int:
        """Run query ``name`` over ``table``; the number of rows it changed."""
        head, row, tail, width = self._parts[name]
        changed = 0
        for start in range(0, len(table), MAX_ROWS):
            chunk = table[start:start + MAX_ROWS]
            size = _size(len(chunk))
            text = self._texts.get((name, size))
            if text is None:
                text = self._texts[(name, size)] = head + ",".join([row] * size) + tail
            params = [value for line in chunk for value in line]
            if len(params) != width * len(chunk):
                raise ValueError(f"{name}: every row needs {width} values")
            params.extend([None] * (width * (size - len(chunk))))
            before = conn.total_changes  # (rowcount says -1 for a statement opening with WITH)
            conn.execute(text, params)
            changed += conn.total_changes - before
        return changed
