"""Run ``durable`` (the CLI) while counting psycopg round trips; write the counts at exit.

    python -m benchmarks.count_statements OUT.json worker benchmarks.apps:app --storage URL

Used by W8 with ``{"count_statements": true}`` to report statements per orchestration. It
wraps ``AsyncConnection.execute``, ``AsyncCursor.execute`` and ``AsyncCursor.executemany``
(one call = one message to the server, i.e. one round trip; a ``bytes`` query is a batch of
client-bound statements joined by ``;\n``, counted per statement too; ``executemany`` also
counts its parameter rows) and transaction blocks; the engine itself is not modified.
"""

from __future__ import annotations

import atexit
import json
import re
import sys
from collections import Counter
from typing import Any

import psycopg

CALLS: Counter[str] = Counter()
NAMES: dict[str, str] = {}


def _name(query: Any) -> str:
    """The ``-- name:`` of a query from the backend's queries.sql, else its first words."""
    text = query if isinstance(query, str) else str(getattr(query, "_obj", query))
    if not NAMES:
        from durable.storage import sql

        NAMES.update({body: name for name, body in
                      sql.load_queries("durable.storage.postgres").items()})
    if text in NAMES:
        return NAMES[text]
    for body, name in NAMES.items():  # a client-bound copy: same text up to the 1st parameter
        head = body.split("%(", 1)[0].strip()
        if len(head) > 12 and text.strip().startswith(head):
            return name
    words = re.sub(r"\s+", " ", text.strip()).split(" ")
    return " ".join(words[:3])[:40]


def _install() -> None:
    conn_execute = psycopg.AsyncConnection.execute
    cur_execute = psycopg.AsyncCursor.execute
    cur_many = psycopg.AsyncCursor.executemany
    transaction = psycopg.AsyncConnection.transaction

    def note(query: Any) -> None:
        CALLS["round_trips"] += 1
        if isinstance(query, bytes):
            # Several client-bound statements sent as one simple-protocol message.
            parts = query.split(b";\n")
            CALLS["statements"] += len(parts)
            CALLS["batched_messages"] += 1
            CALLS["batched:" + str(len(parts))] += 1
            for part in parts:
                CALLS["in_batch:" + _name(part.decode(errors="replace"))] += 1
        else:
            CALLS["statements"] += 1
            CALLS["stmt:" + _name(query)] += 1

    async def c_execute(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        note(query)
        return await conn_execute(self, query, *args, **kw)

    async def k_execute(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        note(query)
        return await cur_execute(self, query, *args, **kw)

    async def k_many(self: Any, query: Any, params_seq: Any, *args: Any, **kw: Any) -> Any:
        rows = list(params_seq)
        CALLS["round_trips"] += 1
        CALLS["statements"] += len(rows)
        CALLS["executemany_calls"] += 1
        CALLS["executemany_rows"] += len(rows)
        CALLS["many:" + _name(query)] += len(rows)
        return await cur_many(self, query, rows, *args, **kw)

    def k_transaction(self: Any, *args: Any, **kw: Any) -> Any:
        CALLS["transactions"] += 1
        return transaction(self, *args, **kw)

    psycopg.AsyncConnection.execute = c_execute  # type: ignore[method-assign]
    psycopg.AsyncCursor.execute = k_execute  # type: ignore[method-assign]
    psycopg.AsyncCursor.executemany = k_many  # type: ignore[method-assign]
    psycopg.AsyncConnection.transaction = k_transaction  # type: ignore[method-assign]


def _dump(path: str) -> None:
    with open(path, "w") as f:
        json.dump(dict(CALLS), f, indent=1)


def main() -> None:
    out = sys.argv[1]
    _install()
    atexit.register(_dump, out)
    from durable.cli import main as cli_main

    sys.argv = ["durable", *sys.argv[2:]]
    cli_main()


if __name__ == "__main__":
    main()
