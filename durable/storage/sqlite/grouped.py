"""Client starts and entity signals issued together go to the SQLite writer as one job.

A burst of ``start_new`` or ``signal_entity`` calls (a thousand at once, say) was a thousand
writer jobs, each its own savepoint and statements and a future resolved across threads. The
writer already commits them in a few transactions, so what cost was the per-job work: each
statement releases the GIL while SQLite steps and has to win it back from a busy event loop
(see :mod:`durable.storage.batched`). Signals cost about 110 µs each that way, which capped a
client at ~9,000 signals/s, and the 1,000 starts of W9 (c) were 4,000 statements. Here the
calls that arrive while the writer is busy join one open batch, and the batch is ONE job: it
closes the moment the writer starts on it, so a lone call still goes at once and a burst waits
for at most one commit.

- Signals: two ``executemany`` statements (each entity's row once, then every message in order,
  so messages from one sender keep their order: ``sql.send_entity_messages``).
- Starts (:func:`start_instances`): one read of which IDs exist, then every new instance and its
  ExecutionStarted as two statements (``sql.values``), with inbox ids handed out above the
  inbox's AUTOINCREMENT sequence. That read decides as ``INSERT ... ON CONFLICT`` would only
  because SQLite's writes are serial (the transaction holds the write lock). A start whose ID
  exists, or repeats in the batch, is decided after those rows, one by one in batch order, by
  ``sql.create_instance``: :class:`InstanceAlreadyExistsError` for a running instance (raised
  before it writes), a replacement for a finished one.

Answers stay per call. Each call is checked before it joins a batch, so a bad value is refused
to its caller alone (:class:`~durable.errors.InvalidInputError`). Should SQLite refuse the batch
anyway, nothing of it was written (the job's savepoint is rolled back) and each of its calls is
run again on its own, so only the culprit gets the error (in that rare case a signal can land
after one sent later by another caller). A storage error reaches every caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from durable.errors import DurableError, InvalidInputError
from durable.history import encode_event
from durable.status import OverridableStates
from durable.storage import checks, sql
from durable.storage.base import Message, NewInstance, OrchestrationWorkItem

TxnFactory = Callable[[float], sql.Txn]
Outcome = tuple[bool, Any]  # (True, the call's value) or (False, the DurableError to raise)

MAX_BATCH = 2000  # calls per job: bounds one transaction's size and a lease's first read

# The queries of this module that PostgreSQL (which groups client writes its own way) lacks.
SQLITE_QUERIES = frozenset({"insert_instances_rows"})


@dataclass(slots=True)
class Start:
    new: NewInstance
    policy: OverridableStates
    lease_owner: str | None
    lease_seconds: float
    event: str  # the ExecutionStarted as stored text

    def alone(self, now: float) -> sql.Txn:
        return sql.create_instance(self.new, self.policy, self.lease_owner, self.lease_seconds,
                                   now)


@dataclass(slots=True)
class Signal:
    message: Message
    event: str  # the message's event as stored text (``sql.checked_signal``)

    def alone(self, now: float) -> sql.Txn:
        return sql.send_entity_message(self.message, now)


Call = Start | Signal
_AGAIN = (False, None)  # the batch was refused as a whole: run the call on its own


class _Batch:
    __slots__ = ("calls", "taken", "waiters")

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.waiters: list[asyncio.Future[Outcome]] = []
        self.taken = False  # the writer thread has started on it: join the next one


class ClientBatches:
    """Groups client starts and entity signals into writer jobs (see the module docstring)."""

    def __init__(self, write: Callable[[TxnFactory], Awaitable[Any]]) -> None:
        self._write = write
        self._lock = threading.Lock()  # the writer thread closes a batch the loop appends to
        self._open: _Batch | None = None

    async def start(self, new: NewInstance, policy: OverridableStates,
                    lease_owner: str | None, lease_seconds: float
                    ) -> OrchestrationWorkItem | None:
        problem = checks.new_instance_problem(new)
        if problem is not None:
            raise InvalidInputError(problem)
        event = encode_event(new.started_event())
        result: OrchestrationWorkItem | None = await self._call(
            Start(new, policy, lease_owner, lease_seconds, event))
        return result

    async def signal(self, message: Message) -> None:
        await self._call(Signal(message, sql.checked_signal(message)))

    async def _call(self, call: Call) -> Any:
        waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        with self._lock:
            batch = self._open
            fresh = batch is None or batch.taken or len(batch.calls) >= MAX_BATCH
            if fresh:
                batch = self._open = _Batch()
            assert batch is not None
            batch.calls.append(call)
            batch.waiters.append(waiter)
        if fresh:
            self._submit(batch)
        outcome = await waiter
        if outcome is _AGAIN:
            return await self._write(call.alone)
        ok, value = outcome
        if not ok:
            raise value
        return value

    def _submit(self, batch: _Batch) -> None:
        job = asyncio.ensure_future(self._write(lambda now: self._run(batch, now)))
        job.add_done_callback(lambda done: self._answer(batch, done))

    def _run(self, batch: _Batch, now: float) -> sql.Txn:
        # On the writer thread, when the job starts: from now on new calls form a new batch.
        calls = self._close(batch)
        outcomes: list[Outcome] = [(True, None)] * len(calls)
        starts = [(index, call) for index, call in enumerate(calls) if isinstance(call, Start)]
        if starts:
            answers = yield from start_instances([call for _, call in starts], now)
            for (index, _), answer in zip(starts, answers, strict=True):
                outcomes[index] = answer
        signals = [(call.message, call.event) for call in calls if isinstance(call, Signal)]
        if signals:
            yield from sql.send_entity_messages(signals, now)
        return outcomes

    def _close(self, batch: _Batch) -> list[Call]:
        with self._lock:
            batch.taken = True
            if self._open is batch:
                self._open = None
            return list(batch.calls)

    def _answer(self, batch: _Batch, done: asyncio.Future[Any]) -> None:
        self._close(batch)  # a job that failed before it started must not take more calls
        error = None if done.cancelled() else done.exception()
        outcomes = done.result() if not done.cancelled() and error is None else None
        for position, waiter in enumerate(batch.waiters):
            if waiter.done():
                continue  # its caller was cancelled; the call is made (or not) all the same
            if done.cancelled():
                waiter.cancel()
            elif isinstance(error, InvalidInputError):
                waiter.set_result(_AGAIN)  # SQLite refused the batch: nothing was written
            elif error is not None:
                waiter.set_exception(error)
            else:
                assert outcomes is not None
                waiter.set_result(outcomes[position])


def start_instances(starts: Sequence[Start], now: float) -> sql.Txn:
    """Every start of the batch, checked beforehand (``checks.new_instance_problem``), in the
    current transaction of SQLite's serial writer; one outcome per start, each the answer
    ``sql.create_instance`` gives when the starts run one by one in this order."""
    ids = sorted({start.new.instance_id for start in starts})
    found = yield sql.rows("lock_instances", instance_ids=ids)
    taken = {row[0] for row in found}
    fresh: list[int] = []
    later: list[int] = []
    for index, start in enumerate(starts):
        instance_id = start.new.instance_id
        if instance_id in taken:
            later.append(index)
        else:
            fresh.append(index)
            taken.add(instance_id)
    outcomes: list[Outcome] = [(True, None)] * len(starts)
    if fresh:
        sequence = yield sql.one("inbox_sequence")
        first_id = int(sequence[0]) + 1
        instances: list[list[Any]] = []
        messages: list[list[Any]] = []
        for offset, index in enumerate(fresh):
            start, new = starts[index], starts[index].new
            expires = now + start.lease_seconds if start.lease_owner else None
            instances.append([new.instance_id, new.name, new.execution_id, new.created_at,
                              new.input, new.version, new.parent_instance_id,
                              start.lease_owner, expires])
            messages.append([first_id + offset, new.instance_id, new.execution_id, now,
                             start.event])
            outcomes[index] = (True, sql.started_work_item(new, start.lease_owner, 1,
                                                           first_id + offset))
        yield sql.values("insert_instances_rows", instances)
        yield sql.values("insert_messages_rows", messages)
    for index in later:  # after the new rows: a repeated ID meets the first start's row
        try:
            outcomes[index] = (True, (yield from starts[index].alone(now)))
        except DurableError as exc:  # raised before it wrote (InstanceAlreadyExistsError)
            outcomes[index] = (False, exc)
    return outcomes
