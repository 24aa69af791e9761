"""The ASGI application ``durable run`` serves: user routes, the management API, and the
guards in front of both.

    asgi = create_app(dfapp, host.client, keys=keys)

One request goes through, in order:

1. the body-size guard: a ``Content-Length`` over the limit is answered 413 before anything is
   read, and a streamed body is cut off with 413 as soon as it passes the limit;
2. dispatch on the path: the operator apps mounted at their paths (``/dashboard``,
   ``/metrics``; they check keys themselves), ``/runtime/webhooks/durabletask/...`` to
   :mod:`durable.http.management`, ``/admin/...`` to :mod:`durable.http.admin` (running a
   timer or an activity by hand, as the Functions host's admin API), ``/<prefix>/...`` to the
   user routes, anything else 404;
3. the key check (:mod:`durable.http.keys`), after the route is known, since the route's
   ``auth_level`` decides it;
4. the handler, with every exception mapped by :mod:`durable.http.errors`. An error the mapping
   does not know is logged and answered 500 with a generic message: that is a bug, in durable
   or in a user's route, never the reaction to malformed input. A client that goes away in the
   middle of its request is not an error: it is logged at debug level and nothing is sent.

Slow clients are cut off below the application, by :mod:`durable.http.protocol`. CORS, when
configured, is in front of steps 2 to 4 for everything but the operator apps
(:mod:`durable.http.cors`; see :func:`create_app`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from durable.app import AuthLevel, DFApp
from durable.client import DurableOrchestrationClient
from durable.errors import StorageError
from durable.http import admin, entity_routes, management
from durable.http.cors import CorsMiddleware, CorsPolicy
from durable.http.errors import (
    GENERIC_500,
    HttpError,
    RequestTooLargeError,
    error_response,
    response_for,
)
from durable.http.keys import KeyRing, presented_key
from durable.http.routes import RouteTable, call_handler, to_response
from durable.http_model import HttpRequest, HttpResponse
from durable.management_urls import WEBHOOK_PATH

log = logging.getLogger("durable.http")

DEFAULT_MAX_REQUEST_BODY = 10 * 1024 * 1024  # bytes, as the issue asks (10 MiB)
DEFAULT_ROUTE_PREFIX = "api"
STORAGE_LOG_EVERY = 10.0  # seconds between log lines about the same kind of storage trouble


def to_starlette(response: HttpResponse | Response) -> Response:
    if isinstance(response, Response):
        return response
    body = response.get_body()
    headers = dict(response.headers)
    has_type = any(name.lower() == "content-type" for name in headers)
    media_type = None
    if not has_type and (body or response.status_code not in (202, 204, 304, 404)):
        media_type = response.mimetype
        if media_type.startswith("text/") and "charset" not in media_type:
            media_type = f"{media_type}; charset={response.charset}"
    return Response(body, response.status_code, headers, media_type)


class _BodyLimit:
    """Counts body bytes as the handler reads them; raises 413 past ``limit``."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._seen = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                raise RequestTooLargeError(self._limit)
        return message


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise HttpError(400, "The Content-Length header is not a number.") from None
    return None


def _merged_headers(request: Request) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in request.headers.items():
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return merged


