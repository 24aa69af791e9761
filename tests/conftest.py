"""Shared fixtures. Storage tests run against every backend: a real SQLite file, a real
PostgreSQL server when one is reachable (the PostgreSQL cases skip, saying why, otherwise), and
the in-memory store of durable.testing."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from durable.storage import open_backend
from durable.storage.base import Backend

PG_URL_ENV = "DURABLE_TEST_POSTGRES_URL"
PG_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'durable.db'}"


def postgres_url(tmp_path: Path) -> str:
    """A fresh task hub on the test PostgreSQL server, or skip with the reason."""
    base = os.environ.get(PG_URL_ENV, PG_DEFAULT_URL)
    try:
        from tests.pg import fresh_hub_url
    except ImportError:
        pytest.skip("the PostgreSQL backend is not available in this build")
    return fresh_hub_url(base, tmp_path)


BACKEND_URLS: dict[str, Callable[[Path], str]] = {
    "sqlite": sqlite_url,
    "postgres": postgres_url,
    # durable.testing's in-memory store must pass the same contract as the real ones.
    "memory": lambda tmp_path: "memory://",
}


@pytest.fixture(params=sorted(BACKEND_URLS))
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKEND_URLS[request.param](tmp_path)


@pytest.fixture
async def backend(storage_url: str) -> AsyncIterator[Backend]:
    store = open_backend(storage_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
