"""The built-in activity behind ``context.call_http``: one HTTP request with httpx.

Its input is what :func:`durable.orchestration.http_task.build_request` recorded; its result is
Durable Functions' ``DurableHttpResponse`` shape, ``{"statusCode", "headers", "content"}``, with
header names as the server spelled them (a repeated header becomes a list) and the body as text.
Polling the 202 pattern is the orchestration's job, not this activity's: one call, one request.
Transport errors (refused connection, timeout) fail the activity, so the orchestrator gets a
``TaskFailedError`` it can catch or retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable.app import FunctionInfo, FunctionKind
from durable.errors import InvalidInputError
from durable.orchestration.http_task import HTTP_ACTIVITY_NAME

if TYPE_CHECKING:
    import httpx

# .NET's HttpClient default, which Durable Functions' HTTP activity inherits.
REQUEST_TIMEOUT_SECONDS = 100.0


def _response_headers(response: httpx.Response) -> dict[str, str | list[str]]:
    headers: dict[str, str | list[str]] = {}
    for raw_name, raw_value in response.headers.raw:
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        existing = next((key for key in headers if key.lower() == name.lower()), None)
        if existing is None:
            headers[name] = value
        else:
            previous = headers[existing]
            headers[existing] = [*previous, value] if isinstance(previous, list) else [
                previous, value
            ]
    return headers


async def http_activity(request: dict[str, Any]) -> dict[str, Any]:
    """Send ``request`` and return the response as ``{statusCode, headers, content}``."""
    import httpx  # only when an orchestration calls HTTP: importing durable stays light

    if not isinstance(request, dict) or not isinstance(request.get("uri"), str):
        raise InvalidInputError("BuiltIn::HttpActivity needs a request built by call_http.")
    content = request.get("content")
    async with httpx.AsyncClient(
        timeout=REQUEST_TIMEOUT_SECONDS, follow_redirects=True
    ) as client:
        response = await client.request(
            request.get("method") or "GET",
            request["uri"],
            content=content.encode("utf-8") if isinstance(content, str) else None,
            headers=request.get("headers") or {},
        )
    return {
        "statusCode": response.status_code,
        "headers": _response_headers(response),
        "content": response.text,
    }


def builtin_activities() -> dict[str, FunctionInfo]:
    """The activities every worker provides on top of the app's own."""
    info = FunctionInfo(
        fn=http_activity,
        kind=FunctionKind.ACTIVITY,
        explicit_name=HTTP_ACTIVITY_NAME,
        trigger_arg="request",
        is_async=True,
    )
    return {HTTP_ACTIVITY_NAME: info}
