"""The web dashboard: an ASGI app over :class:`durable.DurableOrchestrationClient`.

``durable run`` serves it at ``/dashboard``; ``durable dashboard --storage URL`` serves it on
its own. Server-rendered HTML and one small script shipped in the package (no build step, no
CDN): status counts, the instance list (filters, order, paging through continuation tokens,
so a page costs the same on a million instances), an instance page (input, output, custom
status, failure with the user's frames, a timeline of activities, timers, sub-orchestrations
and events, the raw history), and actions with a confirmation: raise event, terminate,
suspend, resume, restart, purge.

Keys are the management API's: beyond loopback every page and action needs the system or
master key, given once as ``?code=KEY`` (kept in an HTTP-only, same-site cookie) or as the
``x-functions-key`` header. Actions are POSTs that must carry the ``X-Durable-Dashboard``
header, which a page from another origin cannot send without a CORS preflight we never
answer, so a logged-in browser cannot be made to act by another site.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from durable.client import DurableOrchestrationClient
from durable.dashboard import views
from durable.dashboard.timeline import build_timeline
from durable.errors import DurableError, InstanceNotFoundError, InvalidInputError
from durable.history import HistoryEvent, event_to_dict, to_datetime
from durable.http.keys import KeyRing, presented_key
from durable.status import OrchestrationRuntimeStatus

COOKIE = "durable_dashboard_key"
ACTION_HEADER = "x-durable-dashboard"
PAGE_SIZE = 50
COUNTS_MAX_AGE = 5.0  # seconds; counting a million rows is not free
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def raw_events(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    """Every stored event as it is (episode markers and scheduling events included), with
    JSON payloads decoded for reading."""
    out = []
    for event in events:
        data = event_to_dict(event)
        entry: dict[str, Any] = {
            "EventType": data.pop("type"),
            "Timestamp": to_datetime(data.pop("timestamp", 0.0)).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        for key, value in data.items():
            if key in ("input", "result") and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            entry[key] = value
        out.append(entry)
    return out


def _parse_time(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"Not a date and time: {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Dashboard:
    """The dashboard's ASGI app (mount it at ``base``)."""

    def __init__(
        self,
        client: DurableOrchestrationClient,
        *,
        keys: KeyRing | None = None,
        base: str = "/dashboard",
        names: Sequence[str] = (),
        hub: str = "",
    ) -> None:
        self.client = client
        self.keys = keys
        self.base = base.rstrip("/")
        self.names = sorted(names)
        self.hub = hub
        self._counts: tuple[float, dict[str, int]] | None = None
        routes = [
            Route(f"{self.base}", self.redirect_to_list),
            Route(f"{self.base}/", self.list_page),
            Route(f"{self.base}/instances/{{instance_id:path}}", self.instance_page),
            Route(f"{self.base}/api/instances/{{instance_id:path}}/{{action}}", self.action,
                  methods=["POST"]),
            Route(f"{self.base}/static/{{name}}", self.static),
        ]
        self.router = Router(routes)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.router(scope, receive, send)

    # -- keys ---------------------------------------------------------------------------------

    def _key_of(self, request: Request) -> str | None:
        return presented_key(request.headers, request.query_params) or request.cookies.get(COOKIE)

    def _allowed(self, request: Request) -> bool:
        if self.keys is None or not self.keys.required:
            return True
        return self.keys.allows("system", self._key_of(request))

    def _html(self, request: Request, title: str, body: str, status: int = 200) -> Response:
        response = HTMLResponse(views.page(self.base, title, body, self.hub), status)
        given = request.query_params.get("code")
        if given and self.keys is not None and self.keys.required and self._allowed(request):
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict",
                                path=self.base or "/")
        return response

    def _login(self, request: Request) -> Response:
        failed = bool(self._key_of(request))
        return HTMLResponse(views.page(self.base, "Key required",
                                       views.login_page(self.base, failed), self.hub), 401)

    # -- pages --------------------------------------------------------------------------------

    async def redirect_to_list(self, request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{self.base}/{query}", 307)

    async def counts(self) -> dict[str, int]:
        now = time.monotonic()
        if self._counts is not None and now - self._counts[0] < COUNTS_MAX_AGE:
            return self._counts[1]
        found = await self.client.backend.count_by_status()
        counts = {status.value: n for status, n in found.items()}
        self._counts = (now, counts)
        return counts

    async def list_page(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._login(request)
        params = request.query_params
        filters = {key: params.get(key, "") for key in
                   ("status", "name", "prefix", "from", "to", "sort", "after")}
        try:
            statuses = [OrchestrationRuntimeStatus(filters["status"])] if filters["status"] \
                else None
            page, token = await self.client.get_status_page(
                _parse_time(filters["from"]), _parse_time(filters["to"]), statuses,
                filters["prefix"] or None, page_size=PAGE_SIZE,
                continuation_token=filters["after"] or None, show_input=False,
                name=filters["name"] or None, newest_first=filters["sort"] != "oldest",
            )
        except (ValueError, DurableError) as exc:
            body = f'<h1>Bad filter</h1><p class="message error">{views.escape(str(exc))}</p>'
            return self._html(request, "Bad filter", body, 400)
        body = views.list_page(self.base, counts=await self.counts(), statuses=page,
                               filters=filters, next_token=token, names=self.names)
        return self._html(request, "Instances", body)

    async def instance_page(self, request: Request) -> Response:
        if not self._allowed(request):
            return self._login(request)
        instance_id = request.path_params["instance_id"]
        record = await self.client.backend.get_instance(instance_id)
        if record is None:
            return self._html(request, "Not found", views.not_found_page(self.base, instance_id),
                              404)
        status = await self.client.get_status(instance_id)
        events = await self.client.backend.get_history(instance_id)
        body = views.instance_page(
            self.base, status, timeline=build_timeline(events, time.time()),
            history=raw_events(events), execution_id=record.execution_id,
            parent_instance_id=record.parent_instance_id,
        )
        return self._html(request, instance_id, body)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", 404)
        text = resources.files("durable.dashboard").joinpath("static", name).read_text("utf-8")
        return Response(text, media_type=_STATIC[name],
                        headers={"Cache-Control": "max-age=300"})

    # -- actions ------------------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        if request.headers.get(ACTION_HEADER) != "1":
            return JSONResponse({"message": "Actions must come from the dashboard page "
                                            f"(the {ACTION_HEADER} header is missing)."}, 403)
        if not self._allowed(request):
            return JSONResponse({"message": "A valid key is required."}, 401)
        instance_id = request.path_params["instance_id"]
        action = request.path_params["action"]
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as exc:
            return JSONResponse({"message": f"Invalid request body: {exc}"}, 400)
        try:
            answer = await self._act(instance_id, action, body)
        except InstanceNotFoundError as exc:
            return JSONResponse({"message": str(exc)}, 404)
        except DurableError as exc:
            from durable.http.errors import response_for

            mapped = response_for(exc)
            code = mapped.status_code if mapped is not None else 400
            return JSONResponse({"message": str(exc)}, code)
        self._counts = None
        return JSONResponse(answer)

    async def _act(self, instance_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        client = self.client
        reason = body.get("reason") or None
        if action == "raise":
            event = body.get("event")
            if not isinstance(event, str) or not event:
                raise InvalidInputError("The event needs a name.")
            await client.raise_event(instance_id, event, body.get("data"))
            return {"message": f"Event {event!r} raised.", "instanceId": instance_id}
        if action in ("terminate", "suspend", "resume"):
            status = await client.get_status(instance_id, show_input=False)
            if not status:
                raise InstanceNotFoundError(instance_id)
            await getattr(client, action)(instance_id, reason)
            return {"message": f"{action.capitalize()} requested.", "instanceId": instance_id}
        if action == "restart":
            new_id = await client.restart(instance_id, bool(body.get("newInstanceId", True)))
            return {"message": f"Restarted as {new_id}.", "instanceId": new_id}
        if action == "purge":
            result = await client.purge_instance_history(instance_id)
            if not result.instances_deleted:
                raise InstanceNotFoundError(instance_id)
            return {"message": "Purged.", "instanceId": instance_id}
        raise InvalidInputError(f"Unknown action {action!r}.")


def create_dashboard(client: DurableOrchestrationClient, **options: Any) -> Dashboard:
    """The dashboard app (see :class:`Dashboard` for the options)."""
    return Dashboard(client, **options)


__all__ = ["Dashboard", "create_dashboard"]
