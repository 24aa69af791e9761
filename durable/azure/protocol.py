"""The Azure SDK's out-of-process orchestrator protocol, as pure functions (reference §8).

Two directions:

- **History in.** :func:`encode_event` turns a durable history event into the Durable Task
  Framework JSON the SDK's ``DurableOrchestrationContext`` reads (PascalCase, numeric
  ``EventType``, ISO ``Timestamp``, ``EventId``, ``IsPlayed``), and :func:`context_payload`
  wraps the history in the trigger payload (§8.1).
- **Actions out.** :func:`parse_state` reads what ``Orchestrator.create(fn)`` returned (§8.3),
  or the state the SDK attached to the exception it raised; :func:`plan_work` assigns each
  action the task ID the SDK gave its task and adds the work a Durable Functions host does on
  the SDK's behalf (retry timers and re-attempts).

Task IDs. The SDK keys completions by sequence numbers it assigns itself and never reports:
one per task when first yielded (children of ``task_all``/``task_any`` in list order), one per
``signal_entity``/``continue_as_new`` call, none for external events (keyed by name), plus one
per retry timer and per re-attempt, taken when the failure (or the retry timer) is processed.
Without retries the IDs are just the order of the numbered actions in the cumulative action
list. With retries :class:`_Simulation` replays the history the way the SDK does (the same
events, in the same order, completing the same kinds of tasks) to find where the retry IDs
fall, which is what the Durable extension's own replay does too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from durable.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

OUT_OF_PROC_LABEL = "\n\n$OutOfProcData$:"
# The replay schema a current Durable Functions host offers (V3: one cumulative action list).
UPPER_SCHEMA_VERSION = 1
UPPER_SCHEMA_VERSION_NEW = 2
HTTP_SLEEP_MS = 30000


class ActionType(IntEnum):
    """``actionType`` numbers (§8.4)."""

    CallActivity = 0
    CallActivityWithRetry = 1
    CallSubOrchestrator = 2
    CallSubOrchestratorWithRetry = 3
    ContinueAsNew = 4
    CreateTimer = 5
    WaitForExternalEvent = 6
    CallEntity = 7
    CallHttp = 8
    SignalEntity = 9
    ScheduledSignalEntity = 10
    WhenAny = 11
    WhenAll = 12


_RETRIES = (ActionType.CallActivityWithRetry, ActionType.CallSubOrchestratorWithRetry)
_COMPOUND = (ActionType.WhenAny, ActionType.WhenAll)
_FIRE_AND_FORGET = (ActionType.ContinueAsNew, ActionType.SignalEntity)
# Actions that take a sequence number (everything atomic but external events).
_NUMBERED = frozenset(ActionType) - {ActionType.WaitForExternalEvent, *_COMPOUND}


class ProtocolError(Exception):
    """The SDK's answer does not follow the protocol (a bug, or an SDK this code predates)."""


# -- history in --------------------------------------------------------------------------------

_EVENT_TYPE_NUMBER: dict[type[HistoryEvent], int] = {
    ExecutionStarted: 0, ExecutionCompleted: 1, ExecutionTerminated: 3, TaskScheduled: 4,
    TaskCompleted: 5, TaskFailed: 6, SubOrchestrationInstanceCreated: 7,
    SubOrchestrationInstanceCompleted: 8, SubOrchestrationInstanceFailed: 9, TimerCreated: 10,
    TimerFired: 11, OrchestratorStarted: 12, OrchestratorCompleted: 13, EventSent: 14,
    EventRaised: 15,
}


def iso(timestamp: float) -> str:
    """Epoch seconds as the ISO form .NET writes (UTC, microseconds, ``Z``)."""
    return iso_of(datetime.fromtimestamp(timestamp, UTC))


