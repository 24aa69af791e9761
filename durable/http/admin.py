"""``POST /admin/functions/{name}``: run a function that no HTTP request triggers, by hand.

This is the Functions host's admin API for it, which Core Tools serves locally (READMEs use it
to run a timer now: ``curl -X POST localhost:7071/admin/functions/cleanup -d '{}'``). As there:

- The body is ``{"input": "<text>"}`` (a string, number or boolean; ``{}`` for none). An empty
  body, a body that is not a JSON object, or an ``input`` that is an object or array is a 400.
- The answer is **202** at once, with no body; the function runs in the background, in this
  process, and what it returns or raises is logged. A function that is not found is a 404.
- A **timer** function gets a ``TimerRequest`` that is not past due, with its schedule monitor's
  status (the input is ignored, as the timer binding ignores it). The run is outside the
  schedule: it neither claims nor moves an occurrence, and may overlap a scheduled run, as on
  Azure.
- An **activity** gets the input read as JSON text (``{"input": "\\"Tokyo\\""}`` gives
  ``"Tokyo"``), as the Durable extension reads it; its result is logged and dropped.
- **HTTP** functions, **orchestrators** and **entities**: the Functions host answers 202 and
  the invocation then fails in the background (their triggers cannot bind a string); durable
  answers 400 at once, saying how to call them instead.

Keys: ``AuthLevel.ADMIN`` (the master key) when keys are enforced (beyond loopback), nothing on
loopback, as Azure and Core Tools. The key is checked before the function is looked up, so
function names do not leak.

Every run is tracked until it ends, so ``durable run`` lets runs in flight finish before it
stops the worker and closes storage (:meth:`AdminApi.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from typing import Any

from starlette.requests import Request

from durable import serialization
from durable.app import DFApp, FunctionInfo, FunctionKind
from durable.client import DurableOrchestrationClient
from durable.http.errors import HttpError
from durable.http_model import HttpResponse
from durable.management_urls import WEBHOOK_PATH
from durable.schedules.timers import call_timer_function, manual_request

log = logging.getLogger("durable.http")

ADMIN_PATH = "/admin"


def is_admin_path(lowered: str) -> bool:
    """``/admin`` and everything under it: reserved for the admin API, as in Azure."""
    return lowered == ADMIN_PATH or lowered.startswith(ADMIN_PATH + "/")


def match(method: str, segments: list[str]) -> str | None:
    """The function name of ``POST /admin/functions/{name}``, or None (a 404)."""
    if method == "POST" and len(segments) == 2 and segments[0].lower() == "functions":
        return segments[1]
    return None


def _input_of(body: bytes) -> str | None:
    """The ``input`` of a ``{"input": ...}`` body (as text), as the host binds it."""
    if not body.strip():
        raise HttpError(400, 'The request body is empty; send {"input": "..."} (or {} for no '
                             'input).')
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, 'The request body must be a JSON object: {"input": "..."}.')
    value = next((v for k, v in data.items() if k.lower() == "input"), None)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise HttpError(400, "'input' must be a string, number or boolean; send a JSON payload "
                         "as a string.")


def _takes_argument(fn: Any) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in parameters)


class AdminApi:
    """The admin route of one server: finds the function, answers, runs it in the background."""

    def __init__(self, app: DFApp, client: DurableOrchestrationClient) -> None:
        self.client = client
        self.functions: dict[str, FunctionInfo] = {}
        for info in app.functions():
            if info.kind is not None:
                self.functions.setdefault(info.name.lower(), info)
        self._runs: set[asyncio.Task[None]] = set()

    async def invoke(self, name: str, request: Request) -> HttpResponse:
        info = self.functions.get(name.lower())
        if info is None:
            raise HttpError(404, f"No function named '{name}'.")
        text = _input_of(await request.body())
        if info.kind is FunctionKind.TIMER:
            work = self._timer(info)
        elif info.kind is FunctionKind.ACTIVITY:
            work = self._activity(info, self._activity_input(info, text))
        else:
            raise HttpError(400, self._refusal(info))
        task = asyncio.get_running_loop().create_task(work)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return HttpResponse(status_code=202)

    @staticmethod
    def _refusal(info: FunctionInfo) -> str:
        name = info.name
        if info.kind is FunctionKind.HTTP:
            return (f"Function '{name}' is HTTP-triggered; call its route instead (the admin "
                    "API runs functions that no HTTP request triggers).")
        if info.kind is FunctionKind.ORCHESTRATOR:
            return (f"Function '{name}' is an orchestrator; start it with POST "
                    f"{WEBHOOK_PATH}/orchestrators/{name} (or the app's own starter).")
        return (f"Function '{name}' is an entity; signal it with POST "
                f"{WEBHOOK_PATH}/entities/{name}/<key>?op=<operation>.")

    @staticmethod
    def _activity_input(info: FunctionInfo, text: str | None) -> Any:
        if text is None:
            return None
        try:
            return serialization.loads(text)
        except Exception:
            raise HttpError(400, f"The input of activity '{info.name}' must be JSON text (a "
                                 f"string is {json.dumps(json.dumps('text'))}).") from None

    async def _timer(self, info: FunctionInfo) -> None:
        try:
            request = await manual_request(info, self.client)
            await call_timer_function(info, request, self.client)
        except Exception:
            log.exception("timer function '%s' (run by hand) failed", info.name)
            return
        log.info("timer function '%s' run by hand: done", info.name)

    async def _activity(self, info: FunctionInfo, value: Any) -> None:
        args = [value] if _takes_argument(info.fn) else []
        try:
            if info.is_async:
                result = await info.fn(*args)
            else:
                result = await asyncio.to_thread(info.fn, *args)
                if inspect.isawaitable(result):
                    result = await result
        except Exception:
            log.exception("activity '%s' (run by hand) failed", info.name)
            return
        log.info("activity '%s' run by hand returned %.200r", info.name, result)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for runs in flight, then cancel what is left."""
        runs = set(self._runs)
        if not runs:
            return
        _, pending = await asyncio.wait(runs, timeout=timeout)
        for task in pending:
            log.warning("function run by hand still running at shutdown; cancelled")
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["ADMIN_PATH", "AdminApi", "is_admin_path", "match"]
