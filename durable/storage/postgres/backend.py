"""The PostgreSQL backend: psycopg 3 (async), a connection pool, LISTEN/NOTIFY, one schema per hub.

Every storage operation is one of the sans-I/O generators of :mod:`durable.storage.sql`; this
module only runs their queries (``queries.sql``) on a pooled connection:

- **Transactions.** Each write operation is one transaction on one pooled connection, at READ
  COMMITTED. The shared logic locks the instance row (``lock_instance ... FOR UPDATE``) before
  it checks a fence or a conflict, and leasing uses ``FOR UPDATE SKIP LOCKED``, so workers never
  wait for each other and a worker whose lease moved on cannot commit. Batches are applied in
  instance-ID order so two transactions always take row locks in the same order; a deadlock or
  serialization failure that still happens is retried with the whole transaction, which wrote
  nothing.
- **Waking workers.** A transaction that makes work visible to *other* processes (a message,
  an unclaimed task, a released lease) ends with ``pg_notify`` on the hub's channel, so it is
  delivered exactly when the work commits. :meth:`PostgresBackend.wait_for_work` listens on a
  dedicated connection; polling remains the fallback when that connection is down. Work a
  worker leases to itself (its own activities, a start through a co-located client) notifies
  nobody, because the global lock PostgreSQL takes for NOTIFY at commit serializes committers.
- **Task hubs.** Each hub is a PostgreSQL schema (URL option ``hub=``, default ``durable``):
  the same SQL runs with ``search_path`` set, and hubs in one database never see each other.
- **Migrations** (``migrations/NNNN_*.sql``) are tracked per schema and applied by
  :meth:`PostgresBackend.open` inside one transaction holding an advisory lock, so workers that
  start together do not race.
- **Round trips.** Statements whose results the shared logic never reads are held back and
  sent, bound on the client, in one simple-protocol message with the next statement that needs
  a result, or with the COMMIT (see ``statements.Run``). Never a psycopg pipeline: see below.
- **Stalled clients.** The server ends a session idle inside a transaction for longer than
  ``idle_txn_timeout`` (5 s), so a frozen worker cannot keep row locks (and hide instances from
  SKIP LOCKED) long after its leases expired. That timeout is disarmed while the server waits
  for the rest of a pipeline, which is why every batch here is a single message.
- **Outages.** Connection errors become :class:`~durable.errors.StorageError` with the server's
  address in the message. A pooled connection the server has closed (``pg_terminate_backend``,
  a restart) is noticed before it is used, without a round trip: an idle connection with
  something to read has been told it is finished. It is discarded and the next one is taken, so
  the request runs on a live connection. A transaction that still fails before its COMMIT was
  sent wrote nothing and is retried on fresh connections; the pool reconnects in the background
  within about a second of the server being back (``connections.Backoff``). A failure *during*
  COMMIT has an unknown outcome and is never retried; an *error answered* to the message that
  carried the COMMIT means it did not commit (``connections.diagnose``).
- **Failover.** A server that refuses a write as read-only (``25006``: a standby, or a primary
  demoted by a failover) or says it is going away (``57P01``-``57P03``) makes the pool drop
  all its connections (those in use as they come back) and the transaction run again on a
  fresh one, which a multi-host URL with ``target_session_attrs=read-write`` or a moved address
  takes to the new primary; a server still read-only after three attempts is
  :class:`~durable.errors.StorageReadOnlyError`. Connections are also replaced after
  ``max_lifetime``, and carry TCP keepalives and ``tcp_user_timeout`` (``settings.py``), so a
  host that vanished without a reset is given up in seconds, not TCP's 15 minutes.
- **Refused values** (a NUL in text, an encoding error) become
  :class:`~durable.errors.InvalidInputError`; a full disk (``53100``), a read-only server and a
  damaged table become the matching :class:`~durable.errors.StorageError` subclasses.

URL: ``postgresql://user:password@host:port/dbname?hub=name&pool_max=10``. Our options (``hub``,
``pool_min``, ``pool_max``, ``pool_timeout``, ``idle_txn_timeout``, ``max_lifetime``;
docs/scale-out.md) are removed before connecting; every other query option goes to libpq
unchanged, over defaults for ``connect_timeout``, ``application_name`` and TCP keepalives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import time
import weakref
from collections.abc import Awaitable
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg_pool import PoolTimeout

from durable.clock import SYSTEM_CLOCK, Clock
from durable.errors import (
    DurableError,
    InvalidInputError,
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
)
from durable.status import OverridableStates
from durable.storage import sql
from durable.storage.base import (
    DEFAULT_LEASE_SECONDS,
    Message,
    NewInstance,
    OrchestrationWorkItem,
)
from durable.storage.operations import SQLOperations
from durable.storage.postgres import grouped
from durable.storage.postgres.connections import (
    Backoff,
    ReconnectingPool,
    Verdict,
    diagnose,
    is_connection_lost,
)
from durable.storage.postgres.settings import DEFAULT_CONNECT_TIMEOUT, PostgresSettings
from durable.storage.postgres.statements import GroupedWrites, Run, TxnFactory

log = logging.getLogger("durable.storage.postgres")

_MIGRATIONS = sql.load_migrations("durable.storage.postgres")

_MAX_ATTEMPTS = 4
_CONNECTION_ATTEMPTS = 3  # attempts on fresh connections after a connection error
_IDLE = psycopg.pq.TransactionStatus.IDLE
_LOG_EVERY = 10.0  # seconds between log lines about the same trouble

class PostgresBackend(SQLOperations):
    """Storage in a PostgreSQL database, shared by any number of worker processes."""

    migrations = _MIGRATIONS

    def __init__(self, url: str) -> None:
        self.settings = PostgresSettings(url)
        self.clock: Clock = SYSTEM_CLOCK  # durable.Host passes its own
        self._pool: ReconnectingPool | None = None
        self._listener: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        # When each pooled connection was made, and when the pool was last drained: a failed
        # connection made before that drain is being replaced already.
        self._born: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._drained_at = float("-inf")
        self._drain_logged = ("", float("-inf"))
        # Completion waiters (wait_for_completions): their own LISTEN connection, started on
        # first use, so a worker that never waits does not hold one.
        self._done_listener: asyncio.Task[None] | None = None
        self._done: asyncio.Event | None = None
        self._client_writes = GroupedWrites(self._run)

    def __repr__(self) -> str:
        return f"PostgresBackend({self.settings.display_url!r}, hub={self.settings.hub!r})"

    @property
    def url(self) -> str:
        """The storage URL, with any password masked."""
        return self.settings.display_url

    @property
    def hub(self) -> str:
        return self.settings.hub

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Apply migrations, then open the pool. Raises StorageError if unreachable."""
        if self._pool is not None:
            return
        await self.migrate()
        schema = pg_sql.Identifier(self.settings.hub)

        # A worker that stalls (SIGSTOP, a frozen VM, a dead machine) inside a transaction
        # would keep its row locks, and SKIP LOCKED would hide those instances from everyone
        # until TCP noticed, possibly hours later. Our transactions last milliseconds, so the
        # server may end any session idle inside one for longer than ``idle_txn_timeout``.
        idle_ms = int(self.settings.idle_txn_timeout * 1000)

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(pg_sql.SQL("SET search_path TO {}").format(schema))
            await conn.execute(
                pg_sql.SQL("SET idle_in_transaction_session_timeout = {}").format(idle_ms)
            )
            self._born[conn] = time.monotonic()

        pool = ReconnectingPool(
            self.settings.conninfo,
            min_size=self.settings.pool_min,
            max_size=self.settings.pool_max,
            kwargs={"autocommit": True},
            configure=configure,
            timeout=self.settings.pool_timeout,
            # Keep trying to reconnect for as long as the process lives (at most about once a
            # second per lost connection: connections.Backoff): an outage must not leave a
            # worker with an empty pool it has given up on.
            reconnect_timeout=365 * 24 * 3600.0,
            # Replaced after a while whatever happens: no pool stays pinned to one server.
            max_lifetime=self.settings.max_lifetime,
            name=f"durable-{self.settings.hub}",
            open=False,
        )
        try:
            await pool.open(wait=self.settings.pool_min > 0, timeout=DEFAULT_CONNECT_TIMEOUT * 2)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise StorageError(
                f"Cannot reach PostgreSQL at {self.settings.where}: {exc}"
            ) from exc
        self._pool = pool

    async def migrate(self) -> int:
        """Create the hub's schema or bring it up to date; return the schema version."""
        hub = self.settings.hub
        schema = pg_sql.Identifier(hub)
        try:
            async with await psycopg.AsyncConnection.connect(
                self.settings.conninfo, autocommit=True
            ) as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    [f"durable-migrate:{hub}"],
                )
                await conn.execute(
                    pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema)
                )
                await conn.execute(pg_sql.SQL("SET LOCAL search_path TO {}").format(schema))
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS durable_migrations "
                    "(version integer PRIMARY KEY, applied_at double precision NOT NULL)"
                )
                cursor = await conn.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM durable_migrations"
                )
                row = await cursor.fetchone()
                current = int(row[0]) if row else 0
                for version, script in sql.pending_migrations(current, _MIGRATIONS):
                    await conn.execute(script.encode())  # several statements: no parameters
                    await conn.execute(
                        "INSERT INTO durable_migrations VALUES (%s, %s)",
                        [version, self.clock.now()],
                    )
                    log.info("applied PostgreSQL migration %04d to hub %s at %s",
                             version, hub, self.settings.where)
                    current = version
                return current
        except psycopg.Error as exc:
            if is_connection_lost(exc, None):
                raise StorageError(
                    f"Cannot reach PostgreSQL at {self.settings.where}: {_one_line(exc)}"
                ) from exc
            typed = _typed_error(exc, self.settings.where)
            if isinstance(typed, StorageError) and type(typed) is not StorageError:
                raise typed from exc  # a full disk, a read-only server: say so
            raise StorageError(
                f"Cannot migrate hub {hub} at {self.settings.where}: {_one_line(exc)}"
            ) from exc

    async def close(self) -> None:
        for listener in (self._listener, self._done_listener):
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
        self._listener = self._done_listener = None
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    # -- plumbing -----------------------------------------------------------------------------

    async def _run(self, factory: TxnFactory, *, write: bool = True) -> Any:
        """Run one operation as one transaction (or, for reads, one autocommit statement)."""
        pool = self._pool
        if pool is None:
            raise StorageError("The PostgreSQL backend is not open.")
        attempt = 0
        stale = 0
        while True:
            attempt += 1
            try:
                async with pool.connection() as conn:
                    if _closed_by_server(conn) and stale <= self.settings.pool_max:
                        # Told to go away while idle in the pool: throw it away, take the
                        # next. Not an attempt: nothing was sent.
                        stale += 1
                        attempt -= 1
                        await conn.close()
                        continue
                    committing = False
                    try:
                        run = Run(conn, self.clock.now(), defer=write)
                        if not write:
                            return await sql.run_async(run.execute, factory(run.now))
                        run.pending.append("BEGIN")
                        try:
                            value = await sql.run_async(run.execute, factory(run.now))
                            if run.pending == ["BEGIN"] and not run.wake:
                                return value  # nothing was written (or even sent)
                            tail = [self._notify_statement] if run.wake else []
                            if run.finished:
                                tail.append(self._notify_done_statement)
                            committing = True
                            await run.flush(*tail, "COMMIT")
                        except BaseException:
                            await _rollback(conn)
                            raise
                        return value
                    except psycopg.Error as exc:
                        # Judged here, while the connection is still ours to look at.
                        verdict = diagnose(exc, conn, committing)
                        if verdict in (Verdict.RECONNECT, Verdict.READ_ONLY, Verdict.UNKNOWN):
                            await self._drain(pool, conn, exc)
                        raise _Failed(verdict, exc) from exc
            except DurableError:
                raise
            except UnicodeEncodeError as exc:
                raise InvalidInputError(f"PostgreSQL cannot store a value: {exc}") from exc
            except PoolTimeout as exc:
                raise StorageError(
                    f"No PostgreSQL connection to {self.settings.where} within "
                    f"{self.settings.pool_timeout:g}s (server unreachable, or all "
                    f"{self.settings.pool_max} pooled connections busy)"
                ) from exc
            except _Failed as failed:
                self._retry_or_raise(failed, attempt)
                if failed.verdict is Verdict.RETRY:
                    await asyncio.sleep(0.01 * attempt)
            except psycopg.Error as exc:  # not from a transaction (the pool itself)
                if not is_connection_lost(exc, None) or attempt >= _CONNECTION_ATTEMPTS:
                    raise _typed_error(exc, self.settings.where) from exc

    def _retry_or_raise(self, failed: _Failed, attempt: int) -> None:
        """Return if the transaction may run again (it wrote nothing), else raise."""
        exc = failed.cause
        verdict = failed.verdict
        if verdict is Verdict.RETRY and attempt < _MAX_ATTEMPTS:
            return
        if verdict in (Verdict.RECONNECT, Verdict.READ_ONLY) and attempt < _CONNECTION_ATTEMPTS:
            # Nothing was committed. Fresh connections may reach a live server (after a
            # restart) or the new primary (after a failover): run it again on one.
            return
        if verdict is Verdict.UNKNOWN:
            raise StorageError(
                f"The connection to PostgreSQL at {self.settings.where} failed during "
                f"COMMIT; the outcome is unknown: {_one_line(exc)}"
            ) from exc
        if verdict is Verdict.RECONNECT:
            raise StorageError(
                f"PostgreSQL at {self.settings.where} is unreachable: {_one_line(exc)}"
            ) from exc
        if verdict is Verdict.RETRY:
            raise StorageError(f"PostgreSQL: {_one_line(exc)}") from exc
        raise _typed_error(exc, self.settings.where) from exc

    @property
    def _notify_statement(self) -> str:
        return f"SELECT pg_notify('{self.settings.channel}', '')"  # channel: [a-z0-9_] only

    @property
    def _notify_done_statement(self) -> str:
        return f"SELECT pg_notify('{self.settings.done_channel}', '')"

    async def _drain(self, pool: ReconnectingPool, conn: Any, exc: psycopg.Error) -> None:
        """Replace every pooled connection, unless ``conn`` is older than the last drain.

        A failure on one connection rarely stays alone: after a restart all of them are dead,
        and after a failover all of them reach a server that no longer takes writes. The
        connections in the pool are closed at once, the ones in use when they come back
        (psycopg_pool's ``drain``), and new ones are made as needed.
        """
        if self._born.get(conn, float("inf")) < self._drained_at:
            return  # already being replaced
        self._drained_at = now = time.monotonic()
        what = ("read-only (a standby, or a demoted primary)"
                if isinstance(exc, pg_errors.ReadOnlySqlTransaction)
                else f"lost connections ({_one_line(exc)})")
        if what != self._drain_logged[0] or now - self._drain_logged[1] >= _LOG_EVERY:
            self._drain_logged = (what, now)  # while it lasts, a line every few seconds
            log.warning("PostgreSQL at %s: %s; reconnecting", self.settings.where, what)
        with contextlib.suppress(Exception):
            await pool.drain()

    # -- how the shared operations run (durable.storage.operations) ---------------------------

    def _read(self, factory: TxnFactory) -> Awaitable[Any]:
        return self._run(factory, write=False)

    def _write(self, factory: TxnFactory) -> Awaitable[Any]:
        return self._run(factory)

    def _client_write(self, instance_id: str, factory: TxnFactory) -> Awaitable[Any]:
        # Concurrent client writes share one transaction (statements.GroupedWrites).
        return self._client_writes.submit(instance_id, factory)

    # -- client writes: one statement per kind for a whole group (grouped.py) ----------------

    async def create_instance(
        self,
        new: NewInstance,
        policy: OverridableStates = OverridableStates.NonRunningStates,
        *,
        lease_owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> OrchestrationWorkItem | None:
        return await self._client_writes.submit_plan(
            new.instance_id, grouped.Start(new, policy, lease_owner, lease_seconds)
        )

    async def send_message(self, message: Message) -> None:
        await self._client_writes.submit_plan(message.instance_id, grouped.Send(message))

    async def send_entity_message(self, message: Message) -> None:
        await self._client_writes.submit_plan(message.instance_id, grouped.Signal(message))

    async def wait_for_completions(self, timeout: float) -> None:
        """Return on a completion notification for this hub (or one since the last call),
        else after ``timeout``. The first call starts the listening connection."""
        if self._pool is None:
            await asyncio.sleep(timeout)
            return
        if self._done is None:
            self._done = asyncio.Event()
        if self._done_listener is None:
            self._done_listener = asyncio.get_running_loop().create_task(
                self._listen(self.settings.done_channel, self._done),
                name=f"durable-listen-done-{self.settings.hub}",
            )
        await _wait_event(self._done, timeout)


    # -- LISTEN/NOTIFY ------------------------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        """Return on a notification for this hub (or one that came since the last call), else
        after ``timeout``. The first call starts the listening connection."""
        if self._pool is None:
            await asyncio.sleep(timeout)
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(self.settings.channel, self._wake),
                name=f"durable-listen-{self.settings.hub}",
            )
        await _wait_event(self._wake, timeout)

    async def _listen(self, name: str, wake: asyncio.Event) -> None:
        """Hold a LISTEN connection on ``name``; reconnect with backoff whenever it drops."""
        channel = pg_sql.Identifier(name)
        backoff = Backoff()
        failing = False
        while True:
            try:
                # Keepalives come with the connection string (settings.TCP_DEFAULTS): a LISTEN
                # connection is idle for long stretches, and a dead one must be noticed.
                async with await psycopg.AsyncConnection.connect(
                    self.settings.conninfo, autocommit=True
                ) as conn:
                    await conn.execute(pg_sql.SQL("LISTEN {}").format(channel))
                    if failing:
                        log.info("listening for work on %s again", self.settings.where)
                    failing = False
                    backoff.reset()
                    wake.set()  # anything sent while we were not listening
                    async for _ in conn.notifies():
                        wake.set()
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError) as exc:
                if not failing:
                    log.warning(
                        "LISTEN connection to PostgreSQL at %s failed (%s); polling until it "
                        "is back, reconnecting with backoff", self.settings.where,
                        _one_line(exc),
                    )
                failing = True
            await asyncio.sleep(backoff.next())


class _Failed(Exception):
    """A transaction's psycopg error, with what :func:`connections.diagnose` made of it."""

    def __init__(self, verdict: Verdict, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.verdict = verdict
        self.cause = cause


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    if not event.is_set():
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
        # that races the event, which would hang the worker's shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
    event.clear()


def _closed_by_server(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection was ended by the server (one ``select``, no I/O).

    An idle connection outside a transaction receives nothing unasked, except the server's
    last words: the FATAL "terminating connection" of ``pg_terminate_backend`` or a shutdown,
    then end of file. Anything readable means the connection is not worth a query.
    """
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


def _typed_error(exc: psycopg.Error, where: str) -> DurableError:
    """The durable error for a server error that is not about the connection."""
    text = _one_line(exc)
    if isinstance(exc, psycopg.DataError):
        return InvalidInputError(f"PostgreSQL refused a value: {text}")
    if isinstance(exc, pg_errors.DiskFull):
        return StorageFullError(f"PostgreSQL at {where} is out of space: {text}")
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return StorageReadOnlyError(
            f"PostgreSQL at {where} is read-only (a standby, or "
            f"default_transaction_read_only): {text}"
        )
    if isinstance(exc, pg_errors.DataCorrupted | pg_errors.IndexCorrupted):
        return StorageCorruptError(f"PostgreSQL at {where} reports damaged data: {text}")
    return StorageError(f"PostgreSQL error: {text}")


async def _rollback(conn: psycopg.AsyncConnection[Any]) -> None:
    """Abandon the transaction if the connection still works (a broken one is discarded by the
    pool anyway)."""
    if conn.closed or conn.info.transaction_status == _IDLE:
        return
    with contextlib.suppress(psycopg.Error):
        await conn.execute("ROLLBACK")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
