"""Runs activity functions: plain functions on a thread pool, ``async def`` ones on the loop.

Threads pull work from one queue and hand results back in batches: a burst of a thousand
trivial activities costs a handful of loop wake-ups, not a thousand ``run_in_executor`` round
trips. The number of activities running at once is bounded separately for threads and for
coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

from durable import serialization
from durable.app import FunctionInfo, Registry
from durable.clock import SYSTEM_CLOCK, Clock
from durable.errors import FailureDetails, FunctionNotFoundError
from durable.history import HistoryEvent, TaskCompleted, TaskFailed
from durable.storage.base import ActivityResult, ActivityWorkItem

log = logging.getLogger("durable.worker")

ResultSink = Callable[[list[ActivityResult]], None]
BuiltinActivity = Callable[[Any], Any]


def _failure(exc: BaseException) -> FailureDetails:
    return FailureDetails.from_exception(exc, "".join(traceback.format_exception(exc)))


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )


class ActivityExecutor:
    """Executes leased activity work items and reports outcomes to ``sink`` in batches."""

    def __init__(
        self,
        registry: Registry,
        sink: ResultSink,
        *,
        max_threads: int = 16,
        max_async: int = 1000,
        builtins: dict[str, FunctionInfo] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._builtins = builtins or {}
        self._sink = sink
        self._max_threads = max(1, max_threads)
        self._async_slots = asyncio.Semaphore(max(1, max_async))
        self._jobs: queue.SimpleQueue[ActivityWorkItem | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._done: list[ActivityResult] = []
        self._done_lock = threading.Lock()
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_tasks: set[asyncio.Task[None]] = set()
        self._takes_arg: dict[str, bool] = {}
        # Submitted and not yet reported, by identity: the tasks whose leases the worker renews
        # for them (durable/worker/renewal.py).
        self._in_hand: dict[int, ActivityWorkItem] = {}
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def stop(self, timeout: float) -> None:
        """Wait up to ``timeout`` for running activities, then stop the threads."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see PostgresBackend
                await self.idle.wait()
        except TimeoutError:
            log.warning("%d activities still running at shutdown; their leases are released",
                        self.running)
        for _ in self._threads:
            self._jobs.put(None)
        for task in list(self._async_tasks):
            task.cancel()
        self._threads.clear()

    def resolve(self, name: str) -> str | None:
        """The spelling under which activity ``name`` can run here (registered, matched
        ignoring case, or built in), or None."""
        if name in self._builtins:
            return name
        return self._registry.resolve_activity(name)

    def _function(self, name: str) -> FunctionInfo:
        info = self._builtins.get(name)
        if info is not None:
            return info
        return self._registry.activity(name)

    def in_hand(self) -> list[ActivityWorkItem]:
        """Activities queued, running, or finished with their result not yet handed over."""
        return list(self._in_hand.values())

    def submit(self, items: list[ActivityWorkItem]) -> None:
        for item in items:
            self._in_hand[id(item)] = item
            self.running += 1
            self.idle.clear()
            try:
                info = self._function(item.name)
            except FunctionNotFoundError as exc:
                self._report([self._result(item, None, exc)])
                continue
            if info.is_async:
                task = asyncio.get_running_loop().create_task(self._run_async(info, item))
                self._async_tasks.add(task)
                task.add_done_callback(self._async_tasks.discard)
            else:
                if len(self._threads) < self._max_threads and len(self._threads) < self.running:
                    self._spawn_thread()
                self._jobs.put(item)

    def _spawn_thread(self) -> None:
        thread = threading.Thread(
            target=self._thread_main, name=f"durable-activity-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _call(self, info: FunctionInfo, item: ActivityWorkItem) -> Any:
        takes = self._takes_arg.get(info.name)
        if takes is None:
            takes = self._takes_arg[info.name] = _takes_argument(info.fn)
        if takes:
            return info.fn(serialization.loads(item.input))
        return info.fn()

    def _result(
        self, item: ActivityWorkItem, value: Any, error: BaseException | None
    ) -> ActivityResult:
        now = self._clock.now()
        event: HistoryEvent
        if error is None:
            try:
                payload = serialization.dumps(value, f"output of activity '{item.name}'")
            except Exception as exc:
                error = exc
            else:
                event = TaskCompleted(timestamp=now, task_scheduled_id=item.task_id, result=payload)
                return ActivityResult(item, event)
        event = TaskFailed(timestamp=now, task_scheduled_id=item.task_id, failure=_failure(error))
        return ActivityResult(item, event)

    def _thread_main(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            try:
                info = self._function(item.name)
                outcome = self._result(item, self._call(info, item), None)
            except Exception as exc:
                outcome = self._result(item, None, exc)
            self._report_from_thread(outcome)

    async def _run_async(self, info: FunctionInfo, item: ActivityWorkItem) -> None:
        async with self._async_slots:
            try:
                value = await self._call(info, item)
                outcome = self._result(item, value, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outcome = self._result(item, None, exc)
        self._report([outcome])

    def _report_from_thread(self, outcome: ActivityResult) -> None:
        with self._done_lock:
            self._done.append(outcome)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        loop = self._loop
        if loop is not None:
            # If the loop is closed the lease expires and another worker retries the task.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._done_lock:
            batch, self._done = self._done, []
            self._flush_scheduled = False
        if batch:
            self._report(batch)

    def _report(self, batch: list[ActivityResult]) -> None:
        for result in batch:
            self._in_hand.pop(id(result.task), None)
        self.running -= len(batch)
        if self.running <= 0:
            self.running = 0
            self.idle.set()
        self._sink(batch)
