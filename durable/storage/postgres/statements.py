"""How the PostgreSQL backend sends an operation's statements, and groups client writes.

See the module docstring of :mod:`durable.storage.postgres.backend` for why statements are
deferred and sent in one simple-protocol message rather than a pipeline.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from durable.errors import DurableError, InvalidInputError
from durable.storage import sql
from durable.storage.postgres import grouped

QUERIES = {
    **sql.load_queries("durable.storage.postgres"),
    **sql.load_queries("durable.storage.postgres", "grouped.sql"),
}

TxnFactory = Callable[[float], sql.Txn]


# Statements whose result the shared logic (durable/storage/sql.py) never reads. In a write
# transaction they are not sent one by one: they wait, and go out together in one message just
# before the next statement whose result is needed, or with the COMMIT. A chain step's commit
# then takes four round trips instead of eight. (Rows for "many" ops are never read either.)
_UNREAD = frozenset({
    "insert_history", "update_instance", "update_instance_keep_status", "continue_instance",
    "delete_history", "delete_inbox", "delete_tasks", "delete_unclaimed_tasks",
    "insert_message_if_running", "release_instance",
    "renew_instance_leases", "renew_task_leases", "release_all_instances", "release_all_tasks",
    "insert_entity", "update_entity", "reopen_instance",
})


# Statements with plans worth keeping: always sent on their own, as prepared statements.
_KEEP_PREPARED = frozenset({
    "lease_ready_instances", "lease_instances", "lease_tasks", "query_instances",
    "select_purgeable",
})


class _NotRead:
    """Stands in for the result of a deferred statement; using it is a bug, and says so."""

    def _refuse(self, *args: Any) -> Any:
        raise TypeError("the result of a deferred PostgreSQL statement was used; remove the "
                        "query from _UNREAD in durable/storage/postgres/statements.py")

    __bool__ = __int__ = __index__ = __getitem__ = __eq__ = __iter__ = _refuse
    __hash__ = None  # type: ignore[assignment]


NOT_READ = _NotRead()


class Run:
    """One attempt at one operation: runs its queries and notes whether it must wake workers.

    A transaction wakes other processes when it makes work visible that the committing process
    will not pick up itself: a message now due for an instance it did not just lease to itself,
    an activity result delivered through the inbox, an unclaimed task, a task due again, a lease
    given back.

    Deferred statements are bound on the client (``mogrify``) and sent as ONE simple-protocol
    message. Never a psycopg pipeline: a client frozen between the messages of a pipeline
    leaves the server waiting for its Sync with idle_in_transaction_session_timeout disarmed,
    so its row locks would outlive its leases. One message is all or nothing.
    """

    __slots__ = ("conn", "defer", "finished", "leased_here", "now", "pending", "wake")

    def __init__(self, conn: psycopg.AsyncConnection[Any], now: float, defer: bool) -> None:
        self.conn = conn
        self.now = now
        self.defer = defer
        self.wake = False
        self.finished = False  # an instance ended: tell completion waiters
        self.leased_here: set[str] = set()
        self.pending: list[str] = []

    async def execute(self, op: sql.Op) -> Any:
        text = QUERIES[op.query]
        if op.mode == "many" or (op.mode == "count" and op.query in _UNREAD):
            rows = op.params if op.mode == "many" else [op.params]
            if rows:
                self._note(op.query, rows, None)
                if self.defer or len(rows) > 1:
                    binder = psycopg.AsyncClientCursor(self.conn)
                    self.pending.extend(binder.mogrify(text, row) for row in rows)
                    if not self.defer:
                        await self.flush()
                else:
                    await self.conn.execute(text, rows[0])
            return None if op.mode == "many" else NOT_READ
        cursor: Any
        if op.plan_with_values:
            # Bound on the client: the server sees the values as literals and plans this run
            # with them (psycopg never prepares a client-bound statement).
            await self.flush()
            cursor = psycopg.AsyncClientCursor(self.conn)
            await cursor.execute(text, op.params)
        elif self.pending and op.query not in _KEEP_PREPARED:
            # Ride along with the deferred statements (the transaction's BEGIN at least): one
            # round trip instead of two. The result is the message's last result set.
            cursor = psycopg.AsyncClientCursor(self.conn)
            await self.flush(cursor.mogrify(text, op.params), cursor=cursor)
            while cursor.nextset():
                pass
        else:
            await self.flush()
            cursor = await self.conn.execute(text, op.params)
        result: Any
        if op.mode == "one":
            result = await cursor.fetchone()
        elif op.mode == "id":  # the query says RETURNING id
            row = await cursor.fetchone()
            result = row[0] if row is not None else None
        elif op.mode == "all":
            result = await cursor.fetchall()
        else:
            result = cursor.rowcount
        self._note(op.query, [op.params], result)
        return result

    async def flush(self, *tail: str, cursor: Any = None) -> None:
        """Send the deferred statements (and ``tail``, e.g. COMMIT) in one message."""
        statements = [*self.pending, *tail]
        self.pending = []
        if statements:
            cursor = cursor or psycopg.AsyncClientCursor(self.conn)
            await cursor.execute(";\n".join(statements).encode())

    def _note(self, query: str, batch: Sequence[Mapping[str, Any]], result: Any) -> None:
        if query in ("update_instance", "update_instance_keep_status") and not self.finished:
            self.finished = any(p["completed_at"] is not None for p in batch)
        if query in ("insert_instance", "reset_instance", "update_instance",
                     "update_instance_keep_status", "continue_instance", "update_entity"):
            for params in batch:
                if params.get("lease_owner") is not None:
                    self.leased_here.add(params["instance_id"])
                else:
                    self.leased_here.discard(params["instance_id"])
        elif query == "insert_message":
            for params in batch:
                if params["visible_at"] <= self.now and (
                    params["instance_id"] not in self.leased_here
                ):
                    self.wake = True
        elif query in ("send_messages", "signal_entities"):
            self.wake = self.wake or any(v <= self.now for p in batch for v in p["visible_ats"])
        elif query == "start_instances":
            self.wake = self.wake or any(o is None for p in batch for o in p["lease_owners"])
        elif query == "insert_message_if_running":
            self.wake = self.wake or result is None or bool(result)
        elif query == "insert_task":
            self.wake = self.wake or any(p["lease_owner"] is None for p in batch)
        elif query == "abandon_task":
            self.wake = self.wake or any(p["visible_at"] <= self.now for p in batch)
        elif query in ("release_instance", "release_all_instances", "release_all_tasks"):
            self.wake = self.wake or result is None or bool(result)


def _each(entries: Sequence[_Entry], now: float) -> sql.Txn:
    """Run a group in one transaction, each operation succeeding or raising on its own.

    Starts, events and entity signals go through the set-based plans of
    :mod:`durable.storage.postgres.grouped` (a constant number of statements for the whole
    group); any other operation runs as its own generator. This relies on the rule of
    durable/storage/sql.py that an operation raises its typed errors (InstanceAlreadyExistsError,
    InstanceNotFoundError, ...) before it writes anything, so one caller's refusal cannot leave
    half an operation in the others' transaction.
    """
    outcomes: list[tuple[bool, Any] | None] = [None] * len(entries)
    planned = [index for index, entry in enumerate(entries) if entry.plan is not None]
    if planned:
        plans = [entries[index].plan for index in planned]
        results = yield from grouped.run_group(plans, now)  # type: ignore[arg-type]
        for index, result in zip(planned, results, strict=True):
            outcomes[index] = result
    for index, entry in enumerate(entries):
        if entry.plan is not None:
            continue
        try:
            value = yield from entry.factory(now)
        except DurableError as exc:
            outcomes[index] = (False, exc)
        else:
            outcomes[index] = (True, value)
    return outcomes


@dataclass(slots=True)
class _Entry:
    key: str
    factory: TxnFactory  # the operation alone (also the fallback of a planned one)
    future: asyncio.Future[Any]
    plan: grouped.Plan | None = None


class GroupedWrites:
    """Client writes issued together (a burst of starts or events) share one transaction.

    Each transaction costs round trips and a WAL flush whatever it holds; a thousand concurrent
    ``start_new`` calls would otherwise be a thousand of them. While one group is being
    committed the next one gathers, so a lone call goes out at once and a burst goes out in a
    few transactions. Starts, events and entity signals of a group are each one statement
    (durable/storage/postgres/grouped.py), so a group of any size costs a few round trips.
    Operations are applied in instance-ID order, the order every batch here takes row locks in.

    One caller's bad value must not fail the others: an operation refuses a value it cannot
    store before it writes (durable.storage.checks), and should the server refuse one anyway
    (:class:`InvalidInputError` for the whole transaction, which then wrote nothing), the group
    is run again one operation per transaction, so only the culprit gets the error.
    """

    MAX_GROUP = 1000

    def __init__(self, run: Callable[[TxnFactory], Any]) -> None:
        self._run = run
        self._queue: list[_Entry] = []
        self._flushing = False

    async def submit(self, key: str, factory: TxnFactory) -> Any:
        """Run ``factory``'s operation in the next group."""
        return await self._enqueue(_Entry(key, factory, self._future()))

    async def submit_plan(self, key: str, plan: grouped.Plan) -> Any:
        """Run ``plan`` set-based with the other plans of the next group."""
        factory = functools.partial(grouped.one_by_one, plan)
        return await self._enqueue(_Entry(key, factory, self._future(), plan))

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _enqueue(self, entry: _Entry) -> Any:
        self._queue.append(entry)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await entry.future

    async def _flush(self) -> None:
        try:
            while self._queue:
                group = sorted(self._queue[: self.MAX_GROUP], key=lambda entry: entry.key)
                del self._queue[: self.MAX_GROUP]
                try:
                    outcomes = await self._run(functools.partial(_each, group))
                except InvalidInputError as exc:
                    if len(group) == 1:
                        outcomes = [(False, exc)]
                    else:
                        outcomes = [await self._alone(entry.factory) for entry in group]
                except BaseException as exc:
                    for entry in group:
                        if not entry.future.done():
                            entry.future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for entry, (ok, value) in zip(group, outcomes, strict=True):
                    if entry.future.done():
                        continue
                    if ok:
                        entry.future.set_result(value)
                    else:
                        entry.future.set_exception(value)
        finally:
            self._flushing = False

    async def _alone(self, factory: TxnFactory) -> tuple[bool, Any]:
        try:
            return True, await self._run(factory)
        except Exception as exc:
            return False, exc
