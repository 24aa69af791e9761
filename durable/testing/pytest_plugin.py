"""pytest fixtures for durable apps. Enable them in a ``conftest.py``::

    pytest_plugins = ["durable.testing.pytest_plugin"]

    @pytest.fixture
    def durable_app():
        from myproject.function_app import app
        return app

Then a test takes ``durable_host`` (a started :class:`durable.Host` on the in-memory store and
virtual time, see :func:`durable.testing.run_app`) or just ``durable_client``. The tests must be
async (pytest-asyncio, ``asyncio_mode = "auto"``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable.app import DFApp
from durable.client import DurableOrchestrationClient
from durable.host import Host
from durable.testing.host import run_app


@pytest.fixture
def durable_app() -> DFApp:
    raise pytest.UsageError(
        "Define a `durable_app` fixture that returns your app to use durable_host.")


@pytest.fixture
async def durable_host(durable_app: DFApp) -> AsyncIterator[Host]:
    async with run_app(durable_app) as host:
        yield host


@pytest.fixture
def durable_client(durable_host: Host) -> DurableOrchestrationClient:
    return durable_host.client


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "durable: tests that use durable's fixtures")
