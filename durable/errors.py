"""Every error `durable` raises on purpose derives from :class:`DurableError`.

The tree::

    DurableError
    ├── InvalidInputError (also ValueError)      bad argument from the caller
    │   ├── InvalidInstanceIdError                empty, > 256 chars, '@'-prefixed, / \\ # ?
    │   ├── FunctionNotFoundError                 no orchestrator/activity/entity of that name
    │   └── SerializationError (also TypeError)   a value that is not JSON-serializable
    │       └── DeserializationError              a stored value that cannot be decoded
    ├── InstanceAlreadyExistsError                start_new of an ID in a non-overridable state
    ├── InstanceNotFoundError                     no instance with that ID
    ├── InstanceNotRunningError                   the instance already finished (HTTP 410)
    ├── InstanceNotFailedError                    rewind of an instance that did not fail
    ├── InstanceStatusConflictError               suspend of a Suspended, resume of a non-Suspended
    ├── VersionMismatchError                      the instance's version is not this worker's
    ├── TaskFailedError                           an activity or sub-orchestration failed
    ├── NonDeterminismError                       replayed code diverged from history
    ├── OrchestrationTimeoutError (also TimeoutError)   wait_for_completion gave up
    ├── EventTimeoutError (also TimeoutError)   wait_for_external_event(timeout=) expired
    └── StorageError                              the backend failed (I/O, connection, schema)
        ├── SchemaVersionError                    the store was written by a newer version
        ├── StorageFullError                      the disk (or database quota) is full
        ├── StorageReadOnlyError                  the store cannot be written (permissions, ro)
        └── StorageCorruptError                   the store is damaged or not a database

The class docstring's first line is the default message, so ``raise InstanceNotFoundError()``
still says something useful.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DurableError(Exception):
    """A durable error occurred."""

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            message = (type(self).__doc__ or "").strip().splitlines()[0]
        super().__init__(message)
        self.message = message


class InvalidInputError(DurableError, ValueError):
    """An argument is not valid."""


class InvalidInstanceIdError(InvalidInputError):
    """The instance ID is not valid."""


class FunctionNotFoundError(InvalidInputError):
    """No function with that name is registered."""

    def __init__(self, kind: str, name: str, hint: str | None = None) -> None:
        message = f"The {kind} function '{name}' doesn't exist."
        super().__init__(f"{message} {hint}" if hint else message)
        self.kind = kind
        self.name = name


class SerializationError(InvalidInputError, TypeError):
    """A value could not be serialized to JSON."""


class DeserializationError(SerializationError):
    """A stored value could not be decoded."""


class InstanceAlreadyExistsError(DurableError):
    """An orchestration instance with that ID already exists in a non-overridable state."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"An orchestration instance with the ID '{instance_id}' already exists "
            f"with status {status}."
        )
        self.instance_id = instance_id
        self.status = status


class InstanceNotFoundError(DurableError):
    """No orchestration instance has that ID."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"No orchestration instance with the ID '{instance_id}' was found.")
        self.instance_id = instance_id


class InstanceNotRunningError(DurableError):
    """The orchestration instance is no longer running."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"The orchestration instance '{instance_id}' is not running (status {status})."
        )
        self.instance_id = instance_id
        self.status = status


class InstanceNotFailedError(DurableError):
    """Only a Failed orchestration instance can be rewound."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"The orchestration instance '{instance_id}' cannot be rewound: only Failed "
            f"instances can, and it is {status}."
        )
        self.instance_id = instance_id
        self.status = status


class InstanceStatusConflictError(DurableError):
    """The operation does not apply to the orchestration instance's current status.

    Raised for a suspend of an instance that is already Suspended and for a resume of one that
    is not Suspended, as Durable Functions refuses them (HTTP 409 in durable's management API).
    ``operation`` is the refused verb, ``status`` the instance's stored runtime status.
    """

    _WHO_CAN = {
        "suspend": "only a Running or Pending instance can be suspended",
        "resume": "only a Suspended instance can be resumed",
    }

    def __init__(self, instance_id: str, status: str, operation: str) -> None:
        message = (f"Cannot {operation} the orchestration instance '{instance_id}' because it "
                   f"is {status}")
        hint = self._WHO_CAN.get(operation)
        super().__init__(f"{message}; {hint}." if hint else f"{message}.")
        self.instance_id = instance_id
        self.status = status
        self.operation = operation


class VersionMismatchError(DurableError):
    """The orchestration's version cannot run on this worker."""

    def __init__(self, instance_id: str, version: str | None, worker_version: str | None,
                 strategy: str) -> None:
        super().__init__(
            f"The orchestration instance '{instance_id}' is version {version or '(none)'}, "
            f"which a worker of version {worker_version or '(none)'} does not run "
            f"(version match strategy {strategy})."
        )
        self.instance_id = instance_id
        self.version = version
        self.worker_version = worker_version


@dataclass(frozen=True, slots=True)
class FailureDetails:
    """What went wrong in a task or an orchestration, in a form that survives storage."""

    error_type: str
    message: str
    details: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "message": self.message, "details": self.details}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FailureDetails:
        return cls(data.get("errorType") or "Error", data.get("message") or "", data.get("details"))

    @classmethod
    def from_exception(cls, exc: BaseException, details: str | None = None) -> FailureDetails:
        """The failure an exception describes. Text that UTF-8 cannot hold (a lone surrogate
        from a file name in the message or traceback) is escaped, so the failure can always
        be stored and shown."""
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else (
            f"{kind.__module__}.{kind.__qualname__}"
        )
        return cls(name, _printable(str(exc)), _printable(details) if details else details)


class TaskFailedError(DurableError):
    """A task failed."""

    def __init__(self, message: str, failure: FailureDetails, task_name: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        self.task_name = task_name

    @property
    def error_type(self) -> str:
        return self.failure.error_type

    @property
    def details(self) -> str | None:
        return self.failure.details


class NonDeterminismError(DurableError):
    """The orchestrator did not replay the same way it ran."""

    def __init__(self, message: str, expected: str | None = None, actual: str | None = None):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class OrchestrationTimeoutError(DurableError, TimeoutError):
    """The orchestration did not finish in time."""


class EventTimeoutError(DurableError, TimeoutError):
    """No event arrived before the timeout."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(
            f"wait_for_external_event('{name}') timed out after {timeout:g} seconds."
        )
        self.name = name
        self.timeout = timeout


class StorageError(DurableError):
    """The storage backend failed."""


class SchemaVersionError(StorageError):
    """The store's schema is newer than this version of durable understands."""


class StorageFullError(StorageError):
    """The storage is full (no space left on the disk, or a database size limit)."""


class StorageReadOnlyError(StorageError):
    """The storage is read-only (file or directory permissions, a read-only mount or server)."""


class StorageCorruptError(StorageError):
    """The storage is damaged: not a database, or a malformed database image."""


def _printable(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
