"""PostgreSQL connections under failure: reconnect back-off, failovers, keepalives, a full disk.

Cases that change the server itself (a read-only server, a full disk) run on a private server
(tests/scaleout/private_pg.py), never on the shared one; cases that only touch our own sessions
(a session made read-only, a backend terminated) run on the shared server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from durable.errors import InvalidInputError, StorageFullError, StorageReadOnlyError
from durable.history import EventRaised
from durable.storage import open_backend
from durable.storage.base import Message, NewInstance
from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.scaleout.private_pg import PrivateServer, private_server

psycopg = pytest.importorskip("psycopg")

from psycopg import errors as pg_errors  # noqa: E402

from durable.storage.postgres import connections  # noqa: E402
from durable.storage.postgres.backend import PostgresBackend, _typed_error  # noqa: E402
from durable.storage.postgres.connections import Backoff, Verdict, diagnose  # noqa: E402
from durable.storage.postgres.settings import PostgresSettings  # noqa: E402
from tests.pg import fresh_hub_url  # noqa: E402


def hub_url(**options: str) -> str:
    return fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL), None, **options)


def new_instance(instance_id: str) -> NewInstance:
    return NewInstance(instance_id, "orch", uuid.uuid4().hex, '"x"', time.time())


async def opened(url: str) -> PostgresBackend:
    backend = open_backend(url)
    assert isinstance(backend, PostgresBackend)
    await backend.open()
    return backend


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateServer]:
    yield from private_server(started=True)


@pytest.fixture
async def shared() -> AsyncIterator[PostgresBackend]:
    backend = await opened(hub_url(pool_min="3", pool_max="3"))
    try:
        yield backend
    finally:
        await backend.close()


async def backend_pids(backend: PostgresBackend, count: int) -> set[int]:
    """The server process IDs of ``count`` pooled connections, taken at once."""
    assert backend._pool is not None
    async with Held(backend, count) as conns:
        pids = set()
        for conn in conns:
            row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
            pids.add(row[0])
        return pids


class Held:
    """Hold ``count`` pooled connections at once."""

    def __init__(self, backend: PostgresBackend, count: int) -> None:
        self.backend = backend
        self.count = count
        self.managers: list[Any] = []

    async def __aenter__(self) -> list[Any]:
        assert self.backend._pool is not None
        conns = []
        for _ in range(self.count):
            manager = self.backend._pool.connection(timeout=10)
            conns.append(await manager.__aenter__())
            self.managers.append(manager)
        return conns

    async def __aexit__(self, *exc: object) -> None:
        for manager in reversed(self.managers):
            await manager.__aexit__(None, None, None)


# -- back-off (no server) --------------------------------------------------------------------------


def test_the_backoff_starts_short_doubles_and_is_capped_with_jitter() -> None:
    backoff = Backoff(first=0.1, cap=1.0, jitter=0.2)
    delays = [backoff.next() for _ in range(8)]
    for delay, base in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert len({round(d, 6) for d in delays[4:]}) > 1, "no jitter: processes would go in step"
    backoff.reset()
    assert 0.08 <= backoff.next() <= 0.12


async def test_the_pool_retries_a_refused_server_on_our_backoff_not_psycopgs() -> None:
    """psycopg_pool waits 1 s, 2 s, 4 s ... between attempts; ours must be in effect (it is
    handed in through a method psycopg_pool does not document: this catches a change)."""
    with socket.socket() as probe:  # a port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = connections.ReconnectingPool(
        f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=2", min_size=1,
        open=False, reconnect_timeout=60)
    await pool.open(wait=False)
    try:
        deadline = time.monotonic() + 2.5  # psycopg_pool's own: 2 attempts by then (0 s, 1 s)
        while pool.get_stats().get("connections_errors", 0) < 5:  # ours: 0, .1, .3, .7, 1.5
            assert time.monotonic() < deadline, pool.get_stats()
            await asyncio.sleep(0.02)
    finally:
        await pool.close()


# -- what a failure means (real psycopg error classes; no server) ------------------------------


def test_errors_are_diagnosed_by_what_they_say_about_the_session() -> None:
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    assert diagnose(lost, None, committing=False) is Verdict.RECONNECT
    assert diagnose(lost, None, committing=True) is Verdict.UNKNOWN
    for going in (pg_errors.AdminShutdown, pg_errors.CrashShutdown, pg_errors.CannotConnectNow):
        assert diagnose(going("bye"), None, committing=False) is Verdict.RECONNECT
        assert diagnose(going("bye"), None, committing=True) is Verdict.UNKNOWN
    # Answers from a live server: the message carrying the COMMIT did not commit.
    read_only = pg_errors.ReadOnlySqlTransaction("cannot execute INSERT")
    assert diagnose(read_only, None, committing=True) is Verdict.READ_ONLY
    assert diagnose(pg_errors.DeadlockDetected("x"), None, committing=True) is Verdict.RETRY
    # Disk full is an OperationalError to psycopg, but the session is fine: not an outage.
    full = pg_errors.DiskFull("could not extend file")
    assert isinstance(full, psycopg.OperationalError)
    assert diagnose(full, None, committing=True) is Verdict.ERROR
    assert isinstance(_typed_error(full, "h:5432/db"), StorageFullError)
    assert isinstance(_typed_error(read_only, "h:5432/db"), StorageReadOnlyError)
    assert diagnose(pg_errors.QueryCanceled("statement timeout"), None, False) is Verdict.ERROR


# -- URL options --------------------------------------------------------------------------------


def test_tcp_keepalives_and_lifetime_are_on_by_default_and_the_url_wins() -> None:
    settings = PostgresSettings("postgresql://u@db.example/jobs")
    params = psycopg.conninfo.conninfo_to_dict(settings.conninfo)
    assert {k: params[k] for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                   "keepalives_count", "tcp_user_timeout")} == {
        "keepalives": "1", "keepalives_idle": "5", "keepalives_interval": "3",
        "keepalives_count": "3", "tcp_user_timeout": "15000"}
    assert settings.max_lifetime == 300.0
    mine = PostgresSettings("postgresql://u@db.example/jobs?keepalives_idle=60"
                            "&tcp_user_timeout=0&keepalives=0&max_lifetime=30")
    params = psycopg.conninfo.conninfo_to_dict(mine.conninfo)
    assert (params["keepalives_idle"], params["tcp_user_timeout"], params["keepalives"]) == (
        "60", "0", "0")
    assert mine.conninfo.count("keepalives_idle") == 1
    assert mine.max_lifetime == 30.0 and "max_lifetime" not in mine.conninfo


@pytest.mark.parametrize("bad", ["max_lifetime=0", "max_lifetime=-5", "max_lifetime=soon"])
def test_a_bad_max_lifetime_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="max_lifetime"):
        PostgresSettings(f"postgresql://localhost/x?{bad}")


async def test_keepalives_reach_the_socket_of_every_pooled_connection() -> None:
    """What libpq was told is what the kernel does: read the options back from the socket."""
    for url, expected in (
        (hub_url(pool_min="2"), (1, 5, 3, 3, 15000)),
        (hub_url(pool_min="2", keepalives_idle="42", tcp_user_timeout="7000"),
         (1, 42, 3, 3, 7000)),
    ):
        backend = await opened(url)
        try:
            async with Held(backend, 2) as conns:
                for conn in conns:
                    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
                    try:
                        found = (
                            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                        )
                    finally:
                        sock.close()
                    assert found == expected
        finally:
            await backend.close()


# -- failover: a server that no longer takes writes ---------------------------------------------


async def test_a_pool_on_a_demoted_server_is_drained_and_the_write_runs_on_a_fresh_one(
    shared: PostgresBackend,
) -> None:
    """Every pooled session is made read-only, as connections to a primary that a failover
    demoted would be; a fresh connection reaches a writable server (the new primary). The
    write must succeed, and no old session may stay in the pool."""
    async with Held(shared, 3) as conns:
        old = set()
        for conn in conns:
            await conn.execute("SET default_transaction_read_only = on")
            old.add((await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0])
    assert shared._pool is not None and shared._pool.get_stats()["pool_available"] == 3
    await shared.create_instance(new_instance("after-failover"))
    assert await shared.get_instance("after-failover") is not None
    assert not old & await backend_pids(shared, 3), "a session of the demoted server is kept"


async def test_a_server_that_stays_read_only_is_a_read_only_error(private: PrivateServer
                                                                  ) -> None:
    backend = await opened(private.url(hub=f"ro_{uuid.uuid4().hex[:8]}"))
    try:
        await backend.create_instance(new_instance("before"))
        private.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        private.execute("SELECT pg_reload_conf()")
        try:
            deadline = time.monotonic() + 10
            while True:  # the reload reaches every session at its next command
                try:
                    await backend.create_instance(new_instance(f"refused-{time.monotonic()}"))
                except StorageReadOnlyError as exc:
                    assert "read-only" in str(exc) and str(private.port) in str(exc)
                    break
                assert time.monotonic() < deadline, "the server never became read-only"
            assert (await backend.get_instance("before")) is not None  # reads still work
        finally:
            private.execute("ALTER SYSTEM RESET default_transaction_read_only")
            private.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while True:
            try:
                await backend.create_instance(new_instance("after"))
                break
            except StorageReadOnlyError:
                assert time.monotonic() < deadline, "writable again, but refused"
        assert await backend.get_instance("after") is not None
    finally:
        await backend.close()


async def test_a_session_terminated_mid_transaction_is_retried_on_a_fresh_one(
    shared: PostgresBackend,
) -> None:
    """57P01 (pg_terminate_backend, a fast shutdown) while our transaction waits on a row
    lock: it wrote nothing, so it runs again, once, on another connection."""
    await shared.create_instance(new_instance("locked"))
    schema = shared.settings.hub
    application_name = psycopg.conninfo.conninfo_to_dict(
        shared.settings.conninfo)["application_name"]
    holder = await psycopg.AsyncConnection.connect(shared.settings.conninfo, autocommit=True)
    try:
        await holder.execute("BEGIN")
        await holder.execute(f"SELECT 1 FROM {schema}.instances WHERE instance_id = 'locked' "
                             "FOR UPDATE")
        sending = asyncio.ensure_future(shared.send_message(
            Message("locked", EventRaised(name="go", input='"1"', timestamp=time.time()))))
        deadline = time.monotonic() + 10
        while True:
            row = await (await holder.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", [application_name])).fetchone()
            if row is not None:
                break
            assert time.monotonic() < deadline, "our transaction never waited on the lock"
            await asyncio.sleep(0.01)
        await holder.execute("SELECT pg_terminate_backend(%s)", [row[0]])
        await holder.execute("ROLLBACK")
        await asyncio.wait_for(sending, 10)
    finally:
        await holder.close()
    async with Held(shared, 1) as (conn,):
        count = await (await conn.execute(
            "SELECT COUNT(*) FROM inbox WHERE instance_id = 'locked' AND event LIKE '%go%'"
        )).fetchone()
    assert count[0] == 1


# -- a full disk ----------------------------------------------------------------------------


async def test_a_full_disk_is_a_full_disk_error_not_an_outage(private: PrivateServer) -> None:
    """A real ENOSPC without filling a disk: the (empty) instances table's file is replaced by
    a link to /dev/full, so extending it fails as on a full disk (SQLSTATE 53100)."""
    hub = f"full_{uuid.uuid4().hex[:8]}"
    backend = await opened(private.url(hub=hub))
    try:
        with psycopg.connect(private.url(), autocommit=True) as conn:
            path = conn.execute(f"SELECT pg_relation_filepath('{hub}.instances')").fetchone()[0]
        table = private.data / path
        assert table.stat().st_size == 0  # no session has cached its pages
        table.unlink()
        table.symlink_to("/dev/full")
        started = time.monotonic()
        with pytest.raises(StorageFullError, match=r"out of space.*No space left on device"):
            await backend.create_instance(new_instance("nowhere"))
        # Told at once, not after reconnecting and retrying as for a lost connection.
        assert time.monotonic() - started < 1.0
    finally:
        await backend.close()
