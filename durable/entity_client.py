"""The entity half of ``DurableOrchestrationClient``: signal, read, list and clean entities.

``signal_entity`` and ``read_entity_state`` are the Azure SDK's; listing and cleaning are what
Durable Functions offers in .NET (the Python SDK has neither). Entities are stored as instances
whose ID is ``@name@key`` and whose input is the scheduler state (see
:mod:`durable.orchestration.entity_runtime`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durable import serialization
from durable.errors import FunctionNotFoundError, InvalidInputError
from durable.history import EventRaised, to_datetime, to_timestamp
from durable.ids import new_id
from durable.orchestration.entity_ids import (
    RELEASE_EVENT,
    REQUEST_EVENT,
    EntityId,
    EntityRequest,
    as_entity_id,
    release_json,
)
from durable.orchestration.entity_runtime import parse_scheduler_state
from durable.status import TERMINAL_STATUSES
from durable.storage.base import EntityQuery, InstanceRecord, Message

if TYPE_CHECKING:
    from durable.app import Registry
    from durable.storage.base import Backend
    from durable.worker.worker import Worker


@dataclass(slots=True)
class EntityStateResponse:
    """``read_entity_state``'s answer, as in the Azure SDK."""

    entity_exists: bool
    entity_state: Any = None


@dataclass(slots=True)
class DurableEntityStatus:
    """One entity in a listing."""

    entity_id: EntityId
    last_operation_time: datetime
    state: Any = None
    exists: bool = True
    locked_by: str | None = None
    pending_operations: int = 0  # waiting for the lock holder to release it

    def to_json(self, include_state: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "entityId": {"name": self.entity_id.name, "key": self.entity_id.key},
            "lastOperationTime": self.last_operation_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if include_state:
            data["state"] = self.state
        return data


@dataclass(slots=True)
class EntityQueryResult:
    entities: list[DurableEntityStatus]
    continuation_token: str | None


@dataclass(slots=True)
class CleanEntityStorageResult:
    empty_entities_removed: int
    orphaned_locks_released: int


def entity_status(record: InstanceRecord, include_state: bool = True) -> DurableEntityStatus:
    scheduler = parse_scheduler_state(record.input)
    lock = scheduler.get("lock") or {}
    exists = bool(scheduler.get("exists"))
    state = None
    if include_state and exists:
        state = serialization.loads(scheduler.get("state"))
    return DurableEntityStatus(
        entity_id=EntityId.from_instance_id(record.instance_id),
        last_operation_time=to_datetime(record.updated_at),
        state=state,
        exists=exists,
        locked_by=lock.get("owner"),
        pending_operations=len(scheduler.get("queue") or []),
    )


class EntityClient:
    """Mixed into :class:`durable.DurableOrchestrationClient`."""

    _backend: Backend
    _registry: Registry | None
    _worker: Worker | None

    async def signal_entity(
        self,
        entityId: EntityId | str,
        operation_name: str,
        operation_input: Any = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
        *,
        scheduled_time: datetime | timedelta | None = None,
    ) -> None:
        """Send a one-way operation to an entity (created on its first operation), at once or
        at ``scheduled_time``. Operations from one client arrive in the order sent."""
        target = as_entity_id(entityId)
        if not isinstance(operation_name, str):
            raise InvalidInputError("The operation name must be a string.")
        if self._registry is not None and self._registry.entity(target.name) is None:
            raise FunctionNotFoundError("entity", target.name)
        payload = serialization.dumps(operation_input, f"input of operation '{operation_name}'")
        now = time.time()
        visible_at = None
        if isinstance(scheduled_time, timedelta):
            visible_at = now + scheduled_time.total_seconds()
        elif isinstance(scheduled_time, datetime):
            visible_at = to_timestamp(scheduled_time)
        elif scheduled_time is not None:
            raise InvalidInputError("scheduled_time must be a datetime or a timedelta.")
        request = EntityRequest(new_id(), operation_name, signal=True, input=payload)
        event = EventRaised(timestamp=now, name=REQUEST_EVENT, input=request.to_json())
        await self._backend.send_entity_message(
            Message(target.instance_id, event, visible_at=visible_at))
        if self._worker is not None and visible_at is None:
            self._worker.hint(target.instance_id)

    async def read_entity_state(
        self,
        entityId: EntityId | str,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> EntityStateResponse:
        """Whether the entity exists, and its state (as of its last completed operation)."""
        target = as_entity_id(entityId)
        record = await self._backend.get_instance(target.instance_id)
        if record is None:
            return EntityStateResponse(False, None)
        status = entity_status(record)
        return EntityStateResponse(status.exists, status.state)

    async def list_entities(
        self,
        entity_name: str | None = None,
        last_operation_time_from: datetime | None = None,
        last_operation_time_to: datetime | None = None,
        *,
        include_state: bool = True,
        include_deleted: bool = False,
        page_size: int = 100,
        continuation_token: str | None = None,
    ) -> EntityQueryResult:
        """One page of entities, in ID order: those whose name starts with ``entity_name``
        (case-insensitive) and whose last operation is in the time range. Entities whose
        state was deleted are left out unless ``include_deleted``."""
        if entity_name is not None and not isinstance(entity_name, str):
            raise InvalidInputError("entity_name must be a string.")
        page = await self._backend.query_entities(EntityQuery(
            name_prefix=entity_name.lower() if entity_name else None,
            last_operation_from=_stamp(last_operation_time_from),
            last_operation_to=_stamp(last_operation_time_to),
            page_size=page_size,
            continuation_token=continuation_token,
        ))
        found = [entity_status(record, include_state) for record in page.instances]
        if not include_deleted:
            found = [e for e in found if e.exists or e.locked_by or e.pending_operations]
        return EntityQueryResult(found, page.continuation_token)

    async def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        """Remove entities that have no state, no lock and nothing waiting, and release locks
        held by orchestrations that no longer run (e.g. one purged while it held them)."""
        removed = released = 0
        token: str | None = None
        while True:
            page = await self._backend.query_entities(
                EntityQuery(page_size=500, continuation_token=token))
            for record in page.instances:
                status = entity_status(record, include_state=False)
                if release_orphaned_locks and status.locked_by:
                    if await self._release_if_orphaned(record):
                        released += 1
                    continue
                if (remove_empty_entities and not status.exists
                        and not status.pending_operations
                        and await self._backend.remove_entity(record.instance_id,
                                                              record.revision)):
                    removed += 1
            token = page.continuation_token
            if token is None:
                return CleanEntityStorageResult(removed, released)

    async def _release_if_orphaned(self, record: InstanceRecord) -> bool:
        lock = parse_scheduler_state(record.input).get("lock") or {}
        owner = lock.get("owner")
        holder = await self._backend.get_instance(owner) if owner else None
        if holder is not None and holder.status not in TERMINAL_STATUSES and (
            holder.execution_id == lock.get("execution")
        ):
            return False  # the holder still runs: not orphaned
        event = EventRaised(timestamp=time.time(), name=RELEASE_EVENT,
                            input=release_json(owner or "", lock.get("id") or ""))
        await self._backend.send_entity_message(Message(record.instance_id, event))
        if self._worker is not None:
            self._worker.hint(record.instance_id)
        return True


def _stamp(moment: datetime | None) -> float | None:
    return to_timestamp(moment) if moment is not None else None
