"""How errors become HTTP responses, in one place for user routes and the management API.

Error bodies have Durable Functions' shape: ``{"Message": ...}``, plus ``ExceptionMessage`` and
``ExceptionType`` when an exception caused them (the Azure Python client reads
``ExceptionMessage`` from a 400). Stack traces are never sent.

The mapping is the Durable Functions one: bad input 400, unknown instance 404, an instance ID
in a non-overridable state 409 (Azure answers 500 there; see docs/singletons.md), a suspend of
a Suspended instance or a resume of one that is not Suspended 409 (Azure: an unhandled 500;
see docs/http-api.md), a finished instance 410, a body over the limit 413, a missing or wrong
key 401. Storage trouble says what it is (docs/reliability.md): 503 with ``Retry-After`` while
storage is unreachable, full or read-only (nothing of the request was stored; the same request
can simply be sent again), 500 when it is damaged.
"""

from __future__ import annotations

from durable.errors import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InstanceStatusConflictError,
    InvalidInputError,
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
)
from durable.http_model import HttpResponse, json_response

GENERIC_500 = "Something went wrong while processing your request"
STORAGE_RETRY_AFTER = "5"  # seconds, on a 503 for unavailable storage


class HttpError(Exception):
    """Raised inside the adapter to answer with ``status`` and a JSON error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class RequestTooLargeError(HttpError):
    """The request body is larger than the server's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


# Checked in order: the first matching class decides the status.
_STATUS_BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidInputError, 400),
    (InstanceNotFoundError, 404),
    (InstanceAlreadyExistsError, 409),
    (InstanceStatusConflictError, 409),
    (InstanceNotRunningError, 410),
    (StorageCorruptError, 500),
    (StorageError, 503),
)


def status_for(exc: BaseException) -> int | None:
    """The HTTP status a durable error maps to, or None for an unexpected exception."""
    if isinstance(exc, HttpError):
        return exc.status
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return status
    return None


def error_response(
    status: int,
    message: str,
    exc: BaseException | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body: dict[str, object] = {"Message": message}
    if exc is not None and not isinstance(exc, HttpError):
        body["ExceptionMessage"] = str(exc)
        body["ExceptionType"] = type(exc).__name__
        for attribute in ("instance_id", "status"):
            value = getattr(exc, attribute, None)
            if isinstance(value, str):
                key = "instanceId" if attribute == "instance_id" else "runtimeStatus"
                body[key] = value
    return json_response(body, status, headers)


def response_for(exc: BaseException) -> HttpResponse | None:
    """The error response for a durable error, or None if it is not one we map."""
    status = status_for(exc)
    if status is None:
        return None
    if isinstance(exc, HttpError):
        return error_response(status, exc.message, headers=exc.headers)
    if isinstance(exc, StorageError):
        headers = {"Retry-After": STORAGE_RETRY_AFTER} if status == 503 else None
        return error_response(status, _storage_summary(exc), exc, headers)
    if isinstance(exc, InstanceStatusConflictError):  # the generic 409 text would be wrong
        return error_response(status, str(exc), exc)
    return error_response(status, _summary(status), exc)


def _storage_summary(exc: StorageError) -> str:
    if isinstance(exc, StorageFullError):
        return "The storage is full; nothing of this request was stored"
    if isinstance(exc, StorageReadOnlyError):
        return "The storage is read-only; nothing of this request was stored"
    if isinstance(exc, StorageCorruptError):
        return "The storage is damaged"
    return "The storage is unavailable; try again later"


def _summary(status: int) -> str:
    return {
        400: "One or more of the arguments submitted is incorrect",
        404: "The orchestration instance was not found",
        409: "An orchestration instance with this ID already exists",
        410: "The orchestration instance has already finished",
    }.get(status, "The request failed")
