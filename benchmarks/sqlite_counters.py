"""Count what the storage backend does in this process, without changing durable itself.

``LeaseCounter`` wraps a backend's ``lease_orchestrations`` (calls, work items and inbox
messages returned: every message returned is decoded from JSON, so messages leased per
operation applied is a direct measure of wasted work). ``StatementCounter`` wraps the SQLite
backend's statement executor and its write batches: statements by query name, the time the
database threads spend in each, write transactions and the storage calls they carry. W9 uses
both (``{"count_statements": true}`` for the second): see ``benchmarks/profiling.py W9
--statements``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any


class LeaseCounter:
    """Wraps one backend object's ``lease_orchestrations`` (any backend)."""

    def __init__(self) -> None:
        self.calls = 0
        self.targeted = 0  # with instance_ids (after a hint), not a poll
        self.items = 0
        self.messages = 0

    def install(self, backend: Any) -> LeaseCounter:
        original = backend.lease_orchestrations
        counter = self

        async def lease(*args: Any, **kwargs: Any) -> Any:
            items = await original(*args, **kwargs)
            counter.calls += 1
            counter.targeted += kwargs.get("instance_ids") is not None
            counter.items += len(items)
            counter.messages += sum(len(item.messages) for item in items)
            return items

        backend.lease_orchestrations = lease
        return self

    def summary(self) -> dict[str, int]:
        return {"lease_calls": self.calls, "targeted_leases": self.targeted,
                "items_leased": self.items, "messages_leased": self.messages}


class StatementCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()  # executemany rows
        self.seconds: Counter[str] = Counter()
        self.write_batches = 0
        self.write_jobs = 0
        self.write_seconds = 0.0
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def install(self) -> StatementCounter:
        from durable.storage.sqlite import backend

        make_executor = backend._executor
        run_writes = backend._Worker._run_writes
        counter = self

        def counting_executor(conn: Any) -> Callable[[Any], Any]:
            execute = make_executor(conn)

            def run(op: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return execute(op)
                finally:
                    spent = time.perf_counter() - t0
                    with counter._lock:
                        counter.calls[op.query] += 1
                        counter.seconds[op.query] += spent
                        if op.mode == "many":
                            counter.rows[op.query] += len(op.params)

            return run

        def counting_writes(self: Any, conn: Any, execute: Any, batch: list[Any]) -> None:
            t0 = time.perf_counter()
            try:
                run_writes(self, conn, execute, batch)
            finally:
                with counter._lock:
                    counter.write_batches += 1
                    counter.write_jobs += len(batch)
                    counter.write_seconds += time.perf_counter() - t0

        backend._executor = counting_executor  # type: ignore[assignment]
        backend._Worker._run_writes = counting_writes  # type: ignore[method-assign]

        def undo() -> None:
            backend._executor = make_executor  # type: ignore[assignment]
            backend._Worker._run_writes = run_writes  # type: ignore[method-assign]

        self._undo.append(undo)
        return self

    def summary(self, per: int) -> dict[str, Any]:
        """Totals, and statements per ``per`` units of work (operations, orchestrations)."""
        with self._lock:
            by_query = sorted(self.calls, key=lambda q: -self.seconds[q])
            return {
                "per": per,
                "write_transactions": self.write_batches,
                "write_jobs": self.write_jobs,  # storage calls (one SAVEPOINT each)
                "write_thread_s": round(self.write_seconds, 3),
                "statements": {
                    q: {"calls": self.calls[q], "per_unit": round(self.calls[q] / per, 3),
                        **({"rows": self.rows[q]} if self.rows[q] else {}),
                        "ms": round(1000 * self.seconds[q], 1)}
                    for q in by_query
                },
            }
