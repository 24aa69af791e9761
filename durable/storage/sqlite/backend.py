"""The embedded SQLite backend: one file, WAL, durable commits, group commit.

All writes go through one writer thread with its own connection. The thread drains every
operation queued since its last commit and runs them in ONE transaction (``BEGIN IMMEDIATE``),
each inside a savepoint so one operation's error cannot undo another's work; the fsync of that
commit is then shared by all of them. Reads run on a separate connection and thread, which WAL
lets proceed while a write is in progress. Several processes may open the same file: SQLite's
write lock serializes them, and leases and revisions fence their work.

``synchronous=FULL`` (the default) makes every commit survive power loss; ``NORMAL`` survives an
application crash but may lose the last commits on an OS crash (see docs/storage.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durable.clock import SYSTEM_CLOCK, Clock
from durable.errors import DurableError, InvalidInputError, StorageError
from durable.status import OverridableStates
from durable.storage import sql
from durable.storage.base import (
    DEFAULT_LEASE_SECONDS,
    Message,
    NewInstance,
    OrchestrationWorkItem,
)
from durable.storage.operations import SQLOperations
from durable.storage.sqlite import unpatched
from durable.storage.sqlite.files import FileWatch, create_private, storage_error
from durable.storage.sqlite.grouped import ClientBatches
from durable.storage.sqlite.values import ValuesStatements

log = logging.getLogger("durable.storage.sqlite")

_QUERIES = sql.load_queries("durable.storage.sqlite")
_MIGRATIONS = sql.load_migrations("durable.storage.sqlite")
_MAX_BATCH = 512
_PROBE_INTERVAL = 0.05
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")

TxnFactory = Callable[[float], sql.Txn]


@dataclass(slots=True)
class _Job:
    factory: TxnFactory | None  # None: read PRAGMA data_version outside any transaction
    future: asyncio.Future[Any]


def _connect(path: str, synchronous: str, busy_timeout: float, uri: bool = False
             ) -> sqlite3.Connection:
    # Not sqlite3.connect: an APM's patch of it must not trace durable's own statements.
    conn = unpatched.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout, uri=uri,
        cached_statements=512,  # every query, and a few texts each of the set-based ones
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _adapt(params: Any) -> Any:
    """SQLite takes lists as JSON text (queries read them with json_each)."""
    if isinstance(params, dict):
        for key, value in params.items():
            if isinstance(value, (list, tuple)):
                params[key] = json.dumps(list(value))
    return params


# Only queries that read a list parameter (with json_each) need their parameters adapted;
# looking at every parameter of every other statement was a few per cent of a busy writer.
_TAKES_LISTS = frozenset(name for name, text in _QUERIES.items() if "json_each" in text)


# Statements over a table of rows (sql.values): a few texts per query, each cached.
_VALUES = ValuesStatements(_QUERIES)


def _executor(conn: sqlite3.Connection) -> Callable[[sql.Op], Any]:
    def execute(op: sql.Op) -> Any:
        if op.mode == "values":
            return _VALUES.run(conn, op.query, op.params)
        text = _QUERIES[op.query]
        adapt = op.query in _TAKES_LISTS
        if op.mode == "many":
            conn.executemany(text, [_adapt(p) for p in op.params] if adapt else op.params)
            return None
        cursor = conn.execute(text, _adapt(op.params) if adapt else op.params)
        if op.mode == "id":
            return cursor.lastrowid if cursor.rowcount > 0 else None
        if op.mode == "one":
            row = cursor.fetchone()
            cursor.fetchall()  # finish the statement (RETURNING runs to completion)
            return row
        if op.mode == "all":
            return cursor.fetchall()
        return cursor.rowcount

    return execute


class _Worker(threading.Thread):
    """A thread owning one connection; runs queued jobs, batching writes into one commit."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection], write: bool,
                 path: str, now: Callable[[], float], watch: bool = True):
        super().__init__(name=name, daemon=True)
        self._connect = connect
        self._now = now
        self._watch_file = watch
        self._write = write
        self._path = path
        self._watch: FileWatch | None = None
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self.startup_error = exc
            self.ready.set()
            return
        if self._write and self._watch_file:
            self._watch = FileWatch(self._path)
        self.ready.set()
        execute = _executor(conn)
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                batch = [job]
                while len(batch) < _MAX_BATCH:
                    try:
                        nxt = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self.jobs.put(None)
                        break
                    batch.append(nxt)
                probes = [j for j in batch if j.factory is None]
                if probes:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    _deliver([(j, version, None) for j in probes])
                    batch = [j for j in batch if j.factory is not None]
                    if not batch:
                        continue
                if self._write:
                    self._run_writes(conn, execute, batch)
                else:
                    self._run_reads(execute, batch)
        finally:
            conn.close()

    def _run_reads(self, execute: Callable[[sql.Op], Any], batch: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        now = self._now()
        for job in batch:
            assert job.factory is not None
            try:
                results.append((job, sql.run_sync(execute, job.factory(now)), None))
            except BaseException as exc:
                results.append((job, None, _wrap(exc, self._path)))
        _deliver(results)

    def _run_writes(
        self, conn: sqlite3.Connection, execute: Callable[[sql.Op], Any], batch: list[_Job]
    ) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            if self._watch is not None:
                self._watch.check()
            conn.execute("BEGIN IMMEDIATE")
        except StorageError as exc:
            _deliver([(job, None, exc) for job in batch])
            return
        except sqlite3.Error as exc:
            error = storage_error(exc, self._path)
            _deliver([(job, None, error) for job in batch])
            return
        now = self._now()
        try:
            for job in batch:
                assert job.factory is not None
                conn.execute("SAVEPOINT job")
                try:
                    value = sql.run_sync(execute, job.factory(now))
                except BaseException as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((job, None, _wrap(exc, self._path)))
                else:
                    conn.execute("RELEASE job")
                    results.append((job, value, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error = storage_error(exc, self._path)
            _deliver([(job, None, error) for job in batch])
            return
        _deliver(results)


def _wrap(exc: BaseException, path: str) -> BaseException:
    if isinstance(exc, DurableError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return storage_error(exc, path)
    if isinstance(exc, UnicodeEncodeError):
        # A value the checks of durable.storage.checks missed: refused as bad input (the job
        # was rolled back to its savepoint; the others of the batch are unaffected).
        return InvalidInputError(f"SQLite cannot store a value: {exc}")
    return exc


def _deliver(results: list[tuple[_Job, Any, BaseException | None]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
    for item in results:
        by_loop.setdefault(item[0].future.get_loop(), []).append(item)
    for loop, items in by_loop.items():
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, value, error in items:
        if job.future.done():
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)


class SQLiteBackend(SQLOperations):
    """Storage in one SQLite file (created if missing)."""

    migrations = _MIGRATIONS

    # Every process using the file runs on this machine (WAL needs shared memory), so a
    # lease owner whose process is gone is certainly dead (see Worker._reclaim_dead_owners).
    single_host = True
    reports_message_ids = True  # the statements run in-process: reading an id costs nothing
    counts_prefix_matches = True  # no statistics to plan a prefix list with (see sql.py)
    serial_writes = True  # one writer: BEGIN IMMEDIATE

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self.path = str(path)
        self.synchronous = mode
        self.busy_timeout = busy_timeout
        self.clock: Clock = SYSTEM_CLOCK  # durable.Host passes its own
        # In memory (":memory:"): one shared-cache database per backend, for tests; a keeper
        # connection holds it alive and one thread serves reads and writes (shared-cache
        # locking does not wait like the busy timeout of a file does).
        self.memory = self.path == ":memory:"
        self._database = (f"file:durable-memory-{id(self):x}?mode=memory&cache=shared"
                          if self.memory else self.path)
        self._keeper: sqlite3.Connection | None = None
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None
        self._client_batches = ClientBatches(self._write)

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.path!r}, synchronous={self.synchronous})"

    @property
    def url(self) -> str:
        return "memory://" if self.memory else f"sqlite:///{self.path}"

    def _connection(self) -> sqlite3.Connection:
        return _connect(self._database, self.synchronous, self.busy_timeout, self.memory)

    def connect_directly(self) -> sqlite3.Connection:
        """A new plain connection to this backend's database, in memory too (for tools and
        tests that look at the tables themselves), untouched by APM patches of sqlite3."""
        return unpatched.connect(self._database, uri=self.memory)

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        if self.memory:
            self._keeper = self._connection()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(create_private, self.path)
        await asyncio.to_thread(self._migrate)

        def connect() -> sqlite3.Connection:
            return self._connection()

        def now() -> float:
            return self.clock.now()

        self._writer = _Worker("durable-sqlite-writer", connect, write=True, path=self.path,
                               now=now, watch=not self.memory)
        self._reader = self._writer if self.memory else _Worker(
            "durable-sqlite-reader", connect, write=False, path=self.path, now=now)
        for thread in {self._writer, self._reader}:
            thread.start()
            thread.ready.wait()
            failure = thread.startup_error
            if failure is not None:
                for started in (self._writer, self._reader):
                    if started is not None:
                        started.jobs.put(None)  # the other thread may be running: stop it
                self._writer = self._reader = None
                if isinstance(failure, sqlite3.Error):
                    raise storage_error(failure, self.path) from failure
                raise StorageError(f"Cannot open {self.path}: {failure}")

    def _migrate(self) -> None:
        try:
            conn = self._connection()
        except sqlite3.Error as exc:
            raise storage_error(exc, self.path) from exc
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS durable_migrations "
                "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            current = conn.execute("SELECT MAX(version) FROM durable_migrations").fetchone()[0]
            current = current or 0
            for version, script in sql.pending_migrations(current, _MIGRATIONS):
                for statement in _split_statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO durable_migrations VALUES (?, ?)", (version, self.clock.now())
                )
                log.info("applied SQLite migration %04d to %s", version, self.path)
            # A write that changes nothing, which SQLite still refuses on a read-only file: a
            # read-only location where an earlier process left its -wal and -shm files behind
            # opens and reads fine, and would otherwise fail only at the first real write,
            # after the host had started.
            conn.execute("UPDATE durable_migrations SET applied_at = applied_at WHERE 0")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise storage_error(exc, self.path) from exc
        finally:
            conn.close()

    async def close(self) -> None:
        threads = {t for t in (self._writer, self._reader) if t is not None}
        for thread in threads:
            thread.jobs.put(None)
        for thread in threads:
            await asyncio.to_thread(thread.join)
        self._writer = self._reader = None
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()  # the in-memory database goes with it

    # -- plumbing -----------------------------------------------------------------------------

    def _submit(
        self, worker: _Worker | None, factory: TxnFactory | None
    ) -> asyncio.Future[Any]:
        if worker is None:
            raise StorageError("The SQLite backend is not open.")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        worker.jobs.put(_Job(factory, future))
        return future

    # -- client writes: a burst of starts or signals is one writer job (grouped.py) ---------

    async def create_instance(
        self,
        new: NewInstance,
        policy: OverridableStates = OverridableStates.NonRunningStates,
        *,
        lease_owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> OrchestrationWorkItem | None:
        return await self._client_batches.start(new, policy, lease_owner, lease_seconds)

    async def send_entity_message(self, message: Message) -> None:
        await self._client_batches.signal(message)

    def _write(self, factory: TxnFactory) -> asyncio.Future[Any]:
        return self._submit(self._writer, factory)

    def _read(self, factory: TxnFactory) -> asyncio.Future[Any]:
        return self._submit(self._reader, factory)

    # -- notifications ----------------------------------------------------------------------

    async def wait_for_completions(self, timeout: float) -> None:
        await self.wait_for_work(timeout)  # any other connection's commit may have ended one

    async def wait_for_work(self, timeout: float) -> None:
        """Return early when another process commits to the file.

        SQLite cannot notify, but ``PRAGMA data_version`` on the writer connection changes
        exactly when *another* connection committed, so checking it every 50 ms is a cheap
        stand-in for LISTEN/NOTIFY (work from this process is handed over directly anyway).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        baseline = await self._submit(self._writer, None)
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(_PROBE_INTERVAL, remaining))
            if await self._submit(self._writer, None) != baseline:
                return


def _split_statements(script: str) -> list[str]:
    """Split a migration script on ';' at line ends (our migrations have no triggers)."""
    statements = []
    for chunk in script.split(";\n"):
        body = "\n".join(
            line for line in chunk.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            statements.append(body.rstrip(";"))
    return statements