def iso_of(moment: datetime) -> str:
    """A UTC datetime as :func:`iso` writes it (``isoformat`` is twice as fast as strftime;
    its ``+00:00`` becomes ``Z``)."""
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def _failure_fields(event: TaskFailed | SubOrchestrationInstanceFailed,
                    task_name: str | None) -> dict[str, Any]:
    """``Reason`` and ``Details`` as the Durable extension writes them for the SDK (which
    raises ``Exception(f"{Reason} \\n {Details}")`` in the orchestrator)."""
    failure = event.failure
    if task_name is None:
        reason = (f"{failure.error_type}: {failure.message}" if failure.error_type
                  else failure.message)
        return {"TaskScheduledId": event.task_scheduled_id, "Reason": reason,
                "Details": failure.details or ""}
    if isinstance(event, TaskFailed):
        reason, details = activity_failure(task_name, failure.error_type, failure.message,
                                           failure.details)
    else:
        reason = f"Orchestrator function '{task_name}' failed: {failure.message}"
        details = failure.details or ""
    return {"TaskScheduledId": event.task_scheduled_id, "Reason": reason, "Details": details}


def activity_failure(name: str, error_type: str, message: str, stack: str | None
                     ) -> tuple[str, str]:
    """An activity's failure as the Azure host reports it: the reason
    ``Activity function '<name>' failed:  <Type>: <message>`` (the Python worker reports
    ``<Type>: <message>``, which the host takes from its ``Result: Failure\\nException: ...``
    text with the space after the colon), and as details the host's serialized exception on one
    line of JSON, whose ``Message`` apps parse and whose inner exception carries the traceback."""
    worker_message = f"{error_type.rsplit('.', 1)[-1]}: {message}" if error_type else message
    friendly = f" {worker_message}"
    remote = f"Result: Failure\nException: {worker_message}\nStack: {stack or ''}"
    details = json.dumps({
        "$type": "System.Exception, System.Private.CoreLib",
        "ClassName": "System.Exception",
        "Message": friendly,
        "Data": None,
        "InnerException": {
            "$type": "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, "
                     "Microsoft.Azure.WebJobs.Script",
            "ClassName": "Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException",
            "Message": remote,
            "RemoteMessage": worker_message,
            "RemoteStackTrace": stack or "",
            "IsUserException": False,
        },
        "HelpURL": None,
        "StackTraceString": None,
        "RemoteStackTraceString": None,
        "RemoteStackIndex": 0,
        "ExceptionMethod": None,
        "HResult": -2146233088,
        "Source": None,
    }, separators=(",", ":"), ensure_ascii=False)
    return f"Activity function '{name}' failed: {friendly}", details


