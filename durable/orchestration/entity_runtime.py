"""The entity executor: (scheduler state, a batch of messages) -> (new state, messages out).

Pure, like the orchestration replay engine: no I/O and no clock. The worker feeds it every
message waiting in an entity's inbox as one batch and commits the outcome in one transaction
(the new scheduler state, the consumed messages and everything sent), so each message changes
the entity exactly once.

The scheduler state, stored as the entity instance's input (Durable Task keeps it the same way,
as the input of an eternal orchestration), is a small JSON document::

    {"exists": bool, "state": <JSON text or null>,
     "lock": {"owner", "id", "execution"} or null,
     "queue": [requests waiting for the lock to be released],
     "released": [IDs of locks released before they were acquired]}

Rules:

- Operations run one at a time, in arrival order. One that raises is rolled back: its state
  changes and its signals are discarded, the caller gets the error, the next one runs.
- While an orchestration holds the entity's lock, only that orchestration's requests run;
  others wait in ``queue`` until it releases the lock.
- A lock request locks this entity and travels on to the next entity of its lockset (sorted by
  instance ID, so two orchestrations locking overlapping sets cannot deadlock); the last one
  tells the orchestration that it holds them all.
- A release that arrives before its lock request (the orchestration ended while acquiring) is
  remembered, so the late request does not lock the entity; it is passed along the lockset so
  every entity forgets it.
- The built-in operation ``delete`` removes the entity's state without calling the function.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from durable import serialization
from durable.errors import FailureDetails, FunctionNotFoundError
from durable.history import EventRaised, ExecutionStarted, HistoryEvent
from durable.ids import new_id
from durable.orchestration.actions import Decision, SendEvent
from durable.orchestration.entity_context import _UNSET, DurableEntityContext
from durable.orchestration.entity_ids import (
    RELEASE_EVENT,
    REQUEST_EVENT,
    EntityId,
    EntityRequest,
    lock_granted_json,
    response_json,
)
from durable.status import OrchestrationRuntimeStatus as Status

log = logging.getLogger("durable.entities")

EntityFunction = Callable[[DurableEntityContext], Any]
DELETE_OPERATION = "delete"
_MAX_RELEASED = 64


def empty_scheduler_state() -> dict[str, Any]:
    return {"exists": False, "state": None, "lock": None, "queue": [], "released": []}


def parse_scheduler_state(text: str | None) -> dict[str, Any]:
    """The scheduler state stored for an entity (an empty one for a new entity row)."""
    state = empty_scheduler_state()
    if text:
        try:
            stored = json.loads(text)
        except ValueError:
            stored = None
        if isinstance(stored, dict):
            state.update(stored)
    return state


class EntityRuntime:
    """One entity, as a worker holds it between batches (its scheduler state in memory)."""

    started: ExecutionStarted | None = None  # the worker's runtime interface; entities have none

    def __init__(self, fn: EntityFunction | None, entity_id: EntityId,
                 scheduler_state: str | None, *, builtin_delete: bool = True) -> None:
        """``builtin_delete``: whether the operation ``delete`` removes the state without
        calling ``fn`` (durable's entities, as .NET's class-based ones). An entity written for
        the Azure Python SDK gets ``delete`` like any other operation, as the Durable
        extension hands it to the SDK."""
        self._fn = fn
        self._builtin_delete = builtin_delete
        self.entity_id = entity_id
        self.scheduler = parse_scheduler_state(scheduler_state)
        self._value: Any = _UNSET  # the decoded state, while it is known to match "state"
        self.operations = 0  # run so far (for tests and metrics)

    @property
    def is_done(self) -> bool:
        return False

    def replay(self, history: Iterable[HistoryEvent]) -> None:
        """Entities keep no history; nothing to replay."""

    # -- a batch ----------------------------------------------------------------------------------

    def run_episode(self, new_events: Iterable[HistoryEvent], now: float) -> Decision:
        out: list[SendEvent] = []
        for event in new_events:
            if not isinstance(event, EventRaised):
                continue  # terminate/suspend/... do not apply to entities
            if event.name == RELEASE_EVENT:
                self._release(event.input, now, out)
                continue
            if event.name != REQUEST_EVENT:
                continue
            try:
                request = EntityRequest.from_json(event.input)
            except (ValueError, TypeError):
                log.warning("entity %s dropped a malformed request: %.200r",
                            self.entity_id, event.input)
                continue
            self._admit(request, now, out)
        text = serialization.compact_json(self.scheduler)
        return Decision([], list(out), Status.Running, entity_state=text)

    def _admit(self, request: EntityRequest, now: float, out: list[SendEvent]) -> None:
        lock = self.scheduler["lock"]
        if lock is not None and request.parent != lock["owner"]:
            self.scheduler["queue"].append(request.to_dict())
            return
        self._process(request, now, out)

    def _process(self, request: EntityRequest, now: float, out: list[SendEvent]) -> None:
        if request.is_lock:
            self._lock(request, out)
        else:
            self._operate(request, now, out)

    # -- locks ------------------------------------------------------------------------------------

    def _lock(self, request: EntityRequest, out: list[SendEvent]) -> None:
        released = self.scheduler["released"]
        if request.id in released:
            released.remove(request.id)  # its orchestration gave up before it arrived
        else:
            self.scheduler["lock"] = {"owner": request.parent, "id": request.id,
                                      "execution": request.parent_execution}
        lockset = request.lockset or []
        following = request.position + 1
        if following < len(lockset):
            onward = EntityRequest(request.id, None, parent=request.parent,
                                   parent_execution=request.parent_execution,
                                   lockset=lockset, position=following)
            out.append(SendEvent(None, lockset[following], REQUEST_EVENT, onward.to_json()))
        elif request.parent is not None:
            out.append(SendEvent(None, request.parent, request.id, lock_granted_json(),
                                 execution_id=request.parent_execution))

    def _release(self, payload: str | None, now: float, out: list[SendEvent]) -> None:
        try:
            message = json.loads(payload or "null")
            owner, lock_id = message["parent"], message["id"]
        except (ValueError, TypeError, KeyError):
            log.warning("entity %s dropped a malformed release: %.200r", self.entity_id, payload)
            return
        lock = self.scheduler["lock"]
        if lock is None or lock["id"] != lock_id or lock["owner"] != owner:
            released = self.scheduler["released"]
            if lock_id not in released:
                released.append(lock_id)
                del released[:-_MAX_RELEASED]
            return
        self.scheduler["lock"] = None
        waiting, self.scheduler["queue"] = self.scheduler["queue"], []
        for data in waiting:
            self._admit(EntityRequest.from_dict(data), now, out)

    # -- operations -------------------------------------------------------------------------------

    def _operate(self, request: EntityRequest, now: float, out: list[SendEvent]) -> None:
        self.operations += 1
        scheduler = self.scheduler
        operation = request.operation or ""
        failure: FailureDetails | None = None
        result_text: str | None = None
        if operation == DELETE_OPERATION and (self._builtin_delete or self._fn is None):
            scheduler["exists"], scheduler["state"] = False, None
            self._value = _UNSET
            result_text = "null"
        elif self._fn is None:
            failure = FailureDetails.from_exception(FunctionNotFoundError(
                "entity", self.entity_id.name))
        else:
            context = DurableEntityContext(
                self.entity_id, operation, request.input, scheduler["state"],
                bool(scheduler["exists"]), now, self._value,
            )
            try:
                returned = self._fn(context)
                state_text, exists, result_text = context._finish(returned)
            except Exception as exc:
                failure = FailureDetails.from_exception(exc, "".join(
                    traceback.format_exception(exc)))
                self._value = _UNSET  # the object may have been changed in place: re-read
            else:
                scheduler["state"], scheduler["exists"] = state_text, exists
                self._value = context._state if exists else _UNSET
                for signal in context.signals:
                    message = EntityRequest(_new_request_id(), signal.operation, signal=True,
                                            input=signal.input,
                                            parent=self.entity_id.instance_id)
                    out.append(SendEvent(None, signal.target.instance_id, REQUEST_EVENT,
                                         message.to_json(), visible_at=signal.visible_at))
        if failure is not None and request.signal:
            log.warning("operation '%s' of entity %s failed: %s: %s", operation,
                        self.entity_id, failure.error_type, failure.message)
        if not request.signal and request.parent is not None:
            out.append(SendEvent(None, request.parent, request.id,
                                 response_json(result_text, failure),
                                 execution_id=request.parent_execution))

    # -- reading the state (client side) ----------------------------------------------------------

    @property
    def state(self) -> Any:
        return serialization.loads(self.scheduler["state"]) if self.scheduler["exists"] else None


def _new_request_id() -> str:
    # Entities are not replayed, so their requests need no deterministic IDs.
    return new_id()
