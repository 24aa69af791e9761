"""The orchestration context: the API an orchestrator function uses.

A thin façade over the execution's :class:`~durable.orchestration.replay_state.ReplayState`:
every scheduling call (``call_activity``, ``create_timer``, ...) validates its arguments, takes
the next sequence number at the moment it is called, and records the work there. The replay
engine (:mod:`durable.orchestration.runtime`) matches that work against the scheduling events
in history and completes tasks from the completion events; what history does not hold at the
end of an episode is new work. All times come from history, never from the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from durable import serialization
from durable.errors import (
    FunctionNotFoundError,
    InvalidInputError,
)
from durable.history import (
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    to_timestamp,
)
from durable.ids import validate_instance_id
from durable.orchestration.actions import (
    ScheduleActivity,
    StartSubOrchestration,
)
from durable.orchestration.decoding import decode_payload
from durable.orchestration.entity_calls import EntityCalls
from durable.orchestration.replay_state import ReplayState
from durable.orchestration.retry import RetryOptions
from durable.orchestration.tasks import (
    ActivityTask,
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
        state: ReplayState | None = None,
    ) -> None:
        self._name = name
        self._instance_id = instance_id
        self._execution_id = execution_id
        self._input = input_
        self._parent_instance_id = parent_instance_id
        self._version = version
        self._resolve_activity = resolve_activity
        self._resolve_orchestrator = resolve_orchestrator
        self._state = state or ReplayState(instance_id, execution_id)
        self._uuid_counter = 0

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
        return self._state.is_replaying

    @property
    def current_utc_datetime(self) -> datetime:
        """Replay-safe current time: when the current episode started, tz-aware UTC."""
        return self._state.now_datetime

    @property
    def custom_status(self) -> Any:
        return self._state.custom_status

    @property
    def will_continue_as_new(self) -> bool:
        return self._state.continue_as_new is not None

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
        self._state.custom_status = status
        self._state.custom_status_set = True

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
        state = self._state
        task_id = state.next_id()
        task = ActivityTask(task_id, f"call_activity('{activity}')")
        state.schedule(
            task,
            ScheduleActivity(task_id, activity, payload),
            TaskScheduled(timestamp=state.now, event_id=task_id, name=activity, input=payload),
        )
        return task

    def call_activity_with_retry(
        self, name: str | Callable[..., Any], retry_options: RetryOptions, input_: Any = None
    ) -> TaskBase:
        _check_retry_options(retry_options)
        return RetryableTask(self._state, retry_options, lambda: self.call_activity(name, input_))

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
        state = self._state
        task_id = state.next_id()
        child_id = instance_id if instance_id is not None else f"{self._execution_id}:{task_id}"
        task = SubOrchestrationTask(task_id, f"call_sub_orchestrator('{orchestrator}')")
        state.schedule(
            task,
            StartSubOrchestration(task_id, orchestrator, child_id, payload, version),
            SubOrchestrationInstanceCreated(
                timestamp=state.now,
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
            self._state,
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
            moment = self._state.now + fire_at.total_seconds()
        elif isinstance(fire_at, datetime):
            moment = to_timestamp(fire_at)
        else:
            raise InvalidInputError(
                f"create_timer takes a datetime or timedelta, not {type(fire_at).__name__}."
            )
        return self._state.schedule_timer(moment)

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
        task = self._state.events.wait(name)
        if seconds is None or task.is_completed:
            return task
        timer = self._state.schedule_timer(self._state.now + seconds)
        return TimedEventTask(task, timer, seconds)

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
        if self._state.continue_as_new is not None:
            return  # as in Azure: the first call decides, later ones are ignored
        payload = serialization.dumps(input_, "continue_as_new input")
        self._state.continue_as_new = (payload, preserve_unprocessed_events)

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
