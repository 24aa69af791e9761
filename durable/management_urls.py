"""Management URLs for an instance: the "check status" payload and the 202 response.

``DurableOrchestrationClient.create_check_status_response`` and friends delegate here. URL
shapes follow Durable Functions exactly (reference §4.2): the webhook base, the instance ID
URL-encoded, ``taskHub``/``connection`` on every URL, ``code=<system key>`` when the server
enforces keys, and the literal placeholders ``{eventName}`` and ``{text}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from durable.errors import InvalidInputError, OrchestrationTimeoutError
from durable.http_model import HttpResponse, json_response
from durable.status import OrchestrationRuntimeStatus as Status

if TYPE_CHECKING:
    from durable.client import DurableOrchestrationClient

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
DEFAULT_ORIGIN = "http://localhost:7071"
START_RETRY_AFTER = "10"  # seconds, on the 202 that answers a start (as Durable Functions)
STATUS_RETRY_AFTER = "5"  # seconds, on a 202 status poll


@dataclass(slots=True)
class WebhookSettings:
    """Where the management API is served; ``durable run`` fills it in when it listens."""

    origin: str = DEFAULT_ORIGIN
    task_hub: str = "default"
    connection: str = "Storage"
    system_key: str | None = None


def settings_of(client: DurableOrchestrationClient) -> WebhookSettings:
    settings = getattr(client, "webhooks", None)
    if isinstance(settings, WebhookSettings):
        return settings
    return WebhookSettings(task_hub=client.task_hub_name)


def origin_of(url: Any) -> str:
    """``scheme://host[:port]`` of a request URL (a string or a Starlette URL)."""
    parts = urlsplit(str(url))
    if not parts.scheme or not parts.netloc:
        raise InvalidInputError(f"Cannot take the origin of the request URL {str(url)!r}.")
    return f"{parts.scheme}://{parts.netloc}"


def management_urls(
    settings: WebhookSettings,
    instance_id: str,
    *,
    origin: str | None = None,
    include_rewind: bool = True,
    return_internal_server_error_on_failure: bool = False,
) -> dict[str, str]:
    """The management payload for ``instance_id`` (9 keys, or 8 without ``rewindPostUri``)."""
    base = f"{(origin or settings.origin).rstrip('/')}{WEBHOOK_PATH}"
    instance = f"{base}/instances/{quote(instance_id, safe='')}"
    query: dict[str, str] = {"taskHub": settings.task_hub, "connection": settings.connection}
    if settings.system_key:
        query["code"] = settings.system_key
    qs = urlencode(query)
    status_qs = qs + (
        "&returnInternalServerErrorOnFailure=true" if return_internal_server_error_on_failure
        else ""
    )
    urls = {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{status_qs}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{qs}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{qs}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{qs}",
        "purgeHistoryDeleteUri": f"{instance}?{qs}",
        "restartPostUri": f"{instance}/restart?{qs}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{qs}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{qs}",
    }
    if not include_rewind:
        del urls["rewindPostUri"]
    return urls


def check_status_response(
    settings: WebhookSettings,
    request_url: Any,
    instance_id: str,
    *,
    include_rewind: bool = True,
) -> HttpResponse:
    """202 Accepted with the management payload, ``Location`` and ``Retry-After: 10``.

    URL origins are the incoming request's, so the links work from where the caller stands
    (behind a proxy, on another host name).
    """
    urls = management_urls(
        settings, instance_id, origin=origin_of(request_url), include_rewind=include_rewind
    )
    headers = {"Location": urls["statusQueryGetUri"], "Retry-After": START_RETRY_AFTER}
    return json_response(urls, 202, headers)


def finished_response(
    status: Any, *, failed_status_code: int, raw_string_output: bool = False
) -> HttpResponse:
    """The response for an instance that finished while the caller waited.

    Completed: 200 with the output as JSON (with ``raw_string_output``, a string output is sent
    as is, as the Azure Python SDK's ``wait_for_completion_or_...`` does). Failed:
    ``failed_status_code`` with the status payload. Canceled/Terminated: 200 with the status.
    """
    if status.runtime_status is Status.Completed:
        output = status.output
        if raw_string_output and isinstance(output, str):
            return HttpResponse(output, status_code=200, mimetype="application/json")
        return json_response(output, 200)
    code = failed_status_code if status.runtime_status is Status.Failed else 200
    return json_response(status.to_json(), code)


async def wait_or_check_status(
    client: DurableOrchestrationClient,
    request_url: Any,
    instance_id: str,
    timeout_in_milliseconds: int = 10000,
    retry_interval_in_milliseconds: int = 1000,
) -> HttpResponse:
    """``wait_for_completion_or_create_check_status_response``: see the client method."""
    if retry_interval_in_milliseconds > timeout_in_milliseconds:
        raise InvalidInputError(
            f"Total timeout {timeout_in_milliseconds} (ms) should be bigger than retry timeout "
            f"{retry_interval_in_milliseconds} (ms)"
        )
    timeout = max(0, timeout_in_milliseconds) / 1000
    interval = max(0.001, retry_interval_in_milliseconds / 1000)
    try:
        status = await client.wait_for_completion(instance_id, timeout, poll_interval=interval)
    except OrchestrationTimeoutError:
        return check_status_response(settings_of(client), request_url, instance_id)
    return finished_response(status, failed_status_code=500, raw_string_output=True)
