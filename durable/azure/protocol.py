"""The Azure SDK's out-of-process orchestrator protocol, as pure functions (reference §8).

Two directions:

- **History in.** :func:`encode_event` turns a durable history event into the Durable Task
  Framework JSON the SDK's ``DurableOrchestrationContext`` reads (PascalCase, numeric
  ``EventType``, ISO ``Timestamp``, ``EventId``, ``IsPlayed``), and :func:`context_payload`
  wraps the history in the trigger payload (§8.1).
- **Actions out.** :func:`parse_state` reads what ``Orchestrator.create(fn)`` returned (§8.3),
  or the state the SDK attached to the exception it raised.

Where the SDK's actions fall under its own task IDs is :mod:`durable.azure.plan`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


__all__ = [
    "ActionType",
    "ProtocolError",
    "SdkState",
    "activity_failure",
    "context_payload",
    "encode_event",
    "event_fields",
    "iso",
    "iso_of",
    "parse_state",
    "payload_fields",
    "state_from_exception",
]
