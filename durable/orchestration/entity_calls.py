"""Entities from an orchestrator: ``call_entity``, ``signal_entity`` and critical sections.

Each call is an ``EventSent`` in history (with a sequence number, like any scheduled work) and a
message to the entity; a call's response arrives as an ``EventRaised`` named by the request's
ID, which is derived from the execution ID and the sequence number, so it is the same on every
replay. See :mod:`durable.orchestration.entity_ids` for the message shapes.

Critical sections follow Durable Task's rules::

    with (yield context.lock([account_a, account_b])):
        balance = yield context.call_entity(account_a, "get")
        ...

- ``lock`` asks every entity of the set for its lock, in one global order (no deadlocks); the
  task completes when all are held, with a :class:`CriticalSection`.
- While held, only this orchestration's operations reach those entities.
- The locks are released when the ``with`` block exits, or when the orchestration completes,
  fails, is terminated or continues as new.
- Inside a section: no nested ``lock``, ``call_entity`` only on locked entities, no
  sub-orchestrations. Yielding the same lock task twice is an error.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durable import serialization
from durable.errors import FailureDetails, InvalidInputError, TaskFailedError
from durable.history import EventSent
from durable.orchestration.actions import SendEvent
from durable.orchestration.decoding import decode_payload
from durable.orchestration.entity_context import _due
from durable.orchestration.entity_ids import (
    RELEASE_EVENT,
    REQUEST_EVENT,
    EntityId,
    EntityRequest,
    as_entity_id,
    release_json,
)
from durable.orchestration.tasks import AtomicTask, TaskBase

if TYPE_CHECKING:
    from durable.orchestration.replay_state import ReplayState

_REQUEST_NAMESPACE = uuid.UUID("0b3a3a3c-51c2-4c4e-9a7a-8c1f3d3e6f21")


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(_REQUEST_NAMESPACE, name))`` without building UUID objects (one per
    entity call; the UUID class made it a visible share of an episode)."""
    digest = bytearray(hashlib.sha1(_REQUEST_NAMESPACE.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class EntityCallTask(AtomicTask):
    """``call_entity``: completed by the entity's response (its ID is the request ID)."""

    __slots__ = ()


class LockTask(AtomicTask):
    """``lock``: completed with a :class:`CriticalSection` once every lock is held."""

    __slots__ = ("yielded",)

    def __init__(self, task_id: str, description: str) -> None:
        super().__init__(task_id, description)
        self.yielded = False


class CriticalSection:
    """The locks an orchestration holds; leaving the ``with`` block releases them."""

    def __init__(self, state: EntityCallState, lockset: list[EntityId]) -> None:
        self._state = state
        self.entities = lockset

    def __enter__(self) -> CriticalSection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._state.release(self)  # exceptions pass on


class _LockState:
    __slots__ = ("lock_id", "lockset", "section")

    def __init__(self, lock_id: str, lockset: list[EntityId]) -> None:
        self.lock_id = lock_id
        self.lockset = lockset
        self.section: CriticalSection | None = None  # set once every lock is held


class EntityCallState:
    """The engine's side of entities: requests waiting for answers, the lock being acquired
    or held. Part of :class:`~durable.orchestration.replay_state.ReplayState`."""

    def __init__(self, state: ReplayState) -> None:
        self._state = state
        self._calls: dict[str, AtomicTask] = {}
        self.lock: _LockState | None = None

    @property
    def in_section(self) -> bool:
        return self.lock is not None and self.lock.section is not None

    def request_id(self, task_id: int) -> str:
        """Deterministic: the same on every replay of this execution (and of histories
        written by earlier versions: it is the UUID5 of ``execution_id:task_id``)."""
        return uuid5_text(f"{self._state.execution_id}:{task_id}")

    def send(self, task_id: int, instance_id: str, message: str, *,
             name: str = REQUEST_EVENT, visible_at: float | None = None) -> None:
        action = SendEvent(task_id, instance_id, name, message, visible_at=visible_at)
        event = EventSent(timestamp=self._state.now, event_id=task_id, instance_id=instance_id,
                          name=name, input=message)
        self._state.schedule_message(task_id, action, event)

    def expect(self, request_id: str, task: AtomicTask) -> None:
        self._calls[request_id] = task

    def answer(self, name: str, payload: str | None) -> bool:
        """Deliver a response if ``name`` is one of our request IDs; False otherwise."""
        task = self._calls.pop(name, None)
        if task is None:
            return False
        if isinstance(task, LockTask):
            lock = self.lock
            if lock is not None and lock.lock_id == name:
                lock.section = CriticalSection(self, lock.lockset)
                task._set_value(lock.section)
            return True
        try:
            response = json.loads(payload or "null")
            result = response.get("result")
        except (ValueError, AttributeError):
            response, result = {}, None
        error_type = response.get("exceptionType") if isinstance(response, dict) else None
        if error_type:
            details = response.get("failureDetails")
            failure = (FailureDetails.from_json(details) if isinstance(details, dict)
                       else FailureDetails(str(error_type), str(result)))
            task._set_exception(TaskFailedError(
                f"{task.description} failed: {failure.error_type}: {failure.message}",
                failure, task.description))
            return True
        task._set_value(decode_payload(result, f"result of {task.description}"))
        return True

    def release(self, section: CriticalSection | None = None) -> None:
        """Leave the critical section (its ``with`` block ended): one release per entity."""
        lock = self.lock
        if lock is None or (section is not None and lock.section is not section):
            return
        self.lock = None
        for entity in lock.lockset:
            self.send(self._state.next_id(), entity.instance_id,
                      release_json(self._state.instance_id, lock.lock_id), name=RELEASE_EVENT)

    def releases_at_end(self) -> list[SendEvent]:
        """The orchestration ended holding (or acquiring) locks: release every one. A lock
        still being acquired is released too; the entities remember it (see entity_runtime)."""
        lock, self.lock = self.lock, None
        if lock is None:
            return []
        message = release_json(self._state.instance_id, lock.lock_id)
        return [SendEvent(None, e.instance_id, RELEASE_EVENT, message) for e in lock.lockset]

    def check_yield(self, task: TaskBase) -> InvalidInputError | None:
        if not isinstance(task, LockTask):
            return None
        if task.yielded:
            return InvalidInputError(f"{task.description} was yielded twice; yield it once.")
        task.yielded = True
        return None


class EntityCalls:
    """The entity API of :class:`~durable.orchestration.context.DurableOrchestrationContext`
    (a mixin over its replay state)."""

    _state: ReplayState

    def call_entity(self, entity_id: EntityId | str, operation_name: str,
                    operation_input: Any = None) -> EntityCallTask:
        """Run an operation on an entity; yield the task for its result. A failed operation
        raises ``TaskFailedError`` naming the entity and the operation."""
        target = as_entity_id(entity_id)
        _check_operation(operation_name)
        entities = self._state.entities
        lock = entities.lock
        if entities.in_section and lock is not None and target not in lock.lockset:
            raise InvalidInputError(
                f"call_entity('{target}') inside a critical section: only the locked entities "
                f"({', '.join(str(e) for e in lock.lockset)}) can be called there."
            )
        payload = serialization.dumps(operation_input, f"input of operation '{operation_name}'")
        task_id = self._state.next_id()
        request_id = entities.request_id(task_id)
        task = EntityCallTask(request_id, f"call_entity('{target}', '{operation_name}')")
        request = EntityRequest(request_id, operation_name, input=payload,
                                parent=self._state.instance_id,
                                parent_execution=self._state.execution_id)
        entities.send(task_id, target.instance_id, request.to_json())
        entities.expect(request_id, task)
        return task

    def signal_entity(self, entity_id: EntityId | str, operation_name: str,
                      operation_input: Any = None,
                      scheduled_time: datetime | timedelta | None = None) -> None:
        """Send a one-way operation to an entity (now, or at ``scheduled_time``)."""
        target = as_entity_id(entity_id)
        _check_operation(operation_name)
        payload = serialization.dumps(operation_input, f"input of operation '{operation_name}'")
        entities = self._state.entities
        task_id = self._state.next_id()
        request = EntityRequest(entities.request_id(task_id), operation_name, signal=True,
                                input=payload, parent=self._state.instance_id,
                                parent_execution=self._state.execution_id)
        entities.send(task_id, target.instance_id, request.to_json(),
                      visible_at=_due(scheduled_time, self._state.now))

    def lock(self, entities: list[EntityId | str]) -> LockTask:
        """Acquire the locks of ``entities``; yield the task for a :class:`CriticalSection`."""
        state = self._state.entities
        if state.lock is not None:
            what = "inside a critical section" if state.in_section else "while a lock is pending"
            raise InvalidInputError(f"lock() {what}: critical sections cannot be nested.")
        if not entities:
            raise InvalidInputError("lock() needs at least one entity.")
        lockset = sorted({as_entity_id(e) for e in entities}, key=lambda e: e.instance_id)
        task_id = self._state.next_id()
        lock_id = state.request_id(task_id)
        task = LockTask(lock_id, f"lock({', '.join(str(e) for e in lockset)})")
        request = EntityRequest(lock_id, None, parent=self._state.instance_id,
                                parent_execution=self._state.execution_id,
                                lockset=[e.instance_id for e in lockset])
        state.send(task_id, lockset[0].instance_id, request.to_json())
        state.expect(lock_id, task)
        state.lock = _LockState(lock_id, lockset)
        return task

    @property
    def is_locked(self) -> bool:
        """True inside a critical section (every lock held)."""
        return self._state.entities.in_section

    @property
    def locked_entities(self) -> list[EntityId]:
        lock = self._state.entities.lock
        return list(lock.lockset) if lock is not None and lock.section is not None else []

    def _check_not_in_section(self, what: str) -> None:
        if self._state.entities.in_section:
            raise InvalidInputError(f"{what} is not allowed inside a critical section.")


def _check_operation(name: object) -> None:
    # An empty name is a name (the Durable extension refuses only a missing one).
    if not isinstance(name, str):
        raise InvalidInputError("The operation name must be a string.")
