"""Entity identity and the messages entities exchange, as Durable Task shapes them.

An entity is addressed by ``EntityId(name, key)``; its instance ID (Durable Task's "scheduler
ID") is ``@name@key`` with the name lower-cased, so names are case-insensitive and keys are not.
Entities live in the same instance table as orchestrations; the ``@`` that orchestration IDs may
not start with keeps the two apart.

Messages travel as ``EventRaised`` events with JSON text inputs, the way Durable Task sends
them, so an orchestration's history of an entity call (``EventSent`` whose input holds the
request ``id``, then ``EventRaised`` named by that ID) is what the Durable Functions SDKs read:

- a **request** (event name ``op``) asks for an operation, or, with ``lockset`` and no ``op``,
  for a lock; lock requests travel the lockset in order, each entity forwarding to the next;
- a **release** (event name ``release``) gives a lock back;
- a **response** (event named by the request ID, to the caller's execution) carries an
  operation's result or failure, or tells that every lock of a lockset is held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from durable.errors import FailureDetails, InvalidInputError
from durable.serialization import compact_json

REQUEST_EVENT = "op"
RELEASE_EVENT = "release"
LOCK_GRANTED = "Lock Acquisition Completed"
_FORBIDDEN = frozenset("/\\#?")
_MAX_ID_LENGTH = 256


def _check_part(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"The entity {what} must be a non-empty string.")
    bad = next((ch for ch in value if ch in _FORBIDDEN or ord(ch) < 32 or ord(ch) == 127),
               None)
    if bad is not None:
        raise InvalidInputError(
            f"The entity {what} {value!r} contains {bad!r}; entity names and keys may not "
            "contain / \\ # ? or control characters."
        )
    return value


@dataclass(frozen=True, slots=True)
class EntityId:
    """An entity's identity: ``name`` (case-insensitive, kept lower-case) and ``key``."""

    name: str
    key: str

    def __init__(self, name: str, key: str) -> None:
        name = _check_part("name", name)
        if "@" in name:
            raise InvalidInputError(f"The entity name {name!r} may not contain '@'.")
        key = _check_part("key", key)
        if len(name) + len(key) + 2 > _MAX_ID_LENGTH:
            raise InvalidInputError(
                f"The entity ID '@{name}@{key}' is longer than {_MAX_ID_LENGTH} characters."
            )
        object.__setattr__(self, "name", name.lower())
        object.__setattr__(self, "key", key)

    @property
    def instance_id(self) -> str:
        """The ``@name@key`` instance ID the entity is stored under."""
        return f"@{self.name}@{self.key}"

    def __str__(self) -> str:
        return self.instance_id

    @classmethod
    def from_instance_id(cls, instance_id: str) -> EntityId:
        """Parse ``@name@key`` (Azure's ``get_entity_id``)."""
        if not isinstance(instance_id, str) or not instance_id.startswith("@"):
            raise InvalidInputError(f"{instance_id!r} is not an entity instance ID (@name@key).")
        name, sep, key = instance_id[1:].partition("@")
        if not sep:
            raise InvalidInputError(f"{instance_id!r} is not an entity instance ID (@name@key).")
        return cls(name, key)

    # Azure SDK spellings.
    @staticmethod
    def get_scheduler_id(entity_id: EntityId) -> str:
        return entity_id.instance_id

    @staticmethod
    def get_entity_id(scheduler_id: str) -> EntityId:
        return EntityId.from_instance_id(scheduler_id)

    @staticmethod
    def get_entity_id_url_path(entity_id: EntityId) -> str:
        return f"entities/{entity_id.name}/{entity_id.key}"


def is_entity_instance(instance_id: str) -> bool:
    return instance_id.startswith("@")


def as_entity_id(value: EntityId | str) -> EntityId:
    """Accept an ``EntityId`` or its ``@name@key`` text."""
    if isinstance(value, EntityId):
        return value
    if isinstance(value, str):
        return EntityId.from_instance_id(value)
    raise InvalidInputError(f"Expected an EntityId, not {type(value).__name__}.")


@dataclass(slots=True)
class EntityRequest:
    """An operation (or lock) request, as it travels between instances."""

    id: str
    operation: str | None
    signal: bool = False
    input: str | None = None
    parent: str | None = None  # the sender's instance ID (an orchestration, or an entity)
    parent_execution: str | None = None
    lockset: list[str] | None = None
    position: int = 0

    @property
    def is_lock(self) -> bool:
        return self.operation is None and bool(self.lockset)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "op": self.operation, "signal": self.signal}
        if self.input is not None:
            data["input"] = self.input
        if self.parent is not None:
            data["parent"] = self.parent
        if self.parent_execution is not None:
            data["parentExecution"] = self.parent_execution
        if self.lockset:
            data["lockset"] = self.lockset
            data["pos"] = self.position
        return data

    def to_json(self) -> str:
        return compact_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EntityRequest:
        operation = data.get("op")
        lockset = data.get("lockset")
        if not isinstance(data.get("id"), str) or not (
            isinstance(operation, str) or (operation is None and isinstance(lockset, list))
        ):
            raise ValueError("not an entity request")
        payload = data.get("input")
        return cls(
            id=data["id"],
            operation=operation,
            signal=bool(data.get("signal")),
            input=payload if isinstance(payload, str) else None,
            parent=data.get("parent"),
            parent_execution=data.get("parentExecution"),
            lockset=[str(x) for x in lockset] if isinstance(lockset, list) else None,
            position=int(data.get("pos") or 0),
        )

    @classmethod
    def from_json(cls, text: str | None) -> EntityRequest:
        data = json.loads(text or "null")
        if not isinstance(data, dict):
            raise ValueError("not an entity request")
        return cls.from_dict(data)


def release_json(parent: str, lock_id: str) -> str:
    return json.dumps({"parent": parent, "id": lock_id}, separators=(",", ":"))


def response_json(result: str | None = None, failure: FailureDetails | None = None) -> str:
    """A response: the operation's result (JSON text), or its failure."""
    data: dict[str, Any] = {"result": result}
    if failure is not None:
        data["result"] = json.dumps(failure.message)
        data["exceptionType"] = failure.error_type
        data["failureDetails"] = failure.to_json()
    return compact_json(data)


def lock_granted_json() -> str:
    return json.dumps({"result": json.dumps(LOCK_GRANTED)}, separators=(",", ":"))
