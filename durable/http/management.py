"""The Durable Functions management API under ``/runtime/webhooks/durabletask``.

Each handler parses the request, calls :class:`durable.DurableOrchestrationClient`, and renders
the result with the routes, query parameters, status codes, headers and JSON of Durable
Functions (reference §4; the deliberate differences are listed in docs/http-api.md). Errors are
raised as exceptions and turned into responses by :mod:`durable.http.errors`.

Routing is a literal table over path segments taken from the *raw* path, each segment decoded
on its own (by :mod:`durable.http.app`), so an instance ID containing ``%2F`` stays one
segment: starting it is a 400 (bad ID), looking it up a 404. Literal segments match
case-insensitively, trailing slashes are ignored, and an unknown route or verb is a 404, as in
Durable Functions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from durable.client import DurableOrchestrationClient
from durable.errors import (
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    OrchestrationTimeoutError,
)
from durable.http.errors import HttpError
from durable.http.openapi import openapi_document
from durable.http_model import HttpResponse, json_response
from durable.ids import validate_instance_id
from durable.management_urls import (
    STATUS_RETRY_AFTER,
    check_status_response,
    finished_response,
    settings_of,
)
from durable.status import OrchestrationRuntimeStatus as Status

CONTINUATION_HEADER = "x-ms-continuation-token"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_WAIT_SECONDS = 3600.0

Handler = Callable[["Call"], Awaitable[HttpResponse]]


@dataclass(slots=True)
class Call:
    """One management request: the Starlette request, path values and lower-cased query."""

    request: Request
    client: DurableOrchestrationClient
    path: dict[str, str]
    query: dict[str, list[str]]

    def arg(self, name: str) -> str | None:
        """The last value of query parameter ``name`` (names are case-insensitive)."""
        values = self.query.get(name.lower())
        return values[-1] if values else None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        lowered = raw.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise HttpError(400, f"Query parameter '{name}' must be true or false, not {raw!r}.")

    @property
    def instance_id(self) -> str:
        return self.path["instanceId"]


# -- parsing helpers ----------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """The raw JSON value of a body (no envelope, no double encoding); empty means null.

    Strict JSON: ``NaN`` and ``Infinity`` are refused, so every stored value can be given back
    as standard JSON.
    """
    if not body.strip():
        return None
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise HttpError(400, f"Invalid JSON content: {exc}") from None


def parse_time(call: Call, name: str) -> datetime | None:
    raw = call.arg(name)
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(
            400, f"Query parameter '{name}' is not a date and time (ISO 8601): {raw!r}."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment.timestamp()
    except (OverflowError, ValueError, OSError):
        raise HttpError(400, f"Query parameter '{name}' is out of range: {raw!r}.") from None
    return moment


def _parse_statuses(call: Call) -> list[Status] | None:
    names = [
        part.strip()
        for value in call.query.get("runtimestatus", [])
        for part in value.split(",")
        if part.strip()
    ]
    if not names:
        return None
    by_name = {status.value.lower(): status for status in Status}
    statuses: list[Status] = []
    for name in names:
        status = by_name.get(name.lower())
        if status is None:
            raise HttpError(
                400,
                f"Unknown runtimeStatus {name!r}; use {', '.join(s.value for s in Status)}.",
            )
        statuses.append(status)
    return statuses


def _parse_seconds(call: Call, name: str) -> float | None:
    raw = call.arg(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > MAX_WAIT_SECONDS:
        raise HttpError(
            400, f"Query parameter '{name}' must be seconds between 0 and {MAX_WAIT_SECONDS:g}."
        )
    return value


def _parse_wait(call: Call) -> tuple[float, float] | None:
    """``timeout`` and ``pollingInterval`` (seconds; both are needed to wait)."""
    timeout = _parse_seconds(call, "timeout")
    interval = _parse_seconds(call, "pollingInterval")
    if timeout is None or interval is None:
        return None
    if interval > timeout:
        raise HttpError(400, "pollingInterval must not be longer than timeout.")
    return timeout, max(interval, 0.001)


# -- handlers -----------------------------------------------------------------------------------


async def _started(call: Call, instance_id: str, wait: tuple[float, float] | None) -> HttpResponse:
    """202 with the check-status payload, or, when asked to wait, the finished result."""
    settings = settings_of(call.client)
    if wait is not None:
        timeout, interval = wait
        try:
            status = await call.client.wait_for_completion(instance_id, timeout, interval)
        except OrchestrationTimeoutError:
            pass
        else:
            flag = call.flag("returnInternalServerErrorOnFailure", False)
            return finished_response(status, failed_status_code=500 if flag else 200)
    return check_status_response(settings, call.request.url, instance_id, include_rewind=False)


async def start(call: Call) -> HttpResponse:
    name = call.path["functionName"]
    instance_id = call.path.get("instanceId")
    if instance_id is not None:
        validate_instance_id(instance_id)
    wait = _parse_wait(call)
    call.flag("returnInternalServerErrorOnFailure", False)  # validate before starting
    client_input = parse_json(await call.request.body())
    version = call.arg("version") or None  # the Azure Python client's start_new(version=...)
    started = await call.client.start_new(name, instance_id, client_input, version)
    return await _started(call, started, wait)


async def get_status(call: Call) -> HttpResponse:
    show_history = call.flag("showHistory", False)
    show_history_output = call.flag("showHistoryOutput", False)
    show_input = call.flag("showInput", True)
    fail_500 = call.flag("returnInternalServerErrorOnFailure", False)
    status = await call.client.get_status(
        call.instance_id, show_history, show_history_output, show_input
    )
    if not status:
        return HttpResponse(status_code=404)  # Durable Functions: 404 with an empty body
    runtime = status.runtime_status
    body = status.to_json()
    if runtime is Status.Failed:
        return json_response(body, 500 if fail_500 else 200)
    if runtime is not None and runtime.is_terminal:
        return json_response(body, 200)
    headers = {"Location": str(call.request.url), "Retry-After": STATUS_RETRY_AFTER}
    return json_response(body, 202, headers)


def page_size_of(call: Call) -> int:
    """The ``top`` query parameter (page size), 1..MAX_PAGE_SIZE, default 100."""
    top_raw = call.arg("top")
    if not top_raw:
        return DEFAULT_PAGE_SIZE
    digits = top_raw.strip()
    # ASCII digits only: str.isdigit() also accepts "²", which int() then refuses.
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_PAGE_SIZE:
        raise HttpError(400, f"Query parameter 'top' must be an integer 1..{MAX_PAGE_SIZE}.")
    return int(digits)


async def list_instances(call: Call) -> HttpResponse:
    page_size = page_size_of(call)
    token = call.request.headers.get(CONTINUATION_HEADER) or None
    statuses, next_token = await call.client.get_status_page(
        parse_time(call, "createdTimeFrom"),
        parse_time(call, "createdTimeTo"),
        _parse_statuses(call),
        call.arg("instanceIdPrefix") or None,
        page_size=page_size,
        continuation_token=token,
        show_input=call.flag("showInput", True),
        # Extensions (docs/http-api.md): an exact orchestrator name, and newest first.
        name=call.arg("name") or None,
        newest_first=call.flag("newestFirst", False),
    )
    headers = {CONTINUATION_HEADER: next_token} if next_token else None
    return json_response([status.to_json() for status in statuses], 200, headers)


async def purge_one(call: Call) -> HttpResponse:
    result = await call.client.purge_instance_history(call.instance_id)
    if result.instances_deleted == 0:
        raise InstanceNotFoundError(call.instance_id)
    return json_response({"instancesDeleted": result.instances_deleted}, 200)


async def purge_many(call: Call) -> HttpResponse:
    created_from = parse_time(call, "createdTimeFrom")
    if created_from is None:
        raise HttpError(400, "Query parameter 'createdTimeFrom' is required.")
    created_to = parse_time(call, "createdTimeTo") or datetime.fromtimestamp(time.time(), UTC)
    result = await call.client.purge_instance_history_by(
        created_from, created_to, _parse_statuses(call)
    )
    if result.instances_deleted == 0:
        raise HttpError(404, "No finished instances matched the filter.")
    return json_response({"instancesDeleted": result.instances_deleted}, 200)


async def raise_event(call: Call) -> HttpResponse:
    content_type = call.request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HttpError(400, "Only application/json request content is supported")
    data = parse_json(await call.request.body())
    await call.client.raise_event(call.instance_id, call.path["eventName"], data)
    return HttpResponse(status_code=202)


async def _require_running(call: Call) -> None:
    status = await call.client.get_status(call.instance_id, show_input=False)
    if not status:
        raise InstanceNotFoundError(call.instance_id)
    if status.runtime_status is not None and status.runtime_status.is_terminal:
        raise InstanceNotRunningError(call.instance_id, status.runtime_status.value)


def _control(operation: str) -> Handler:
    """202; 404 unknown; 410 Completed/Failed/Canceled/Terminated (as Durable Functions); for
    suspend and resume, 409 when the client refuses the instance's status (a suspend of a
    Suspended instance, a resume of one that is not Suspended; Durable Functions throws there,
    an unhandled 500, which the Azure SDK client reports the same way: it raises)."""

    async def handler(call: Call) -> HttpResponse:
        await _require_running(call)
        reason = call.arg("reason")
        await getattr(call.client, operation)(call.instance_id, reason)
        return HttpResponse(status_code=202)

    handler.__name__ = operation
    return handler


async def restart(call: Call) -> HttpResponse:
    new_id = call.flag("restartWithNewInstanceId", True)
    wait = _parse_wait(call)
    call.flag("returnInternalServerErrorOnFailure", False)
    started = await call.client.restart(call.instance_id, restart_with_new_instance_id=new_id)
    return await _started(call, started, wait)


async def rewind(call: Call) -> HttpResponse:
    """202; 404 unknown; 410 Completed/Canceled/Terminated (as Durable Functions); 409 for an
    instance that is still running (Durable Functions answers 202 and does nothing)."""
    try:
        await call.client.rewind(call.instance_id, call.arg("reason"))
    except InstanceNotFailedError as exc:
        code = 410 if Status(exc.status).is_terminal else 409
        raise HttpError(code, str(exc)) from None
    return HttpResponse(status_code=202)


async def openapi(call: Call) -> HttpResponse:
    return json_response(openapi_document())


# Method, path pattern ({name} captures a segment), handler, and whether a key is needed.
ROUTES: tuple[tuple[str, tuple[str, ...], Handler, bool], ...] = (
    ("GET", ("openapi.json",), openapi, False),
    ("POST", ("orchestrators", "{functionName}"), start, True),
    ("POST", ("orchestrators", "{functionName}", "{instanceId}"), start, True),
    ("GET", ("instances",), list_instances, True),
    ("DELETE", ("instances",), purge_many, True),
    ("GET", ("instances", "{instanceId}"), get_status, True),
    ("DELETE", ("instances", "{instanceId}"), purge_one, True),
    ("POST", ("instances", "{instanceId}", "raiseEvent", "{eventName}"), raise_event, True),
    ("POST", ("instances", "{instanceId}", "terminate"), _control("terminate"), True),
    ("POST", ("instances", "{instanceId}", "suspend"), _control("suspend"), True),
    ("POST", ("instances", "{instanceId}", "resume"), _control("resume"), True),
    ("POST", ("instances", "{instanceId}", "restart"), restart, True),
    ("POST", ("instances", "{instanceId}", "rewind"), rewind, True),
)


Route = tuple[str, tuple[str, ...], Handler, bool]


def match(method: str, segments: list[str]) -> tuple[Handler, dict[str, str], bool] | None:
    return match_route(ROUTES, method, segments)


def match_route(routes: tuple[Route, ...], method: str, segments: list[str]
                ) -> tuple[Handler, dict[str, str], bool] | None:
    """The first route of ``routes`` matching ``method`` and the path ``segments``."""
    for route_method, pattern, handler, needs_key in routes:
        if route_method != method or len(pattern) != len(segments):
            continue
        values: dict[str, str] = {}
        for expected, actual in zip(pattern, segments, strict=True):
            if expected.startswith("{"):
                if not actual:
                    break
                values[expected[1:-1]] = actual
            elif expected.lower() != actual.lower():
                break
        else:
            return handler, values, needs_key
    return None

