"""While workers run, the garbage collector's young generation is collected less often
(durable/worker/collector.py); the process's own settings come back when the last one stops,
and settings the process chose itself are never lowered or overwritten."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import durable as df
from durable.storage import open_backend
from durable.worker import collector
from durable.worker.worker import Worker, WorkerOptions

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def nothing(context: df.DurableOrchestrationContext) -> None:
    return None


@pytest.fixture(autouse=True)
def thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Counted from zero here, whatever workers other tests of this process left running.
    monkeypatch.setattr(collector, "_holders", 0)
    monkeypatch.setattr(collector, "_saved", None)
    monkeypatch.setattr(collector, "_set", None)
    saved, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)
    if enabled:
        gc.enable()


async def _worker(tmp_path: Path, name: str, young: int | None = 50_000) -> Worker:
    backend = open_backend(f"sqlite:///{tmp_path / name}.db")
    await backend.open()
    worker = Worker(app.registry, backend, WorkerOptions(gc_young_threshold=young))
    await worker.start()
    return worker


async def _stop(worker: Worker) -> None:
    await worker.stop()
    await worker.backend.close()


async def test_workers_raise_the_young_threshold_until_the_last_one_stops(
        tmp_path: Path) -> None:
    first = await _worker(tmp_path, "a")
    assert gc.get_threshold() == (50_000, 10, 10)
    second = await _worker(tmp_path, "b")
    await _stop(first)
    assert gc.get_threshold() == (50_000, 10, 10)  # the second one still runs
    await _stop(second)
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_higher_threshold_or_a_disabled_collector_is_left_alone(tmp_path: Path) -> None:
    gc.set_threshold(100_000, 10, 10)
    worker = await _worker(tmp_path, "a")
    assert gc.get_threshold() == (100_000, 10, 10)
    await _stop(worker)
    assert gc.get_threshold() == (100_000, 10, 10)
    gc.set_threshold(700, 10, 10)
    gc.disable()
    worker = await _worker(tmp_path, "b")
    assert gc.get_threshold() == (700, 10, 10) and not gc.isenabled()
    await _stop(worker)
    assert gc.get_threshold() == (700, 10, 10)


async def test_thresholds_changed_while_a_worker_runs_are_kept(tmp_path: Path) -> None:
    worker = await _worker(tmp_path, "a")
    gc.set_threshold(5_000, 20, 20)  # the application decided otherwise meanwhile
    await _stop(worker)
    assert gc.get_threshold() == (5_000, 20, 20)


async def test_none_leaves_the_collector_alone(tmp_path: Path) -> None:
    worker = await _worker(tmp_path, "a", young=None)
    assert gc.get_threshold() == (700, 10, 10)
    await _stop(worker)
    assert gc.get_threshold() == (700, 10, 10)