class DurableHttpApp:
    """User routes under ``/<route_prefix>`` plus the management API, as one ASGI app."""

    def __init__(
        self,
        app: DFApp,
        client: DurableOrchestrationClient,
        *,
        keys: KeyRing | None = None,
        route_prefix: str = DEFAULT_ROUTE_PREFIX,
        max_request_body: int = DEFAULT_MAX_REQUEST_BODY,
        mounts: Sequence[tuple[str, ASGIApp]] = (),
        cors: CorsPolicy | None = None,
    ) -> None:
        self.app = app
        # Operator apps at fixed paths (/dashboard, /metrics); each checks keys itself.
        self.mounts = [(path.rstrip("/").lower(), mounted) for path, mounted in mounts]
        self.client = client
        self.keys = keys
        prefix = route_prefix.strip("/")
        self.route_prefix = f"/{prefix}" if prefix else ""
        self.max_request_body = max_request_body
        self.routes = RouteTable(app)
        self.admin = admin.AdminApi(app, client)
        self._storage_logged: dict[str, float] = {}
        # CORS in front of what the Functions host serves (routes, the management and admin
        # APIs), as Core Tools puts it; not in front of the operator apps: the dashboard's
        # guard against cross-site actions is a preflight nobody answers (durable.dashboard).
        self._functions_host: ASGIApp = (
            self._serve if cors is None else CorsMiddleware(self._serve, cors))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets: the server closes the connection
        lowered = str(scope.get("path", "")).lower()
        for path, mounted in self.mounts:
            if lowered == path or lowered.startswith(path + "/"):
                await mounted(scope, _BodyLimit(receive, self.max_request_body), send)
                return
        await self._functions_host(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = _BodyLimit(receive, self.max_request_body)
        try:
            declared = _declared_length(scope)
            if declared is not None and declared > self.max_request_body:
                raise RequestTooLargeError(self.max_request_body)
            response = await self._dispatch(Request(scope, limited))
        except HttpError as exc:
            response = to_starlette(error_response(exc.status, exc.message, headers=exc.headers))
        except ClientDisconnect:
            log.debug("%s %s: the client disconnected before sending its whole request",
                      scope.get("method"), scope.get("path"))
            return
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _allowed(self, level: Any, request: Request) -> bool:
        if self.keys is None:
            return True
        return self.keys.allows(level, presented_key(request.headers, request.query_params))

    async def _dispatch(self, request: Request) -> Response:
        path: str = request.scope["path"]
        lowered = path.lower()
        if lowered == WEBHOOK_PATH or lowered.startswith(WEBHOOK_PATH + "/"):
            return await self._management(request)
        if admin.is_admin_path(lowered):
            return await self._admin(request)
        prefix = self.route_prefix.lower()
        if not prefix or lowered == prefix or lowered.startswith(prefix + "/"):
            return await self._user_route(request, path[len(prefix):])
        return to_starlette(error_response(404, "Not found."))

    async def _management(self, request: Request) -> Response:
        raw: bytes | None = request.scope.get("raw_path")
        base = WEBHOOK_PATH.encode("ascii")
        if raw:
            raw = raw.split(b"?", 1)[0]  # some clients (httpx's ASGITransport) leave it on
        if not raw or not raw.lower().startswith(base):
            # No raw path, or one that spells the base with escapes: use the decoded path.
            raw = request.scope["path"].encode("utf-8")
        segments = _decode_segments(raw[len(base):].decode("latin-1"))
        found = management.match(request.method, segments) or entity_routes.match(
            request.method, segments)
        if found is None:
            return to_starlette(error_response(404, "No management API route matches."))
        handler, values, needs_key = found
        if needs_key and not self._allowed("system", request):
            return to_starlette(error_response(401, "A valid key is required."))
        query: dict[str, list[str]] = {}
        for name, value in request.query_params.multi_items():
            query.setdefault(name.lower(), []).append(value)
        call = management.Call(request, self.client, values, query)
        what = f"{request.method} {path_of(request)}"
        with self._traced(request.headers):
            return to_starlette(await self._guarded(handler(call), what))

    async def _admin(self, request: Request) -> Response:
        rest = str(request.scope["path"])[len(admin.ADMIN_PATH):]
        name = admin.match(request.method, [part for part in rest.split("/") if part])
        if name is None:
            return to_starlette(error_response(404, "No admin API route matches."))
        if not self._allowed(AuthLevel.ADMIN, request):
            return to_starlette(error_response(401, "A valid key is required."))
        what = f"{request.method} {path_of(request)}"
        return to_starlette(await self._guarded(self.admin.invoke(name, request), what))

    async def _user_route(self, request: Request, path: str) -> Response:
        found = self.routes.match(request.method, path)
        if found is None:
            return to_starlette(error_response(404, "No HTTP function matches this route."))
        route, values = found
        if not self._allowed(route.auth_level, request):
            return to_starlette(error_response(401, "A valid key is required."))
        body = await request.body()
        http_request = HttpRequest(
            request.method,
            str(request.url),
            headers=_merged_headers(request),
            params=dict(request.query_params),
            route_params=values,
            body=body,
        )
        with self._traced(request.headers):
            result = await self._guarded(
                call_handler(route, http_request, self.client), f"function '{route.info.name}'"
            )
        try:
            return to_starlette(to_response(result))
        except Exception:
            log.exception("function '%s' returned a value that is not a response",
                          route.info.name)
            return to_starlette(error_response(500, GENERIC_500))

    def _traced(self, headers: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
        """Telemetry's view of a request (tracing continues its ``traceparent``)."""
        observer = self.client.observer
        return observer.incoming(headers) if observer is not None else contextlib.nullcontext()

    async def _guarded(self, work: Any, what: str) -> Any:
        """Await ``work``; map durable errors to their status, anything else to a logged 500."""
        try:
            return await work
        except (RequestTooLargeError, ClientDisconnect):
            raise
        except Exception as exc:
            mapped = response_for(exc)
            if mapped is not None:
                if isinstance(exc, StorageError):
                    self._log_storage_trouble(what, mapped.status_code, exc)
                else:
                    log.debug("%s: %s %s", what, mapped.status_code, exc)
                return mapped
            log.exception("%s failed", what)
            return error_response(500, GENERIC_500)


    def _log_storage_trouble(self, what: str, status: int, exc: StorageError) -> None:
        """The operator must hear about storage trouble, once per kind every few seconds."""
        kind = type(exc).__name__
        now = time.monotonic()
        if now - self._storage_logged.get(kind, -STORAGE_LOG_EVERY) >= STORAGE_LOG_EVERY:
            self._storage_logged[kind] = now
            log.warning("%s answered %d: %s", what, status, exc)


def path_of(request: Request) -> str:
    return str(request.scope.get("path", ""))


def _decode_segments(rest: str) -> list[str]:
    trimmed = rest.strip("/")
    if not trimmed:
        return []
    try:
        return [unquote_to_bytes(part).decode("utf-8") for part in trimmed.split("/")]
    except UnicodeDecodeError:
        raise HttpError(400, "The request path is not valid percent-encoded UTF-8.") from None


def create_app(
    app: DFApp,
    client: DurableOrchestrationClient,
    *,
    keys: KeyRing | None = None,
    route_prefix: str = DEFAULT_ROUTE_PREFIX,
    max_request_body: int = DEFAULT_MAX_REQUEST_BODY,
    mounts: Sequence[tuple[str, ASGIApp]] = (),
    cors: CorsPolicy | None = None,
) -> DurableHttpApp:
    """The ASGI app serving ``app``'s routes and the management API through ``client``, and
    the operator apps in ``mounts`` (``(path, asgi_app)``: the dashboard, /metrics).

    With ``cors``, every response of the routes, the management API and the admin API carries
    the CORS headers and their preflights are answered, as Core Tools' CORS middleware does in
    front of the whole Functions host. The operator apps are left out: the dashboard refuses
    cross-site actions by never answering a preflight."""
    return DurableHttpApp(
        app, client, keys=keys, route_prefix=route_prefix, max_request_body=max_request_body,
        mounts=mounts, cors=cors,
    )