def encode_event(event: HistoryEvent, played: bool, task_name: str | None = None) -> str | None:
    """One event as the SDK's JSON text (see :func:`event_fields`)."""
    data = event_fields(event, played, task_name)
    return None if data is None else json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def event_fields(event: HistoryEvent, played: bool, task_name: str | None = None,
                 stamp: Callable[[float], str] = iso) -> dict[str, Any] | None:
    """One event as the SDK's JSON object, or None for events the SDK is not shown.
    ``task_name``: for a failure, the name of the activity or sub-orchestration that failed
    (its reason is then worded as the Azure host words it). ``stamp`` writes timestamps."""
    kind = type(event)
    if kind is OrchestratorStarted:  # the two every episode brings, the short way
        return {"EventType": 12, "EventId": -1, "IsPlayed": played,
                "Timestamp": stamp(event.timestamp)}
    if kind is TaskCompleted and isinstance(event, TaskCompleted):
        return {"EventType": 5, "EventId": -1, "IsPlayed": played,
                "Timestamp": stamp(event.timestamp),
                "TaskScheduledId": event.task_scheduled_id, "Result": event.result}
    number = _EVENT_TYPE_NUMBER.get(kind)
    if number is None:
        return None  # suspend/resume (held back instead), ContinueAsNew, ...
    data: dict[str, Any] = {"EventType": number, "EventId": -1, "IsPlayed": played,
                            "Timestamp": stamp(event.timestamp)}
    if isinstance(event, ExecutionStarted):
        data["Name"] = event.name
        data["Version"] = event.version or ""
        data["OrchestrationInstance"] = {"InstanceId": event.instance_id,
                                         "ExecutionId": event.execution_id}
        if event.parent_instance_id:
            data["ParentInstance"] = {
                "OrchestrationInstance": {"InstanceId": event.parent_instance_id,
                                          "ExecutionId": event.parent_execution_id},
                "TaskScheduleId": event.parent_task_id,
            }
    elif isinstance(event, TaskScheduled):
        data.update(EventId=event.event_id, Name=event.name, Input=event.input)
    elif isinstance(event, TaskCompleted | SubOrchestrationInstanceCompleted):
        data.update(TaskScheduledId=event.task_scheduled_id, Result=event.result)
    elif isinstance(event, TaskFailed | SubOrchestrationInstanceFailed):
        data.update(_failure_fields(event, task_name))
    elif isinstance(event, SubOrchestrationInstanceCreated):
        data.update(EventId=event.event_id, Name=event.name, InstanceId=event.instance_id,
                    Input=event.input)
    elif isinstance(event, TimerCreated):
        data.update(EventId=event.event_id, FireAt=iso(event.fire_at))
    elif isinstance(event, TimerFired):
        data.update(TimerId=event.timer_id, FireAt=iso(event.fire_at))
    elif isinstance(event, EventRaised):
        data.update(Name=event.name, Input=event.input)
    elif isinstance(event, EventSent):
        data.update(EventId=event.event_id, InstanceId=event.instance_id, Name=event.name,
                    Input=event.input)
    elif isinstance(event, ExecutionCompleted):
        data.update(OrchestrationStatus=event.status, Result=event.result)
    elif isinstance(event, ExecutionTerminated):
        data["Input"] = event.reason
    return data


def context_payload(
    history: Sequence[str],
    started: ExecutionStarted,
    *,
    replaying: bool,
) -> str:
    """The orchestration trigger's value (§8.1), from already-encoded history events.

    ``input`` is the stored input as a JSON value, as the host passes it: for an instance
    started by the Python client that is a string holding JSON text (its double encoding), for
    one started with a raw JSON body the value itself.
    """
    parts = [
        '{"history":[', ",".join(history), '],"input":', started.input or "null",
        ',"instanceId":', json.dumps(started.instance_id),
        ',"isReplaying":', "true" if replaying else "false",
        ',"parentInstanceId":', json.dumps(started.parent_instance_id),
        f',"upperSchemaVersion":{UPPER_SCHEMA_VERSION}',
        f',"upperSchemaVersionNew":{UPPER_SCHEMA_VERSION_NEW}',
        f',"defaultHttpAsyncRequestSleepTimeMillseconds":{HTTP_SLEEP_MS}}}',
    ]
    return "".join(parts)


def payload_fields(history: list[dict[str, Any]], started: ExecutionStarted, *,
                   replaying: bool) -> dict[str, Any]:
    """:func:`context_payload` as the JSON object the SDK reads it into (for a session,
    :mod:`durable.azure.session`, which builds the SDK's context from it directly)."""
    return {
        "history": history,
        "input": json.loads(started.input) if started.input else None,
        "instanceId": started.instance_id,
        "isReplaying": replaying,
        "parentInstanceId": started.parent_instance_id,
        "upperSchemaVersion": UPPER_SCHEMA_VERSION,
        "upperSchemaVersionNew": UPPER_SCHEMA_VERSION_NEW,
        "defaultHttpAsyncRequestSleepTimeMillseconds": HTTP_SLEEP_MS,
    }


# -- actions out -------------------------------------------------------------------------------


@dataclass(slots=True)
class SdkState:
    """The orchestrator's answer (§8.3); ``error`` is set when user code raised.

    ``first_id``: None when ``actions`` is the SDK's cumulative list (the protocol); else they
    are only the actions added since the last answer, the first numbered one taking this task
    ID (a live session's answer, :mod:`durable.azure.session`)."""

    is_done: bool
    actions: list[dict[str, Any]]
    first_id: int | None = None
    output: Any = None
    has_output: bool = False
    custom_status: Any = None
    has_custom_status: bool = False
    error: str | None = None


