"""Drive an unmodified Azure SDK orchestrator through its out-of-process protocol.

:class:`SdkOrchestrationRuntime` has the interface the worker expects of a replay runtime
(:class:`durable.worker.cache.Runtime`). Each episode it shows the SDK the whole
history (that is the protocol: the SDK is stateless and replays from the start, as it does
under the Azure Functions host), reads back the cumulative action list, and turns every action
that history does not hold yet into durable's work: activities, timers, sub-orchestrations,
the with-retry timers and re-attempts a Durable Functions host performs, continue-as-new. It
then records, as the Durable Task Framework would, what it asked for.

Payload encodings follow the Azure host exactly (reference §8.6): activity inputs and results
are the SDK's JSON text as is; sub-orchestration and continue-as-new inputs are stored as the
JSON string the host would store (so the SDK's ``get_input`` decodes them as on Azure).

The parts the SDK never sees: suspension (events that arrive while suspended are held back
and shown after the resume), termination (no call), duplicates (a completion for a task that
is not open is dropped, as durable's own engine does), and the scheduling events it ignores
(TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated: the SDK matches completions by
its own task IDs, and parsing a history event's timestamp is most of its replay cost). Events
already shown are cached as encoded JSON, so an episode encodes only its new events.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from durable import serialization
from durable.azure.http_polling import HttpPolls
from durable.azure.plan import Work, has_retries, plan_work
from durable.azure.protocol import (
    ActionType,
    ProtocolError,
    SdkState,
    context_payload,
    encode_event,
    event_fields,
    parse_state,
    payload_fields,
    state_from_exception,
)
from durable.azure.session import SdkSession, stamp
from durable.errors import (
    FailureDetails,
    FunctionNotFoundError,
    InvalidInputError,
    NonDeterminismError,
)
from durable.history import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
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
from durable.ids import validate_instance_id
from durable.orchestration.actions import (
    Action,
    ContinueAsNewRequest,
    Decision,
    ScheduleActivity,
    ScheduleTimer,
    SendEvent,
    StartSubOrchestration,
)
from durable.orchestration.entity_ids import REQUEST_EVENT, EntityId, EntityRequest
from durable.orchestration.http_task import HTTP_ACTIVITY_NAME
from durable.status import OrchestrationRuntimeStatus as Status

log = logging.getLogger("durable.azure")

Invoke = Callable[[str], Any]
# The registered spelling of a function name (matched ignoring case), or None if unknown.
NameResolver = Callable[[str], str | None]

_SCHEDULING = (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent)
_COMPLETIONS = (TaskCompleted, TaskFailed, SubOrchestrationInstanceCompleted,
                SubOrchestrationInstanceFailed)
_CLOSING = (*_COMPLETIONS, TimerFired)
_FAILURES = (TaskFailed, SubOrchestrationInstanceFailed)
_DELIVERED = (*_CLOSING, EventRaised)  # held back while suspended
_ACTIVITIES = (ActionType.CallActivity, ActionType.CallActivityWithRetry)
_SUB_ORCHESTRATIONS = (ActionType.CallSubOrchestrator, ActionType.CallSubOrchestratorWithRetry)
_ENTITIES = (ActionType.CallEntity, ActionType.SignalEntity, ActionType.ScheduledSignalEntity)


# Request IDs are derived from the execution and the task ID, so every replay agrees.
_REQUEST_NAMESPACE = uuid.UUID("6f1c7d3e-2b4a-4f8e-9d61-3c2a5b7e8f90")


def _parse_fire_at(text: str) -> float:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class SdkOrchestrationRuntime:
    """One orchestration execution run by the Azure SDK's own replay code."""

    def __init__(
        self,
        invoke: Invoke,
        *,
        resolve_activity: NameResolver | None = None,
        resolve_orchestrator: NameResolver | None = None,
        default_version: str | None = None,
        session: tuple[Callable[..., Any], Any] | None = None,
        keep_session: bool = False,
    ) -> None:
        """``session``: the orchestrator function (and input type) behind ``invoke``, when the
        SDK can keep the execution alive between episodes (:mod:`durable.azure.session`);
        without it every episode is the protocol's full replay. The session ends when the
        orchestrator reads ``is_replaying``, unless ``keep_session`` (host.json's
        ``extendedSessionsEnabled: true``)."""
        self._invoke = invoke
        self._session = SdkSession(*session) if session is not None else None
        self._keep_session = keep_session
        self._fed = 0  # view events the session has been given
        self._next_task_id = 0  # the SDK's next task ID (sessions plan only new actions)
        self._full_plans = False  # retries: every plan needs the cumulative actions
        self._resolve_activity = resolve_activity
        self._resolve_orchestrator = resolve_orchestrator
        self._default_version = default_version
        self.started: ExecutionStarted | None = None
        self._view: list[HistoryEvent] = []  # what the SDK is shown, in the order it sees it
        self._played: list[str] = []  # encoded view events of past episodes (IsPlayed)
        self._scheduled: dict[int, HistoryEvent] = {}
        self._closed: set[int] = set()  # task IDs whose completion history holds
        self._suspended = False
        self._held: list[HistoryEvent] = []
        self._polls = HttpPolls()  # call_http's 202 pattern, done by the host
        self._outcome: Status | None = None
        self._reason: str | None = None
        self._now = 0.0

    # -- Runtime ------------------------------------------------------------------------------

    @property
    def is_done(self) -> bool:
        return self._outcome is not None

    def replay(self, history: Iterable[HistoryEvent]) -> None:
        """Take stored history (a cold start): nothing runs, nothing new is scheduled."""
        for event in history:
            self._accept(event)
        if self._session is None:
            self._mark_played()

    def run_episode(self, new_events: Iterable[HistoryEvent], now: float) -> Decision:
        mark = len(self._view)
        self._now = now
        began = OrchestratorStarted(timestamp=now)
        appended: list[HistoryEvent] = [began]
        self._accept(began)
        for event in new_events:
            if self._outcome is None and self._accept(event):
                appended.append(event)
        try:
            return self._decide(appended, now, mark)
        finally:
            if (self._session is not None and not self._keep_session
                    and self._session.replay_sensitive):
                # It read is_replaying: from now on full replays, which recompute what it
                # kept as Azure does (durable/azure/session.py).
                self._session = None
            if self._session is None:
                self._mark_played()  # the next call replays in full

    # -- history ------------------------------------------------------------------------------

    def _accept(self, event: HistoryEvent) -> bool:
        """Take one event into history; False for a duplicate that history must skip."""
        if type(event) is OrchestratorStarted:  # every episode's first: the short way
            self._view.append(event)
            return True
        if isinstance(event, ExecutionStarted):
            if self.started is not None:
                return False
            self.started = event
        elif isinstance(event, _SCHEDULING):
            self._scheduled[event.event_id] = event
            if isinstance(event, TaskScheduled | TimerCreated):
                self._polls.scheduled(event)
            if not isinstance(event, EventSent):
                # The SDK never reads scheduling events (it keys completions by the IDs it
                # assigned itself); not showing them saves it parsing a third of history.
                return True
        elif isinstance(event, _CLOSING):
            task_id = event.timer_id if isinstance(event, TimerFired) else event.task_scheduled_id
            scheduled = self._scheduled.get(task_id)
            expected = TimerCreated if isinstance(event, TimerFired) else (
                TaskScheduled if isinstance(event, TaskCompleted | TaskFailed)
                else SubOrchestrationInstanceCreated
            )
            if not isinstance(scheduled, expected) or task_id in self._closed:
                return False
            self._closed.add(task_id)
        elif isinstance(event, ExecutionSuspended):
            self._suspended = True
            return True
        elif isinstance(event, ExecutionResumed):
            if self._suspended:
                self._suspended = False
                held, self._held = self._held, []
                for shown in held:
                    self._show(shown)
            return True
        elif isinstance(event, ExecutionTerminated):
            self._outcome = Status.Terminated
            self._reason = event.reason
            return True
        elif isinstance(event, ExecutionCompleted):
            self._outcome = Status(event.status)
            return True
        elif isinstance(event, ContinueAsNew):
            return True
        if self._suspended and isinstance(event, _DELIVERED):
            self._held.append(event)  # shown to the SDK after the resume
        else:
            self._show(event)
        return True

    def _show(self, event: HistoryEvent) -> None:
        shown = self._polls.shown(event, self._now)
        if shown is not None:
            self._view.append(shown)

    def _task_name(self, event: HistoryEvent) -> str | None:
        if isinstance(event, TaskFailed | SubOrchestrationInstanceFailed):
            return getattr(self._scheduled.get(event.task_scheduled_id), "name", None)
        return None

    def _encode(self, event: HistoryEvent, played: bool) -> str | None:
        return encode_event(event, played, self._task_name(event))

    def _mark_played(self) -> None:
        for event in self._view[len(self._played):]:
            self._played.append(self._encode(event, True) or "")

    def _payload(self, mark: int) -> str:
        fragments = [f for f in self._played if f]
        for event in self._view[len(self._played):]:
            encoded = self._encode(event, False)
            if encoded:
                fragments.append(encoded)
        assert self.started is not None
        return context_payload(fragments, self.started, replaying=mark > 0)

    # -- deciding -----------------------------------------------------------------------------

    def _decide(self, appended: list[HistoryEvent], now: float, mark: int) -> Decision:
        if self._outcome is Status.Terminated:
            output = serialization.dumps(self._reason)
            appended.append(ExecutionCompleted(timestamp=now, status=Status.Terminated.value,
                                               result=output))
            return Decision(appended, [], Status.Terminated, output=output)
        if self.started is None:
            return self._failed(appended, now, NonDeterminismError(
                "History does not start with ExecutionStarted; the instance's history is "
                "corrupt."), [])
        if self._suspended:
            return Decision(appended, [], Status.Suspended)
        state, error = self._call_sdk(mark)
        if state is None:
            assert error is not None
            return self._failed(appended, now, error, [])
        try:
            actions, scheduling, continue_input = self._new_work(state)
        except (InvalidInputError, NonDeterminismError, ProtocolError) as exc:
            return self._failed(appended, now, exc, [])
        appended.extend(scheduling)
        custom = (serialization.dumps(state.custom_status, "custom status")
                  if state.has_custom_status else None)
        if state.error is not None:
            return self._failed(appended, now, error or RuntimeError(state.error), actions,
                                message=state.error, custom=custom)
        if state.is_done and continue_input is not None:
            appended.append(ContinueAsNew(timestamp=now, input=continue_input))
            return Decision(appended, actions, Status.ContinuedAsNew, custom_status=custom,
                            continue_as_new=ContinueAsNewRequest(continue_input))
        if state.is_done:
            try:
                output = serialization.dumps(state.output, "orchestration output")
            except InvalidInputError as exc:
                return self._failed(appended, now, exc, actions, custom=custom)
            appended.append(ExecutionCompleted(timestamp=now, status=Status.Completed.value,
                                               result=output))
            return Decision(appended, actions, Status.Completed, output=output,
                            custom_status=custom)
        return Decision(appended, actions, Status.Running, custom_status=custom)

    def _call_sdk(self, mark: int) -> tuple[SdkState | None, BaseException | None]:
        """Run the SDK; return its state (and, when user code raised, the user's error)."""
        try:
            if self._session is None:
                result = self._invoke(self._payload(mark))
            else:
                answer = self._ask(self._session, mark)
                if isinstance(answer, SdkState):
                    return answer, None
                result = answer
        except Exception as exc:  # the SDK raises for a failing orchestrator, state attached
            try:
                state = state_from_exception(exc)
            except ProtocolError as bad:
                return None, bad
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if state is None:
                return None, cause
            return state, cause
        if not isinstance(result, str):
            return None, TypeError(
                "An orchestrator function must return the SDK's JSON state; wrap the generator "
                f"function with df.Orchestrator.create (got {type(result).__name__})."
            )
        try:
            return parse_state(result), None
        except ProtocolError as exc:
            return None, exc

    def _ask(self, session: SdkSession, mark: int) -> SdkState | str:
        """The SDK's answer through the live session: the protocol's state JSON (a first call,
        a finished or failed execution, or one that retries), else just what is new."""
        if not session.started:
            self._fed = len(self._view)
            assert self.started is not None
            history = [fields for index, event in enumerate(self._view)
                       if (fields := event_fields(event, index < mark,
                                                  self._task_name(event), stamp)) is not None]
            return session.start(payload_fields(history, self.started, replaying=mark > 0))
        fresh = self._view[self._fed:]
        self._fed = len(self._view)
        session.feed([fields for event in fresh
                      if (fields := event_fields(
                          event, False,
                          self._task_name(event) if isinstance(event, _FAILURES) else None,
                          stamp)) is not None])
        if not self._full_plans:
            progress = session.progress()
            if progress is not None and not has_retries(progress.actions):
                return SdkState(progress.is_done, progress.actions, first_id=self._next_task_id,
                                output=progress.output, has_output=progress.has_output,
                                custom_status=progress.custom_status,
                                has_custom_status=progress.has_custom_status)
            self._full_plans = progress is not None
        return session.state_text()

    def _failed(
        self,
        appended: list[HistoryEvent],
        now: float,
        error: BaseException,
        actions: list[Action],
        *,
        message: str | None = None,
        custom: str | None = None,
    ) -> Decision:
        name = self.started.name if self.started else "?"
        text = message if message is not None else str(error)
        details = "".join(traceback.format_exception(error)) if error.__traceback__ else None
        failure = FailureDetails.from_exception(error, details)
        if message is not None and failure.message != message:
            failure = FailureDetails(failure.error_type, message, details)
        output = serialization.dumps(f"Orchestrator function '{name}' failed: {text}")
        appended.append(ExecutionCompleted(timestamp=now, status=Status.Failed.value,
                                           result=output, failure=failure))
        return Decision(appended, actions, Status.Failed, output=output, failure=failure,
                        custom_status=custom)

    def _new_work(
        self, state: SdkState
    ) -> tuple[list[Action], list[HistoryEvent], str | None]:
        """Durable actions and scheduling events for the work history does not hold yet."""
        if state.first_id is None and not self._full_plans and has_retries(state.actions):
            self._full_plans = True
        plan = plan_work(state.actions, self._view, state.first_id)
        self._next_task_id = plan.next_id
        if not plan.in_sync:
            log.warning("orchestration %s: could not follow the SDK's retries exactly; task IDs "
                        "after that point are assigned in order", self._instance_id)
        actions: list[Action] = []
        scheduling: list[HistoryEvent] = []
        continue_input: str | None = None
        for work in plan.work:
            kind = work.kind
            if kind is ActionType.ContinueAsNew:
                continue_input = serialization.dumps(work.action.get("input"))
                continue
            if kind is ActionType.WaitForExternalEvent:
                continue
            existing = self._scheduled.get(work.task_id)
            if existing is not None:
                self._check_replay(work, existing)
                continue
            made = self._schedule(work)
            if made is not None:
                actions.append(made[0])
                scheduling.append(made[1])
        if not state.is_done and state.error is None:
            for action, event in self._polls.work(self._now):
                actions.append(action)
                scheduling.append(event)
        for event in scheduling:
            self._accept(event)
        return actions, scheduling, continue_input

    @property
    def _instance_id(self) -> str:
        return self.started.instance_id if self.started else "?"

    def _schedule(self, work: Work) -> tuple[Action, HistoryEvent] | None:
        action, task_id, kind = work.action, work.task_id, work.kind
        now_event = self._now
        if work.retry == "timer":
            fire_at = work.fire_at if work.fire_at is not None else now_event
            return (ScheduleTimer(task_id, fire_at),
                    TimerCreated(timestamp=now_event, event_id=task_id, fire_at=fire_at))
        if kind is ActionType.CreateTimer:
            if action.get("isCanceled"):
                return None  # cancelled before it was ever scheduled
            fire_at = _parse_fire_at(str(action.get("fireAt")))
            return (ScheduleTimer(task_id, fire_at),
                    TimerCreated(timestamp=now_event, event_id=task_id, fire_at=fire_at))
        if kind in _ACTIVITIES:
            name = _resolve(self._resolve_activity, "activity", action)
            payload = _text(action.get("input"))
            return (ScheduleActivity(task_id, name, payload),
                    TaskScheduled(timestamp=now_event, event_id=task_id, name=name,
                                  input=payload))
        if kind in _SUB_ORCHESTRATIONS:
            return self._sub_orchestration(work, now_event)
        if kind in _ENTITIES:
            return self._entity_message(work, now_event)
        if kind is ActionType.CallHttp:
            request = _http_request(action.get("httpRequest") or {})
            payload = serialization.dumps(request)
            return (ScheduleActivity(task_id, HTTP_ACTIVITY_NAME, payload),
                    TaskScheduled(timestamp=now_event, event_id=task_id,
                                  name=HTTP_ACTIVITY_NAME, input=payload))
        raise ProtocolError(f"The action type {kind.name} is not supported.")

    def _sub_orchestration(self, work: Work, now_event: float) -> tuple[Action, HistoryEvent]:
        action, task_id = work.action, work.task_id
        name = _resolve(self._resolve_orchestrator, "orchestrator", action)
        assert self.started is not None
        child_id = action.get("instanceId")
        if child_id:
            validate_instance_id(child_id)
            if child_id in (self.started.instance_id, self.started.parent_instance_id):
                raise InvalidInputError(
                    f"A sub-orchestration cannot use its parent's instance ID '{child_id}'."
                )
        else:
            child_id = f"{self.started.execution_id}:{task_id}"
        version = action.get("version") or self._default_version
        # Stored as the JSON string the Durable host stores (the SDK's get_input decodes it).
        payload = serialization.dumps(_text(action.get("input")))
        return (StartSubOrchestration(task_id, name, child_id, payload, version),
                SubOrchestrationInstanceCreated(timestamp=now_event, event_id=task_id,
                                                name=name, instance_id=child_id, input=payload))

    def _entity_message(self, work: Work, now_event: float) -> tuple[Action, HistoryEvent]:
        """``call_entity`` / ``signal_entity``: a request to the entity, recorded as the
        EventSent the SDK reads (it re-keys a call's task by the request ``id`` in its input,
        and the entity's response comes back as an event named by that ID)."""
        action, task_id, kind = work.action, work.task_id, work.kind
        assert self.started is not None
        if kind is ActionType.ScheduledSignalEntity:
            raise ProtocolError("Scheduled entity signals are not part of the Python SDK.")
        target = EntityId.from_instance_id(str(action.get("instanceId")))
        operation = action.get("operation")
        if not isinstance(operation, str):  # the extension refuses only a missing name
            raise InvalidInputError("An entity operation needs a name.")
        request_id = str(uuid.uuid5(_REQUEST_NAMESPACE,
                                    f"{self.started.execution_id}:{task_id}"))
        request = EntityRequest(
            request_id, operation, signal=kind is ActionType.SignalEntity,
            # The host's encoding of the SDK's JSON text (its get_input decodes twice).
            input=serialization.dumps(_text(action.get("input"))),
            parent=self.started.instance_id, parent_execution=self.started.execution_id,
        ).to_json()
        return (SendEvent(task_id, target.instance_id, REQUEST_EVENT, request),
                EventSent(timestamp=now_event, event_id=task_id, instance_id=target.instance_id,
                          name=REQUEST_EVENT, input=request))

    def _check_replay(self, work: Work, existing: HistoryEvent) -> None:
        kind = work.kind
        if work.retry == "timer" or kind is ActionType.CreateTimer:
            expected: type[HistoryEvent] = TimerCreated
            name = None
        elif kind in _ACTIVITIES:
            expected, name = TaskScheduled, str(work.action.get("functionName"))
        elif kind is ActionType.CallHttp:
            expected, name = TaskScheduled, HTTP_ACTIVITY_NAME
        elif kind in _SUB_ORCHESTRATIONS:
            expected, name = SubOrchestrationInstanceCreated, str(work.action.get("functionName"))
        elif kind in _ENTITIES:
            expected, name = EventSent, None
        else:
            return
        actual_name = getattr(existing, "name", None)
        renamed = name is not None and (actual_name or "").casefold() != name.casefold()
        if not isinstance(existing, expected) or renamed:
            recorded = f"{type(existing).__name__}('{actual_name}')" if actual_name else (
                type(existing).__name__)
            wanted = f"{kind.name}('{name}')" if name else kind.name
            raise NonDeterminismError(
                f"Non-deterministic orchestrator: task #{work.task_id} was {recorded} in "
                f"history, but the code now asks for {wanted}.",
                expected=recorded, actual=wanted,
            )


