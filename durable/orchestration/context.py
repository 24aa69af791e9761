"""The orchestration context: the API an orchestrator function uses, and its replay state.

Every scheduling call (``call_activity``, ``create_timer``, ...) takes the next sequence number
at the moment it is called and records a pending action. The replay engine
(:mod:`durable.orchestration.runtime`) matches pending actions against the scheduling events in
history and completes tasks from the completion events; what is still pending at the end of an
episode is new work. All times come from history, never from the wall clock.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from durable import serialization
from durable.errors import (
    FailureDetails,
    FunctionNotFoundError,
    InvalidInputError,
    NonDeterminismError,
    TaskFailedError,
)
from durable.history import (
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
    to_datetime,
    to_timestamp,
)
from durable.ids import validate_instance_id
from durable.orchestration.actions import (
    Action,
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)
from durable.orchestration.decoding import decode_payload
from durable.orchestration.entity_calls import EntityCalls
from durable.orchestration.retry import RetryOptions
from durable.orchestration.tasks import (
    ActivityTask,
    AtomicTask,
    ExternalEventTask,
    RetryableTask,
    SubOrchestrationTask,
    TaskBase,
    TimedEventTask,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)

# Azure's namespace for replay-safe UUIDs, so new_uuid() gives the values Durable Functions does.
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")

# Name -> the registered spelling (matched ignoring case), or None if there is no such function.
NameResolver = Callable[[str], str | None]

_CALL_FOR_KIND = {"activity": "call_activity", "orchestrator": "call_sub_orchestrator"}


def function_name(fn: str | Callable[..., Any], kind: str | None = None) -> str:
    """The registered name of a function given by name or by the decorated function.

    With ``kind`` ("activity", "orchestrator"), a decorated function of another kind is refused
    here, at the call, rather than by a name lookup later.
    """
    if isinstance(fn, str):
        return fn
    info = getattr(fn, "__durable_function__", None)
    if info is not None:
        actual = getattr(info, "kind", None)
        if kind is not None and actual is not None and str(actual) != kind:
            hint = f"; use {_CALL_FOR_KIND[str(actual)]}" if str(actual) in _CALL_FOR_KIND else ""
            raise InvalidInputError(
                f"'{info.name}' is an {actual} function, not an {kind}{hint}."
            )
        return str(info.name)
    raise InvalidInputError(
        f"{fn!r} is not a registered durable function; pass its name or the decorated function."
    )


class DurableOrchestrationContext(EntityCalls):
    """Passed to orchestrator functions; names follow ``azure.durable_functions``."""

    def __init__(
        self,
        *,
        name: str,
        instance_id: str,
        execution_id: str,
        input_: str | None,
        parent_instance_id: str | None = None,
        version: str | None = None,
        resolve_activity: NameResolver | None = None,
        resolve_orchestrator: NameResolver | None = None,
    ) -> None:
        self._name = name
        self._instance_id = instance_id
        self._execution_id = execution_id
        self._input = input_
        self._parent_instance_id = parent_instance_id
        self._version = version
        self._resolve_activity = resolve_activity
        self._resolve_orchestrator = resolve_orchestrator
        self._now = 0.0
        self._now_datetime: datetime | None = None
        self._is_replaying = False
        self._sequence = 0
        self._uuid_counter = 0
        # Scheduled in code, not yet matched by (or written to) history: id -> (action, event).
        self._pending: dict[int, tuple[Action, HistoryEvent]] = {}
        # Scheduled tasks awaiting their completion event: id -> task.
        self._open_tasks: dict[int, AtomicTask] = {}
        # Waiters per event name (casefolded), oldest first; events no live waiter took.
        self._event_waiters: dict[str, deque[ExternalEventTask]] = {}
        self._event_buffer: dict[str, deque[str | None]] = {}
        self._buffered_count = 0
        self._awaited: TaskBase | None = None  # what the orchestrator yields now
        self._buffered_names: dict[str, str] = {}
        self._custom_status: Any = None
        self._custom_status_set = False
        self._continue_as_new: tuple[str, bool] | None = None
        self._init_entities()

    # -- properties ---------------------------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def parent_instance_id(self) -> str | None:
        return self._parent_instance_id

    @property
    def execution_id(self) -> str:
        return self._execution_id

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs past steps from history (e.g. to skip logging)."""
        return self._is_replaying

    @property
    def current_utc_datetime(self) -> datetime:
        """Replay-safe current time: when the current episode started, tz-aware UTC."""
        if self._now_datetime is None:
            self._now_datetime = to_datetime(self._now)
        return self._now_datetime

    @property
    def custom_status(self) -> Any:
        return self._custom_status

    @property
    def will_continue_as_new(self) -> bool:
        return self._continue_as_new is not None

    # -- inputs and status --------------------------------------------------------------------

    def get_input(self, expected_type: type | None = None) -> Any:
        """The orchestration's input, decoded from JSON (``None`` if there was none)."""
        value = decode_payload(self._input, "orchestration input")
        if expected_type is not None and isinstance(value, dict) and expected_type is not dict:
            return expected_type(**value)
        return value

    def set_custom_status(self, status: Any) -> None:
        """Publish a JSON-serializable value in the instance status (``customStatus``)."""
        serialization.dumps(status, "custom status")
        self._custom_status = status
        self._custom_status_set = True

    def new_uuid(self) -> str:
        """A replay-safe UUID string (same algorithm and namespace as Durable Functions)."""
        stamp = self.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        name = f"{self._instance_id}_{stamp}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    def new_guid(self) -> uuid.UUID:
        """A replay-safe UUID, by the Azure Python SDK's ``new_guid`` algorithm (a name-based
        UUID in the URL namespace); it shares ``new_uuid``'s counter, as there."""
        name = f"{self._instance_id}_{self.current_utc_datetime}_{self._uuid_counter}"
        self._uuid_counter += 1
        return uuid.uuid5(uuid.NAMESPACE_URL, name)

    # -- scheduling ---------------------------------------------------------------------------

    def call_activity(self, name: str | Callable[..., Any], input_: Any = None) -> ActivityTask:
        """Schedule an activity; yield the task to get its result."""
        activity = self._resolve(function_name(name, "activity"), "activity")
        payload = serialization.dumps(input_, f"input of activity '{activity}'")
        task_id = self._next_id()
        task = ActivityTask(task_id, f"call_activity('{activity}')")
        self._schedule(
            task,
            ScheduleActivity(task_id, activity, payload),
            TaskScheduled(timestamp=self._now, event_id=task_id, name=activity, input=payload),
        )
        return task

    def call_activity_with_retry(
        self, name: str | Callable[..., Any], retry_options: RetryOptions, input_: Any = None
    ) -> TaskBase:
        _check_retry_options(retry_options)
        return RetryableTask(self, retry_options, lambda: self.call_activity(name, input_))

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input_: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> SubOrchestrationTask:
        """Start a child orchestration; yield the task to get its output.

        Without ``instance_id`` the child gets ``"{parent execution id}:{task id}"``, as in the
        Durable Task Framework, which is unique and stable across replays.
        """
        orchestrator = self._resolve(function_name(name, "orchestrator"), "orchestrator")
        self._check_not_in_section("call_sub_orchestrator")
        if instance_id is not None:
            validate_instance_id(instance_id)
            if instance_id in (self._instance_id, self._parent_instance_id):
                raise InvalidInputError(
                    f"A sub-orchestration cannot use its parent's instance ID '{instance_id}'."
                )
        payload = serialization.dumps(input_, f"input of sub-orchestration '{orchestrator}'")
        task_id = self._next_id()
        child_id = instance_id if instance_id is not None else f"{self._execution_id}:{task_id}"
        task = SubOrchestrationTask(task_id, f"call_sub_orchestrator('{orchestrator}')")
        self._schedule(
            task,
            StartSubOrchestration(task_id, orchestrator, child_id, payload, version),
            SubOrchestrationInstanceCreated(
                timestamp=self._now,
                event_id=task_id,
                name=orchestrator,
                instance_id=child_id,
                input=payload,
            ),
        )
        return task

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input_: Any = None,
        instance_id: str | None = None,
        version: str | None = None,
    ) -> TaskBase:
        _check_retry_options(retry_options)
        return RetryableTask(
            self,
            retry_options,
            lambda: self.call_sub_orchestrator(name, input_, instance_id, version),
        )

    def call_http(
        self,
        method: str,
        uri: str,
        content: Any = None,
        headers: dict[str, str] | None = None,
        token_source: Any = None,
        is_raw_str: bool = False,
        *,
        asynchronous_patterns: bool = True,
    ) -> TaskBase:
        """A durable HTTP request; yield it to get ``{statusCode, headers, content}``.

        The request runs in a built-in activity, and a 202 with a ``Location`` header is polled
        with durable timers until the final response (see durable/orchestration/http_task.py).
        ``token_source`` (Azure managed identities) is not supported.
        """
        from durable.orchestration.http_task import HttpPollingTask, build_request

        if token_source is not None:
            raise InvalidInputError("call_http: token_source (managed identity) is Azure-only.")
        request = build_request(method, uri, content, headers, is_raw_str)
        return HttpPollingTask(self, request, asynchronous_patterns)

    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        """A durable timer that fires at ``fire_at`` (a datetime, or a delay from now)."""
        if isinstance(fire_at, timedelta):
            moment = self._now + fire_at.total_seconds()
        elif isinstance(fire_at, datetime):
            moment = to_timestamp(fire_at)
        else:
            raise InvalidInputError(
                f"create_timer takes a datetime or timedelta, not {type(fire_at).__name__}."
            )
        return self._schedule_timer(moment)

    def wait_for_external_event(
        self, name: str, timeout: timedelta | float | None = None
    ) -> ExternalEventTask | TimedEventTask:
        """A task completed by the next event raised with this name (case-insensitive).

        Events raised before anyone waits are buffered, first in first out, per name. An event
        goes to the oldest *live* waiter: one whose ``task_any`` was already won by another task
        (the reminder loop's timed-out wait) does not take it. With ``timeout`` (a timedelta or
        seconds) the task fails with :class:`durable.EventTimeoutError` when no event came in
        time, and the waiter is cancelled.
        """
        if not isinstance(name, str) or not name:
            raise InvalidInputError("The event name must be a non-empty string.")
        seconds = _timeout_seconds(timeout)
        task = ExternalEventTask(name, self._register_waiter)
        buffered = self._event_buffer.get(name.casefold())
        if buffered:
            self._take_buffered(task, buffered)
        else:
            self._register_waiter(task)
        if seconds is None or task.is_completed:
            return task
        return TimedEventTask(task, self._schedule_timer(self._now + seconds), seconds)

    def task_all(self, activities: Sequence[TaskBase]) -> WhenAllTask:
        """Completes with all results in order; fails fast with the first failure."""
        return WhenAllTask(activities)

    def task_any(self, activities: Sequence[TaskBase]) -> WhenAnyTask:
        """Completes with the first task to complete (the task object, not its value)."""
        return WhenAnyTask(activities)

    def continue_as_new(self, input_: Any, preserve_unprocessed_events: bool = False) -> None:
        """Restart this instance with fresh history and a new input once the code yields/returns.

        With ``preserve_unprocessed_events`` the external events that arrived but were not
        consumed are delivered to the new execution, in order; by default (as in Durable
        Functions for Python) they are dropped.
        """
        if self._continue_as_new is not None:
            return  # as in Azure: the first call decides, later ones are ignored
        payload = serialization.dumps(input_, "continue_as_new input")
        self._continue_as_new = (payload, preserve_unprocessed_events)

    # -- engine side --------------------------------------------------------------------------

    def _resolve(self, name: str, kind: str) -> str:
        """The registered spelling of ``name``; an unknown (or wrong-kind) name fails here."""
        resolver = self._resolve_activity if kind == "activity" else self._resolve_orchestrator
        if resolver is None:
            return name
        found = resolver(name)
        if found is not None:
            return found
        other = self._resolve_orchestrator if kind == "activity" else self._resolve_activity
        hint = None
        if other is not None and other(name) is not None:
            other_kind = "orchestrator" if kind == "activity" else "activity"
            hint = f"'{name}' is an {other_kind}: use {_CALL_FOR_KIND[other_kind]}."
        raise FunctionNotFoundError(kind, name, hint)

    def _next_id(self) -> int:
        task_id = self._sequence
        self._sequence += 1
        return task_id

    def _schedule(self, task: AtomicTask, action: Action, event: HistoryEvent) -> None:
        if self._continue_as_new is not None:
            raise InvalidInputError("No work can be scheduled after continue_as_new.")
        task_id = cast(int, task.id)
        self._open_tasks[task_id] = task
        self._pending[task_id] = (action, event)

    def _schedule_send(self, task_id: int, action: SendEvent, event: HistoryEvent) -> None:
        if self._continue_as_new is not None:
            raise InvalidInputError("No work can be scheduled after continue_as_new.")
        self._pending[task_id] = (action, event)

    def _schedule_timer(self, fire_at: float) -> TimerTask:
        timer_id = self._next_id()
        task = TimerTask(timer_id, fire_at)
        self._schedule(
            task,
            ScheduleTimer(timer_id, fire_at),
            TimerCreated(timestamp=self._now, event_id=timer_id, fire_at=fire_at),
        )
        return task

    def _set_now(self, timestamp: float) -> None:
        if timestamp > self._now:
            self._now = timestamp
            self._now_datetime = None

    # -- external events: waiters, buffer, liveness -------------------------------------------

    def _register_waiter(self, task: ExternalEventTask) -> None:
        waiters = self._event_waiters.setdefault(task.name.casefold(), deque())
        # Drop abandoned waiters at the head, so a loop that re-arms its wait every round
        # (and never gets an event) does not grow the queue without bound.
        while waiters and not self._is_live(waiters[0]):
            waiters.popleft().registered = False
        task.registered = True
        waiters.append(task)

    def _take_buffered(self, task: ExternalEventTask, buffered: deque[str | None]) -> None:
        self._buffered_count -= 1
        task._set_value(decode_payload(buffered.popleft(), f"payload of event '{task.name}'"))

    def _is_live(self, task: TaskBase) -> bool:
        """Could the orchestrator still want this task's value? (See ExternalEventTask.)"""
        if task.is_completed:
            return False
        if task is self._awaited:
            return True
        parents = task._parents
        return not parents or any(self._is_live(parent) for parent in parents)

    def _deliver_event(self, name: str, payload: str | None) -> None:
        """Hand an event to the oldest live waiter of its name, else buffer it. Abandoned
        waiters passed over leave the queue (a waiter that is revived rejoins it)."""
        key = name.casefold()
        waiters = self._event_waiters.get(key)
        while waiters:
            task = waiters.popleft()
            task.registered = False
            if self._is_live(task):
                task._set_value(decode_payload(payload, f"payload of event '{task.name}'"))
                return
        self._event_buffer.setdefault(key, deque()).append(payload)
        self._buffered_names.setdefault(key, name)
        self._buffered_count += 1

    def _yielded(self, task: TaskBase) -> None:
        """The orchestrator now waits for ``task``: a revived waiter may take a buffered event."""
        self._awaited = task
        if isinstance(task, ExternalEventTask) and not task.registered and not task.is_completed:
            self._register_waiter(task)
        if self._buffered_count:
            for key, buffered in self._event_buffer.items():
                waiters = self._event_waiters.get(key)
                while buffered and waiters:
                    waiter = waiters.popleft()
                    waiter.registered = False
                    if self._is_live(waiter):
                        self._take_buffered(waiter, buffered)

    def _unconsumed_events(self) -> list[tuple[str, str | None]]:
        return [
            (self._buffered_names[key], payload)
            for key, queue in self._event_buffer.items()
            for payload in queue
        ]

    def _outcome_before_scheduling(self, task_id: int) -> bool:
        """A completion for a task whose scheduling event history does not hold yet.

        In stored history that is corruption (or code that now schedules differently), and
        fails the instance; arriving as a new message it can only be stale, and is dropped,
        so the task is neither completed early nor scheduled twice.
        """
        if task_id not in self._pending:
            return False
        if self._is_replaying:
            _action, event = self._pending[task_id]
            raise NonDeterminismError(
                f"History has the outcome of task #{task_id} before it was scheduled "
                f"({type(event).__name__}); the history does not match the code.",
            )
        return True

    def _fail_task(self, task_id: int, failure: FailureDetails) -> bool:
        if self._outcome_before_scheduling(task_id):
            return False
        task = self._open_tasks.pop(task_id, None)
        if task is None:
            return False
        message = f"{task.description} failed: {failure.error_type}: {failure.message}"
        task._set_exception(TaskFailedError(message, failure, task.description))
        return True

    def _complete_task(self, task_id: int, payload: str | None) -> bool:
        """Complete an open task from its completion event; False if no such task is open."""
        if self._outcome_before_scheduling(task_id):
            return False
        task = self._open_tasks.get(task_id)
        if task is None:
            return False
        if isinstance(task, TimerTask):
            del self._open_tasks[task_id]
            if not task.is_cancelled:
                task._set_value(None)
            return True
        value = decode_payload(payload, f"result of {task.description} (task #{task_id})")
        del self._open_tasks[task_id]
        task._set_value(value)
        return True


def _timeout_seconds(timeout: timedelta | float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise InvalidInputError(
            f"timeout must be a timedelta or a number of seconds, not {type(timeout).__name__}."
        )
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidInputError("timeout must be a finite number of seconds, 0 or more.")
    return seconds


def _check_retry_options(options: object) -> None:
    if not isinstance(options, RetryOptions):
        raise InvalidInputError("retry_options must be a durable.RetryOptions.")
