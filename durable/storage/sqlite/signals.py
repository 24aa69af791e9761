"""Entity signals issued together go to the SQLite writer as one operation.

A burst of ``signal_entity`` calls (10,000 at once, say) was 10,000 writer jobs: each its own
savepoint, two statements, a future resolved across threads. The writer already commits them
in a few transactions, so what cost was the per-job overhead: about 110 µs a signal, which
capped a client at ~9,000 signals/s. Here the signals that arrive while the writer is busy
join one open batch, and the batch is ONE job of two ``executemany`` statements (each entity's
row once, then every message in order): it closes the moment the writer starts on it, so a
lone signal still goes at once and a burst waits for at most one commit.

Answers stay per call. Each signal is checked before it joins a batch, so a bad value is
refused to its caller alone (:class:`~durable.errors.InvalidInputError`). Should SQLite refuse
the batch anyway, nothing of it was written (the job's savepoint is rolled back) and each of
its signals is sent again on its own, so only the culprit gets the error (in that rare case a
signal can land after one sent later by another caller). A storage error reaches every caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from durable.errors import InvalidInputError
from durable.storage import sql
from durable.storage.base import Message

TxnFactory = Callable[[float], sql.Txn]

MAX_BATCH = 2000  # signals per job: bounds one transaction's size and a lease's first read


class _Batch:
    __slots__ = ("signals", "taken", "waiters")

    def __init__(self) -> None:
        self.signals: list[tuple[Message, str]] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.taken = False  # the writer thread has started on it: join the next one


class SignalBatches:
    """Groups ``send_entity_message`` calls into writer jobs (see the module docstring)."""

    def __init__(self, write: Callable[[TxnFactory], Awaitable[Any]]) -> None:
        self._write = write
        self._lock = threading.Lock()  # the writer thread closes a batch the loop appends to
        self._open: _Batch | None = None

    async def send(self, message: Message) -> None:
        event = sql.checked_signal(message)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            batch = self._open
            fresh = batch is None or batch.taken or len(batch.signals) >= MAX_BATCH
            if fresh:
                batch = self._open = _Batch()
            assert batch is not None
            batch.signals.append((message, event))
            batch.waiters.append(waiter)
        if fresh:
            self._submit(batch)
        try:
            await waiter
        except InvalidInputError:
            # SQLite refused the batch (nothing of it was written): send this one alone.
            await self._write(lambda now: sql.send_entity_message(message, now))

    def _submit(self, batch: _Batch) -> None:
        job = asyncio.ensure_future(self._write(lambda now: self._run(batch, now)))
        job.add_done_callback(lambda done: self._answer(batch, done))

    def _run(self, batch: _Batch, now: float) -> sql.Txn:
        # On the writer thread, when the job starts: from now on new signals form a new batch.
        signals = self._close(batch)
        yield from sql.send_entity_messages(signals, now)

    def _close(self, batch: _Batch) -> list[tuple[Message, str]]:
        with self._lock:
            batch.taken = True
            if self._open is batch:
                self._open = None
            return list(batch.signals)

    def _answer(self, batch: _Batch, done: asyncio.Future[Any]) -> None:
        self._close(batch)  # a job that failed before it started must not take more signals
        error = None if done.cancelled() else done.exception()
        for waiter in batch.waiters:
            if waiter.done():
                continue  # its caller was cancelled; the signal is sent (or not) all the same
            if done.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(None)
