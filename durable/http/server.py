"""``durable run``: one process serving HTTP (uvicorn) and running the worker.

Start-up: bind the socket (port 0 picks a free one) and serve ``/healthz`` and ``/readyz``
at once (every other path answers 503 until the host has started: :mod:`durable.http.probes`),
open storage and start the worker (:class:`durable.Host`), waiting for storage if it is down,
load or generate the keys, then serve everything and print the banner.

Shutdown on SIGINT/SIGTERM, in an order that loses nothing: stop accepting connections and
let in-flight requests finish (uvicorn's graceful shutdown) and functions run by hand through
the admin API (:mod:`durable.http.admin`), then stop the worker, which lets
running activities finish and commits their results (up to its shutdown timeout) and hands
every lease back so another process can take over at once, then close storage.

Slow clients: every connection must deliver its request headers within ``head_timeout`` and
its body within ``body_timeout``, and at most ``max_connections`` are open at once
(:mod:`durable.http.protocol`). Each can be set in the environment: ``DURABLE_RUN_HEAD_TIMEOUT``,
``DURABLE_RUN_BODY_TIMEOUT``, ``DURABLE_RUN_MAX_CONNECTIONS``. Keys never reach a log line in
full: a filter on every log handler masks them (:class:`durable.http.keys.RedactKeysFilter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from durable.app import AuthLevel, DFApp
from durable.host import Host, start_with_retry
from durable.http.app import DEFAULT_MAX_REQUEST_BODY, DEFAULT_ROUTE_PREFIX, create_app
from durable.http.cors import CorsPolicy
from durable.http.keys import KeyRing, RedactKeysFilter, is_loopback, load_keys
from durable.http.probes import HEALTH_PATH, READY_PATH, Probes
from durable.http.protocol import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    QuietServer,
    guarded_protocol,
)
from durable.http.routes import RouteTable
from durable.management_urls import WEBHOOK_PATH, WebhookSettings
from durable.status import OverridableStates
from durable.telemetry.setup import Telemetry

log = logging.getLogger("durable.run")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7071  # as Azure Functions Core Tools
GRACEFUL_HTTP_SECONDS = 30.0


def _from_env(name: str, default: float, kind: type = float) -> Callable[[], float]:
    def read() -> float:
        raw = os.environ.get(name)
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"{name} must be positive")
        return value

    return read


@dataclass(slots=True)
class ServeOptions:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    max_request_body: int = DEFAULT_MAX_REQUEST_BODY
    access_log: bool = False
    # Durable Functions' host.json `overridableExistingInstanceStates` (see docs/singletons.md).
    overridable_states: OverridableStates = OverridableStates.NonRunningStates
    # False: a front end only; `durable worker` processes run the work (docs/scale-out.md).
    run_worker: bool = True
    # Slow clients (durable/http/protocol.py); defaults from DURABLE_RUN_* in the environment.
    head_timeout: float = field(
        default_factory=_from_env("DURABLE_RUN_HEAD_TIMEOUT", DEFAULT_HEAD_TIMEOUT))
    body_timeout: float = field(
        default_factory=_from_env("DURABLE_RUN_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT))
    max_connections: int = field(default_factory=_from_env(  # type: ignore[assignment]
        "DURABLE_RUN_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, int))
    dashboard: bool = True  # the web dashboard at /dashboard (docs/operations.md)
    # Console log, OpenTelemetry, Prometheus (durable.telemetry.setup.build); None: none.
    telemetry: Telemetry | None = None
    # Browser access from other origins (durable.http.cors): --cors, or local.settings.json.
    cors: CorsPolicy | None = None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (IPv6 if ``host`` is an IPv6 address)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def public_origin(host: str, port: int) -> str:
    """The origin to print and to use in management URLs built without a request."""
    name = host
    if host in ("0.0.0.0", "::", ""):
        name = "localhost"
    elif ":" in host:
        name = f"[{host}]"
    return f"http://{name}:{port}"


def operator_mounts(
    app: DFApp, host: Host, keys: KeyRing, options: ServeOptions, storage: str
) -> list[tuple[str, ASGIApp]]:
    """The dashboard and /metrics, as ``options`` asks (keys as the management API's)."""
    mounts: list[tuple[str, ASGIApp]] = []
    if options.dashboard:
        from durable.dashboard import Dashboard

        mounts.append(("/dashboard", Dashboard(
            host.client, keys=keys, names=list(app.orchestrators),
            hub=str(getattr(host.backend, "url", storage)),
        )))
    telemetry = options.telemetry
    if telemetry is not None and telemetry.metrics is not None:
        from durable.telemetry.metrics import MetricsEndpoint

        mounts.append(("/metrics", MetricsEndpoint(telemetry.metrics, host.backend, keys)))
    return mounts


def banner(
    app: DFApp, app_spec: str, storage: str, origin: str, prefix: str, keys: KeyRing,
    cors: CorsPolicy | None = None,
) -> str:
    """The start-up text: what is served where, like Core Tools' function list."""
    lines = [f"durable run {app_spec}", f"  storage: {storage}", "", "Functions:", ""]
    base = f"{origin}/{prefix.strip('/')}".rstrip("/")
    for route in RouteTable(app).routes:
        methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
        lock = "" if route.auth_level == AuthLevel.ANONYMOUS else f" ({route.auth_level.value})"
        lines.append(f"  {route.info.name}: [{methods}] {base}/{route.template}{lock}")
    for name in app.orchestrators:
        lines.append(f"  {name}: orchestrationTrigger")
    for name in app.activities:
        lines.append(f"  {name}: activityTrigger")
    for name in app.entities:
        lines.append(f"  {name}: entityTrigger")
    for info in app.timer_functions:
        lines.append(f"  {info.name}: timerTrigger ({info.extra.get('schedule')})")
    lines += [
        "",
        f"Management API: {origin}{WEBHOOK_PATH}  (OpenAPI: {origin}{WEBHOOK_PATH}/openapi.json)",
    ]
    if app.timer_functions or app.activities:
        lines.append(f"Run a timer or an activity by hand: POST {origin}/admin/functions/<name>")
    if cors is not None:
        allowed = "*" if cors.any_origin else ",".join(sorted(cors.origins))
        lines.append(f"CORS: {allowed}" + (" (with credentials)" if cors.credentials else ""))
    if keys.required:
        lines.append("Keys: required (listening beyond loopback; `code=` or x-functions-key)")
        lines += [f"  {line}" for line in keys.describe()]
        lines.append("  show them in full with: durable keys --storage <url>")
    else:
        lines.append("Keys: not required (loopback only)")
    lines += ["", f"Listening on {origin} (Ctrl+C to stop)"]
    return "\n".join(lines)


def install_redaction(keys: list[str]) -> None:
    """Mask keys in everything the root and uvicorn loggers' handlers write."""
    redacting = RedactKeysFilter(keys)
    for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error"):
        for handler in logging.getLogger(name).handlers:
            for old in [f for f in handler.filters if isinstance(f, RedactKeysFilter)]:
                handler.removeFilter(old)
            handler.addFilter(redacting)


async def serve(
    app: DFApp,
    storage: str,
    options: ServeOptions,
    *,
    app_spec: str,
    shutdown: Callable[[], Coroutine[Any, Any, None]],
    echo: Callable[[str], None] = lambda text: print(text, flush=True),
) -> None:
    """Serve ``app`` until ``shutdown()`` returns, then stop gracefully (see module doc)."""
    telemetry = options.telemetry
    host = Host(
        app, storage, overridable_states=options.overridable_states,
        run_worker=options.run_worker,
        observer=telemetry.observer if telemetry is not None else None,
    )
    # Listen first: /healthz and /readyz answer while storage is still being waited for, and
    # every other path is 503 until the host has started (durable.http.probes).
    sock = bind(options.host, options.port)
    port = sock.getsockname()[1]
    origin = public_origin(options.host, port)
    probes = Probes(host, detail=is_loopback(options.host))
    config = uvicorn.Config(
        probes,
        lifespan="off",
        access_log=options.access_log,
        log_level="info" if options.access_log else "warning",
        timeout_graceful_shutdown=int(GRACEFUL_HTTP_SECONDS),
        http=guarded_protocol(options.head_timeout, options.body_timeout,
                              options.max_connections),
        limit_concurrency=options.max_connections,
    )
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(shutdown())
    starting = asyncio.create_task(start_with_retry(host))
    asgi = None
    try:
        await asyncio.wait({starting, serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            return  # told to stop (or the server failed) before storage answered
        starting.result()  # a schema from a newer durable: raised
        keys = await load_keys(host.backend, required=not is_loopback(options.host))
        host.client.webhooks = WebhookSettings(
            origin=origin, task_hub=host.client.task_hub_name,  # an Azure app's hub name
            system_key=keys.system if keys.required else None,
        )
        mounts = operator_mounts(app, host, keys, options, storage)
        asgi = create_app(
            app,
            host.client,
            keys=keys,
            route_prefix=options.route_prefix,
            max_request_body=options.max_request_body,
            mounts=mounts,
            cors=options.cors,
        )
        # After uvicorn configured its loggers: keep keys out of every log line.
        install_redaction([keys.function, keys.system, keys.master])
        probes.app = asgi
        deadline = time.monotonic() + 30
        while not server.started and not serving.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if server.started:
            text = banner(app, app_spec, storage, origin, options.route_prefix, keys,
                          options.cors)
            extra = [f"{label}: {origin}{path}/" if label == "Dashboard" else
                     f"{label}: {origin}{path}" for label, path in
                     (("Dashboard", "/dashboard"), ("Metrics", "/metrics"))
                     if any(mounted == path for mounted, _ in mounts)]
            extra.append(f"Probes: {origin}{HEALTH_PATH}  {origin}{READY_PATH}")
            head, _, tail = text.rpartition("\nKeys: ")
            text = "\n".join([head, *extra]) + "\nKeys: " + tail
            echo(text)
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            log.info("shutting down: finishing HTTP requests, then in-flight work")
    finally:
        server.should_exit = True
        try:
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
            await serving
            if asgi is not None:
                # Functions run by hand (the admin API) finish before the worker and storage
                # stop.
                await asgi.admin.drain(GRACEFUL_HTTP_SECONDS)
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
            sock.close()
            await host.stop()
