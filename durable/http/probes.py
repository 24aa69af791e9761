"""``/healthz`` and ``/readyz``: what an orchestrator (Kubernetes, systemd, a load balancer)
asks a ``durable run`` or ``durable worker`` process.

- ``GET /healthz`` (liveness): 200 whenever the process's event loop answers, which is all it
  checks: a process waiting for its database is alive, and restarting it would not help.
- ``GET /readyz`` (readiness): 200 when the host has started (its worker too, if it runs one)
  and storage answers a read with the schema this code writes and takes writes; else 503 with
  what is missing. Storage is asked at most once a second whatever the probe rate (concurrent
  probes share one read), and for at most :data:`STORAGE_TIMEOUT` seconds.

Both are anonymous and answer ``{"status": ...}`` JSON. Beyond loopback the body names what
failed, not why (the reason, which may hold addresses, goes to the process's log). They sit in
front of everything else (:class:`Probes` wraps the app), never under the route prefix, and
answer while the host is still starting: until :attr:`Probes.app` is set every other path is
503 ``starting``, so ``durable run`` can listen before storage is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from durable.errors import (
    SchemaVersionError,
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
)
from durable.http.protocol import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEAD_TIMEOUT,
    QuietServer,
    guarded_protocol,
)
from durable.storage.sql import NOT_MIGRATED

if TYPE_CHECKING:
    from durable.host import Host

log = logging.getLogger("durable.http")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
STORAGE_TIMEOUT = 2.0  # seconds a readiness probe waits for storage
CACHE_SECONDS = 1.0  # a storage answer serves the probes of the next second
_LOG_EVERY = 30.0
_MAX_CONNECTIONS = 100  # on the worker's port: scrapers and probes, not clients


def _storage_word(exc: BaseException) -> str:
    """What failed, in one word an operator can act on (no addresses, no error text)."""
    if isinstance(exc, TimeoutError):
        return "no answer"
    if isinstance(exc, SchemaVersionError):
        return "newer schema"
    if isinstance(exc, StorageFullError):
        return "full"
    if isinstance(exc, StorageReadOnlyError):
        return "read-only"
    if isinstance(exc, StorageCorruptError):
        return "damaged"
    if isinstance(exc, StorageError) and NOT_MIGRATED in str(exc):
        return "not migrated"
    return "unavailable"


class Readiness:
    """The host's readiness, with storage read at most once per :data:`CACHE_SECONDS`."""

    def __init__(self, host: Host, *, detail: bool) -> None:
        self.host = host
        self.detail = detail  # say why (loopback only)
        self._answer: tuple[float, str, str | None] | None = None  # (when, word, reason)
        self._asking: asyncio.Task[tuple[str, str | None]] | None = None
        self._logged: tuple[str, float] | None = None

    async def check(self) -> tuple[bool, dict[str, str]]:
        """(ready, body)."""
        host = self.host
        worker = ("none" if host.worker is None else "running" if host.running
                  else "stopping" if host.stopping else "starting")
        body = {"status": "unavailable", "worker": worker}
        if not host.running:
            body["host"] = "stopping" if host.stopping else "starting"
            return False, body
        word, reason = await self._storage()
        body["storage"] = word
        if reason is not None and self.detail:
            body["reason"] = reason
        if word != "ok":
            return False, body
        body["status"] = "ready"
        return True, body

    async def _storage(self) -> tuple[str, str | None]:
        answer = self._answer
        if answer is not None and time.monotonic() - answer[0] < CACHE_SECONDS:
            return answer[1], answer[2]
        if self._asking is None or self._asking.done():
            self._asking = asyncio.ensure_future(self._ask())
        # Shielded: a probe that gives up (its client went away) leaves the read to the others.
        return await asyncio.shield(self._asking)

    async def _ask(self) -> tuple[str, str | None]:
        word, reason = "ok", None
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT):
                await self.host.backend.probe()
        except Exception as exc:  # whatever it is, the probe answers 503 and says so
            word = _storage_word(exc)
            reason = (f"no answer within {STORAGE_TIMEOUT:g}s"
                      if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}")
            self._log(reason)
        self._answer = (time.monotonic(), word, reason)
        return word, reason

    def _log(self, reason: str) -> None:
        now = time.monotonic()
        if self._logged is None or self._logged[0] != reason or now - self._logged[1] > _LOG_EVERY:
            self._logged = (reason, now)
            log.warning("readiness: storage is not ready: %s", reason)


class Probes:
    """``/healthz`` and ``/readyz`` in front of ``app`` (503 ``starting`` until it is set)."""

    def __init__(self, host: Host, *, detail: bool, app: ASGIApp | None = None) -> None:
        self.readiness = Readiness(host, detail=detail)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if self.app is not None:
                await self.app(scope, receive, send)
            return
        path = str(scope.get("path", "")).rstrip("/").lower()
        method = scope.get("method")
        head = method == "HEAD"
        if path in (HEALTH_PATH, READY_PATH) and method not in ("GET", "HEAD"):
            await _send(send, 405, {"Message": "Use GET or HEAD."}, {"allow": "GET, HEAD"})
        elif path == HEALTH_PATH:
            await _send(send, 200, {"status": "ok"}, _NO_STORE, head)
        elif path == READY_PATH:
            ready, body = await self.readiness.check()
            await _send(send, 200 if ready else 503, body, _NO_STORE, head)
        elif self.app is None:
            await _send(send, 503, {"Message": "The host is starting (waiting for storage); "
                                               "try again later"}, {"retry-after": "5"}, head)
        else:
            await self.app(scope, receive, send)


_NO_STORE = {"cache-control": "no-store"}


async def _send(send: Send, status: int, body: dict[str, str], headers: dict[str, str],
                head: bool = False) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload)),
           *((k.encode(), v.encode()) for k, v in headers.items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else payload})


class OperatorPort:
    """``durable worker``'s own HTTP port: the probes, and ``/metrics`` when asked for.

    Served by uvicorn on the worker's event loop (so ``/healthz`` answering means that loop
    runs), from before the host starts until after it stopped.
    """

    def __init__(self, probes: Probes, sock: socket.socket) -> None:
        self.probes = probes
        self.sock = sock
        config = uvicorn.Config(
            probes, lifespan="off", access_log=False, log_level="warning",
            http=guarded_protocol(DEFAULT_HEAD_TIMEOUT, DEFAULT_BODY_TIMEOUT, _MAX_CONNECTIONS),
            limit_concurrency=_MAX_CONNECTIONS)
        self.server = QuietServer(config)
        self._task: asyncio.Task[Any] | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self.server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + 30
        while not self.server.started and not self._task.done():
            if time.monotonic() > deadline:
                raise RuntimeError("the operator port did not start")
            await asyncio.sleep(0.005)
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        self.sock.close()


def paths_app(routes: dict[str, ASGIApp]) -> ASGIApp:
    """Dispatch on the exact path (case-insensitive); 404 for anything else."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        target = routes.get(str(scope.get("path", "")).rstrip("/").lower())
        if target is None:
            await _send(send, 404, {"Message": "Not found."}, {})
            return
        await target(scope, receive, send)

    return dispatch
