"""``durable dashboard --storage URL``: the web dashboard of a task hub, with no app or worker.

Actions that start work (restart) create instances that run when a worker of the app picks
them up; everything else acts on storage directly, like ``durable instances``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.responses import RedirectResponse
from starlette.types import Receive, Scope, Send

from durable.client import DurableOrchestrationClient
from durable.dashboard import Dashboard
from durable.http.keys import is_loopback, load_keys
from durable.http.server import bind, public_origin
from durable.storage import open_backend


class _Standalone:
    """The dashboard at /dashboard, and / redirecting there."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "/") in ("", "/"):
            await RedirectResponse("/dashboard/", 307)(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        await self.dashboard(scope, receive, send)


async def serve_dashboard(
    url: str,
    host: str,
    port: int,
    shutdown: Callable[[], Awaitable[None]],
    echo: Callable[[str], None],
) -> None:
    backend = open_backend(url)
    await backend.open()
    try:
        keys = await load_keys(backend, required=not is_loopback(host))
        client = DurableOrchestrationClient(backend)
        dashboard = Dashboard(client, keys=keys, hub=str(getattr(backend, "url", url)))
        sock = bind(host, port)
        origin = public_origin(host, sock.getsockname()[1])
        config = uvicorn.Config(_Standalone(dashboard), lifespan="off", access_log=False,
                                log_level="warning")
        server = uvicorn.Server(config)
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        stopping = asyncio.create_task(shutdown())
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if server.started:
            need = "the system or master key (durable keys)" if keys.required else "no key"
            echo(f"durable dashboard: {origin}/dashboard/  (storage {url}; {need})")
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        try:
            await serving
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
            sock.close()
    finally:
        await backend.close()