def parse_state(text: str) -> SdkState:
    """Read the SDK's JSON state (what the handle returned, or the exception's attachment)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"The orchestrator returned invalid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("actions"), list):
        raise ProtocolError("The orchestrator's answer has no actions list.")
    groups = data["actions"]
    if data.get("schemaVersion") is None:
        # V1 (an SDK older than the schema we offer): one list per episode, cumulative.
        actions = [action for group in groups for action in group]
    else:
        if len(groups) > 1:
            raise ProtocolError(
                f"Expected one cumulative action list, got {len(groups)} (schema "
                f"{data.get('schemaVersion')})."
            )
        actions = list(groups[0]) if groups else []
    return SdkState(
        is_done=bool(data.get("isDone")),
        actions=actions,
        output=data.get("output"),
        has_output="output" in data,
        custom_status=data.get("customStatus"),
        has_custom_status="customStatus" in data,
        error=data.get("error") or None,
    )


def state_from_exception(exc: BaseException) -> SdkState | None:
    """The state the SDK attaches to the exception it raises for a failing orchestrator."""
    message = str(exc)
    at = message.find(OUT_OF_PROC_LABEL)
    if at < 0:
        return None
    state = parse_state(message[at + len(OUT_OF_PROC_LABEL):])
    if state.error is None:
        state.error = message[:at]
    return state


@dataclass(slots=True)
class Work:
    """One piece of work the host owes the orchestration, under the SDK's task ID.

    ``action`` is the SDK's atomic action (for retries: the with-retry action). ``retry`` is
    None for the action itself, ``"timer"`` for a retry delay and ``"attempt"`` for a retry's
    next attempt; ``fire_at`` is the retry timer's due time.
    """

    task_id: int
    action: dict[str, Any]
    retry: str | None = None
    fire_at: float | None = None

    @property
    def kind(self) -> ActionType:
        return _action_type(self.action)


@dataclass(slots=True)
class Plan:
    work: list[Work] = field(default_factory=list)
    in_sync: bool = True  # False: the simulation could not follow the SDK (see plan_work)
    next_id: int = 0  # the task ID the SDK's next numbered action will take


def _flatten(actions: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for action in actions:
        kind = _action_type(action)
        if kind in _COMPOUND:
            yield from _flatten(action.get("compoundActions") or [])
        else:
            yield action


_ACTION_TYPES: dict[Any, ActionType] = {
    **{kind.value: kind for kind in ActionType}, **{kind.name: kind for kind in ActionType}}


def _action_type(action: dict[str, Any]) -> ActionType:
    raw = action.get("actionType")
    kind = _ACTION_TYPES.get(raw) if isinstance(raw, int | str) else None
    if kind is None:
        raise ProtocolError(f"Unknown action type {raw!r}.")
    return kind


def retry_interval(action: dict[str, Any]) -> float:
    options = action.get("retryOptions") or {}
    return max(0.0, float(options.get("firstRetryIntervalInMilliseconds") or 0) / 1000.0)


def retry_attempts(action: dict[str, Any]) -> int:
    options = action.get("retryOptions") or {}
    return max(1, int(options.get("maxNumberOfAttempts") or 1))


def has_retries(actions: list[dict[str, Any]]) -> bool:
    return any(_action_type(a) in _RETRIES for a in _flatten(actions))


def plan_work(actions: list[dict[str, Any]], history: Sequence[HistoryEvent],
              first_id: int | None = None) -> Plan:
    """Every piece of work the SDK's actions call for, under the task IDs the SDK assigned.

    ``history`` is what the SDK was shown this time (new events included), in that order.
    ``first_id``: when ``actions`` are only the newest ones (none of them retries), the task
    ID of the first numbered one; None for the cumulative list.
    """
    if first_id is not None or not has_retries(actions):
        plan = Plan(next_id=first_id or 0)
        for action in _flatten(actions):
            if _action_type(action) in _NUMBERED:
                plan.work.append(Work(plan.next_id, action))
                plan.next_id += 1
        return plan
    return _Simulation(actions).run(history)


# -- the retry-aware replay ---------------------------------------------------------------------

_RUNNING, _SUCCEEDED, _FAILED = 0, 1, 2


class _Node:
    """A task as the SDK models it: atomic, external event, all/any, or with-retry."""

    __slots__ = ("action", "attempts", "children", "kind", "parent", "pending", "state",
                 "waiting_timer")

    def __init__(self, kind: ActionType, action: dict[str, Any], parent: _Node | None) -> None:
        self.kind = kind
        self.action = action
        self.parent = parent
        self.state = _RUNNING
        self.children: list[_Node] = []
        self.pending = 0
        self.attempts = 1
        self.waiting_timer = False


class _Simulation:
    """Replays history over the action list as the SDK does, to place the retry IDs.

    As in the SDK, a yielded task's tree is built first and its atomic tasks then take their
    IDs depth-first; a completion that arrived before its task was yielded is applied when the
    task takes its ID (and an external event raised before anyone waited completes every later
    wait on that name, the SDK's behaviour).
    """

    def __init__(self, actions: list[dict[str, Any]]) -> None:
        self._actions = actions
        self._cursor = 0
        self._current: _Node | None = None
        self._registering = False
        self._next_id = 0
        self._now = 0.0
        self._open: dict[int, _Node] = {}
        self._deferred: dict[int, bool] = {}
        self._waiters: dict[str, list[_Node]] = {}
        self._raised: set[str] = set()
        self._calls: dict[str, _Node] = {}  # entity calls by request ID
        self._plan = Plan()

    def run(self, history: Sequence[HistoryEvent]) -> Plan:
        for event in history:
            if isinstance(event, OrchestratorStarted):
                self._now = max(self._now, event.timestamp)
            elif isinstance(event, ExecutionStarted):
                self._advance()
            elif isinstance(event, TaskCompleted | SubOrchestrationInstanceCompleted):
                self._complete_id(event.task_scheduled_id, True)
            elif isinstance(event, TaskFailed | SubOrchestrationInstanceFailed):
                self._complete_id(event.task_scheduled_id, False)
            elif isinstance(event, TimerFired):
                self._complete_id(event.timer_id, True)
            elif isinstance(event, EventSent):
                self._sent(event)
            elif isinstance(event, EventRaised):
                self._raise(event.name, event.input)
        if self._cursor < len(self._actions):
            # The SDK went further than we could follow (e.g. it waits on a task it yielded
            # before, which the action list does not show). Number the rest in order.
            self._plan.in_sync = False
            while self._cursor < len(self._actions):
                self._register(self._build(self._actions[self._cursor], None))
                self._cursor += 1
        self._plan.next_id = self._next_id
        return self._plan

    def _advance(self) -> None:
        """The SDK yields the next action once the one it waits on has completed."""
        while self._cursor < len(self._actions):
            action = self._actions[self._cursor]
            self._cursor += 1
            node = self._build(action, None)
            if _action_type(action) in _FIRE_AND_FORGET:
                self._register(node)
                continue
            self._current = node
            self._registering = True
            try:
                self._register(node)
            finally:
                self._registering = False
            if node.state == _RUNNING:
                return

    def _build(self, action: dict[str, Any], parent: _Node | None) -> _Node:
        kind = _action_type(action)
        node = _Node(kind, action, parent)
        if kind in _COMPOUND:
            node.children = [self._build(child, node)
                             for child in action.get("compoundActions") or []]
            node.pending = len(node.children)
            if not node.children:
                node.state = _SUCCEEDED
        elif kind in _RETRIES:
            node.children = [_Node(kind, action, node)]
            node.pending = 1
        return node

    def _register(self, node: _Node) -> None:
        kind = node.kind
        if kind in _COMPOUND or (kind in _RETRIES and node.children):
            for child in list(node.children):
                self._register(child)
        elif kind is ActionType.WaitForExternalEvent:
            name = str(node.action.get("externalEventName"))
            if name in self._raised:
                self._finish(node, True)
            else:
                self._waiters.setdefault(name, []).append(node)
        elif kind in _FIRE_AND_FORGET:
            self._plan.work.append(Work(self._next_id, node.action))
            self._next_id += 1
            node.state = _SUCCEEDED
        else:
            self._take_id(node, Work(self._next_id, node.action))

    def _take_id(self, node: _Node, work: Work) -> None:
        self._next_id += 1
        self._open[work.task_id] = node
        self._plan.work.append(work)
        deferred = self._deferred.pop(work.task_id, None)
        if deferred is not None:
            self._complete_id(work.task_id, deferred)

    def _complete_id(self, task_id: int, ok: bool) -> None:
        node = self._open.pop(task_id, None)
        if node is None:
            self._deferred[task_id] = ok
            return
        self._finish(node, ok)

    def _sent(self, event: EventSent) -> None:
        """An entity call's EventSent: the SDK re-keys its task by the request ID."""
        node = self._open.get(event.event_id)
        if node is None or node.kind is not ActionType.CallEntity:
            return
        try:
            request_id = json.loads(event.input or "null")["id"]
        except (ValueError, TypeError, KeyError):
            return
        del self._open[event.event_id]
        self._calls[str(request_id)] = node

    def _raise(self, name: str, payload: str | None = None) -> None:
        call = self._calls.pop(name, None)
        if call is not None:
            try:
                failed = "exceptionType" in json.loads(payload or "null")
            except (ValueError, TypeError):
                failed = False
            self._finish(call, not failed)
            return
        waiters = self._waiters.get(name)
        if waiters:
            self._finish(waiters.pop(), True)
        else:
            self._raised.add(name)

    def _finish(self, node: _Node, ok: bool) -> None:
        if node.state != _RUNNING:
            return
        node.state = _SUCCEEDED if ok else _FAILED
        parent = node.parent
        if parent is not None:
            self._child_done(parent, node)
        elif node is self._current and not self._registering:
            self._advance()

    def _child_done(self, parent: _Node, child: _Node) -> None:
        if parent.kind in _RETRIES:
            self._retry_step(parent, child)
            return
        if parent.state != _RUNNING:
            return
        parent.pending -= 1
        if parent.kind is ActionType.WhenAny:
            self._finish(parent, True)
        elif child.state == _FAILED:
            self._finish(parent, False)
        elif parent.pending <= 0:
            self._finish(parent, True)

    def _retry_step(self, retry: _Node, child: _Node) -> None:
        if retry.state != _RUNNING:
            return
        action = retry.action
        if retry.waiting_timer:
            retry.waiting_timer = False
            if retry.attempts >= retry_attempts(action):
                self._finish(retry, False)
                return
            retry.attempts += 1
            attempt = _Node(ActionType.CallActivity, action, retry)
            self._take_id(attempt, Work(self._next_id, action, retry="attempt"))
            return
        if child.state == _SUCCEEDED:
            self._finish(retry, True)
            return
        # A failed attempt: a timer before the next one (due at once after the last attempt,
        # as the Durable Task Framework's retry interceptor schedules it).
        delay = 0.0 if retry.attempts >= retry_attempts(action) else retry_interval(action)
        timer = _Node(ActionType.CreateTimer, action, retry)
        retry.waiting_timer = True
        self._take_id(timer, Work(self._next_id, action, retry="timer",
                                  fire_at=self._now + delay))


__all__ = [
    "ActionType",
    "Plan",
    "ProtocolError",
    "SdkState",
    "Work",
    "activity_failure",
    "context_payload",
    "encode_event",
    "event_fields",
    "has_retries",
    "iso",
    "iso_of",
    "parse_state",
    "payload_fields",
    "plan_work",
    "state_from_exception",
]
