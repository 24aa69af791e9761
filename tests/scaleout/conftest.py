"""Fixtures for the multi-process tests: a fresh PostgreSQL task hub and a worker launcher that
always cleans up (kill -9 of whatever is still running, even a SIGSTOPped process)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_DEFAULT_URL, PG_URL_ENV
from tests.scaleout.harness import WorkerProcess, start_workers


@pytest.fixture
def pg_hub_url() -> str:
    from tests.pg import fresh_hub_url

    return fresh_hub_url(os.environ.get(PG_URL_ENV, PG_DEFAULT_URL))


@pytest.fixture
def activity_log(tmp_path: Path) -> Path:
    return tmp_path / "activities.log"


@pytest.fixture
def launch(tmp_path: Path, activity_log: Path
           ) -> Iterator[Callable[..., list[WorkerProcess]]]:
    launched: list[WorkerProcess] = []

    def launch_workers(url: str, count: int, **options: float) -> list[WorkerProcess]:
        workers = start_workers(url, tmp_path, activity_log, count, first=len(launched),
                                **options)  # type: ignore[arg-type]
        launched.extend(workers)
        return workers

    yield launch_workers
    for worker in launched:
        worker.close()