def _resolve(resolver: NameResolver | None, kind: str, action: dict[str, Any]) -> str:
    """The registered spelling of the function an action names (names ignore case, as the
    Durable extension's do); FunctionNotFoundError if there is none."""
    name = str(action.get("functionName"))
    if resolver is None:
        return name
    resolved = resolver(name)
    if resolved is None:
        raise FunctionNotFoundError(kind, name)
    return resolved


def _text(value: Any) -> str:
    """An action's ``input``: the SDK's JSON text (``"null"`` when there is none)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _http_request(request: dict[str, Any]) -> dict[str, Any]:
    """The SDK's ``DurableHttpRequest`` as the built-in HTTP activity's input."""
    if request.get("tokenSource"):
        raise InvalidInputError("call_http: token_source (managed identity) is Azure-only.")
    content = request.get("content")
    return {
        "method": request.get("method") or "GET",
        "uri": request.get("uri"),
        "content": content if isinstance(content, str) or content is None else json.dumps(
            content),
        "headers": request.get("headers") or {},
    }


def runtime_factory(
    default_version: str | None = None,
    session: tuple[Callable[..., Any], Any] | None = None,
    keep_session: bool = False,
) -> Callable[..., SdkOrchestrationRuntime]:
    """The ``FunctionInfo.runtime_factory`` of an SDK orchestrator (``session``: see
    :class:`SdkOrchestrationRuntime`)."""

    def build(
        invoke: Invoke,
        *,
        resolve_activity: NameResolver | None = None,
        resolve_orchestrator: NameResolver | None = None,
    ) -> SdkOrchestrationRuntime:
        return SdkOrchestrationRuntime(
            invoke, resolve_activity=resolve_activity, resolve_orchestrator=resolve_orchestrator,
            default_version=default_version, session=session, keep_session=keep_session,
        )

    return build


__all__ = ["SdkOrchestrationRuntime", "runtime_factory"]
