"""PostgreSQL-only behaviour: URLs, task hubs, migrations, LISTEN/NOTIFY, unreachable servers.

(The storage contract itself runs on PostgreSQL in test_backend_contract.py.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

import pytest

from durable.errors import InvalidInputError, SchemaVersionError, StorageError
from durable.storage import open_backend, sql
from durable.storage.base import NewInstance
from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV

psycopg = pytest.importorskip("psycopg")

from durable.storage.postgres.backend import PostgresBackend, PostgresSettings  # noqa: E402
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


# -- URLs (no server needed) ---------------------------------------------------------------------


def test_url_options_are_ours_or_libpq() -> None:
    settings = PostgresSettings(
        "postgresql://app:secret@db.example:6543/jobs?hub=orders&pool_max=20&pool_min=2"
        "&sslmode=require&pool_timeout=5"
    )
    assert (settings.hub, settings.pool_min, settings.pool_max, settings.pool_timeout) == (
        "orders", 2, 20, 5.0)
    assert "hub=" not in settings.conninfo and "pool_" not in settings.conninfo
    assert "sslmode=require" in settings.conninfo and "connect_timeout=" in settings.conninfo
    assert "secret" not in settings.display_url and "app:***@db.example" in settings.display_url
    assert settings.where == "db.example:6543/jobs"
    assert PostgresSettings("postgresql://localhost/x").hub == "durable"
    assert "hunter2" not in PostgresSettings("postgresql://h/x?password=hunter2").display_url


@pytest.mark.parametrize("bad", ["hub=Orders", "hub=1x", "hub=a-b", "hub=" + "a" * 49,
                                 "pool_max=0", "pool_min=5&pool_max=2", "pool_max=many"])
def test_bad_url_options_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        PostgresSettings(f"postgresql://localhost/x?{bad}")


async def test_an_unreachable_server_is_a_clear_storage_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = open_backend(f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=2")
    started = time.monotonic()
    with pytest.raises(StorageError, match=f"Cannot reach PostgreSQL at 127.0.0.1:{port}/x"):
        await backend.open()
    assert time.monotonic() - started < 5


# -- hubs and migrations -----------------------------------------------------------------------


async def test_task_hubs_in_one_database_are_isolated() -> None:
    first, second = await opened(hub_url()), await opened(hub_url())
    try:
        await first.create_instance(new_instance("same-id"))
        assert await second.get_instance("same-id") is None
        assert await second.lease_orchestrations("w", limit=10) == []
        await second.create_instance(new_instance("same-id"))  # no conflict across hubs
        [item] = await first.lease_orchestrations("w", limit=10)
        assert item.instance_id == "same-id"
        assert len(await second.lease_orchestrations("w", limit=10)) == 1
    finally:
        await first.close()
        await second.close()


async def test_workers_starting_together_migrate_once() -> None:
    url = hub_url()
    backends = [open_backend(url) for _ in range(6)]
    await asyncio.gather(*(b.open() for b in backends))
    try:
        settings = PostgresSettings(url)
        with psycopg.connect(settings.conninfo, autocommit=True) as conn:
            rows = conn.execute(
                f'SELECT version FROM "{settings.hub}".durable_migrations ORDER BY version'
            ).fetchall()
        versions = [v for v, _ in sql.load_migrations("durable.storage.postgres")]
        assert [r[0] for r in rows] == versions
        assert await backends[0].migrate() == versions[-1]  # idempotent
    finally:
        await asyncio.gather(*(b.close() for b in backends))


async def test_a_schema_from_a_newer_version_is_refused() -> None:
    url = hub_url()
    backend = await opened(url)
    await backend.close()
    settings = PostgresSettings(url)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{settings.hub}".durable_migrations VALUES (9999, 0)')
    with pytest.raises(SchemaVersionError):
        await open_backend(url).open()


def test_db_migrate_command_creates_the_schema() -> None:
    from click.testing import CliRunner

    from durable.cli import main

    url = hub_url()
    result = CliRunner().invoke(main, ["db", "migrate", "--storage", url])
    assert result.exit_code == 0, result.output
    settings = PostgresSettings(url)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [settings.hub],
        )}
    assert {"instances", "history", "inbox", "tasks", "durable_migrations"} <= tables


# -- LISTEN/NOTIFY -----------------------------------------------------------------------------


async def test_new_work_wakes_a_waiting_worker_at_once() -> None:
    url = hub_url()
    waiter, client = await opened(url), await opened(url)
    try:
        await waiter.wait_for_work(5)  # starts listening (and returns once it listens)
        started = time.monotonic()
        waiting = asyncio.ensure_future(waiter.wait_for_work(10))
        await asyncio.sleep(0.05)
        await client.create_instance(new_instance("wake-up"))
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 2
        # Work a worker leases to itself wakes nobody: the wait runs to its timeout.
        started = time.monotonic()
        waiting = asyncio.ensure_future(waiter.wait_for_work(0.5))
        await client.create_instance(new_instance("mine"), lease_owner="client-worker")
        await waiting
        assert time.monotonic() - started >= 0.45
    finally:
        await waiter.close()
        await client.close()


async def test_wait_for_work_falls_back_to_the_timeout_without_notifications() -> None:
    backend = await opened(hub_url())
    try:
        await backend.wait_for_work(5)
        started = time.monotonic()
        await backend.wait_for_work(0.3)
        assert 0.25 <= time.monotonic() - started < 2
    finally:
        await backend.close()


def test_a_deferred_statement_result_cannot_be_used_by_mistake() -> None:
    """Statements in _UNREAD are sent later; their stand-in result refuses to be read, so a
    change to sql.py that starts reading one fails loudly instead of seeing a fake value."""
    from durable.storage.postgres.statements import _UNREAD, NOT_READ

    for use in (bool, int, lambda r: r[0], lambda r: r == 1, list):
        with pytest.raises(TypeError, match="deferred PostgreSQL statement"):
            use(NOT_READ)
    assert "lock_instance" not in _UNREAD and "insert_instance" not in _UNREAD


async def test_payloads_survive_client_side_binding() -> None:
    """Deferred statements are bound on the client; quotes, percent signs, backslashes and
    non-ASCII text must arrive exactly as sent."""
    from durable.history import EventRaised, OrchestratorStarted
    from durable.status import OrchestrationRuntimeStatus as Status
    from durable.storage.base import Message, OrchestrationCommit

    nasty = "'%(x)s' %s 100% \\' \" \\\\ ünïcødé \u2028 -- ; COMMIT; \x01"
    backend = await opened(hub_url())
    try:
        await backend.create_instance(new_instance("quoted"))
        [item] = await backend.lease_orchestrations("w", limit=1)
        event = EventRaised(timestamp=1.5, name=nasty, input=f'"{nasty}"')
        [outcome] = await backend.commit_orchestrations([OrchestrationCommit(
            "quoted", item.execution_id, item.revision, "w",
            [OrchestratorStarted(timestamp=1.0), event], Status.Running,
            consumed_messages=[m.message_id for m in item.messages], custom_status=f'"{nasty}"',
            messages=[Message("quoted", event, None)],
        )])
        assert outcome.ok
        history = await backend.get_history("quoted")
        assert history[-1] == event
        record = await backend.get_instance("quoted")
        assert record is not None and record.custom_status == f'"{nasty}"'
        [again] = await backend.lease_orchestrations("w", limit=1)
        assert [m.event for m in again.messages] == [event]
    finally:
        await backend.close()
