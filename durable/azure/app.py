"""An Azure Functions project as a durable app: :func:`load_project`.

Each of the project's functions becomes a durable function whose callable speaks the Functions
worker's conventions (:mod:`durable.azure.bindings`); orchestrators run on the SDK's own code
through :class:`durable.azure.runtime.SdkOrchestrationRuntime`. The result is an ordinary
:class:`durable.DFApp`, so ``durable run``, ``durable worker`` and :class:`durable.Host` run it
as they run any app, on SQLite or PostgreSQL.

Like the Functions host, every process that runs the app serves the Durable extension's local
RPC endpoint: the management API without keys on ``127.0.0.1`` at a free port. That is where
the client binding's ``rpcBaseUrl`` points, so the SDK's ``DurableOrchestrationClient`` calls
work in HTTP functions, timers and activities alike, in ``durable run`` and ``durable worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from durable.app import OWN_DELETE, AuthLevel, DFApp, FunctionInfo, FunctionKind
from durable.azure.bindings import (
    CLIENT_BINDINGS,
    HttpFunction,
    activity_callable,
    entity_callable,
    orchestrator_invoke,
    timer_callable,
)
from durable.azure.functions import AppLoadError, FunctionSpec, load_functions
from durable.azure.project import FunctionsProject, read_project
from durable.azure.runtime import runtime_factory
from durable.azure.session import install_fast_timestamps, session_function

log = logging.getLogger("durable.azure")

RPC_HOST = "127.0.0.1"
WEBHOOK_PATH = "/runtime/webhooks/durabletask"
_SUPPORTED = {
    "httptrigger": "HTTP trigger",
    "orchestrationtrigger": "orchestrator",
    "activitytrigger": "activity",
    "timertrigger": "timer trigger",
    "entitytrigger": "entity",
    "durableclient": "durable client input",
    "orchestrationclient": "durable client input",
    "http": "HTTP output",
}


class UnsupportedBindingError(AppLoadError):
    """A function uses a binding durable does not provide."""


class AzureFunctionsApp(DFApp):
    """The durable app of one Functions project (see the module docstring)."""

    def __init__(self, project: FunctionsProject) -> None:
        super().__init__(http_auth_level=AuthLevel.FUNCTION)
        self.project = project
        self.route_prefix = project.route_prefix
        self.default_version = project.default_version
        self.rpc_base_url: str | None = None
        self._host: Any = None
        self._rpc: tuple[Any, asyncio.Task[None], Any] | None = None
        self._starter: tuple[tuple[Any, ...], str] | None = None
        self.on_host_start.append(self._start_rpc)
        self.on_host_stop.append(self._stop_rpc)

    # -- the client binding ---------------------------------------------------------------------

    def starter(self) -> str:
        """The ``durableClient`` binding value for an invocation now (reference §8.7)."""
        from durable.management_urls import WebhookSettings, management_urls

        if self.rpc_base_url is None:
            raise RuntimeError("The durable client binding needs a running host.")
        client = self._host.client if self._host is not None else None
        served = getattr(client, "webhooks", None)
        origin = served.origin if served is not None else self.rpc_base_url.split(
            WEBHOOK_PATH)[0]
        key = served.system_key if served is not None else None
        cache_key = (self.rpc_base_url, origin, key)
        if self._starter is not None and self._starter[0] == cache_key:
            return self._starter[1]
        settings = WebhookSettings(origin=origin, task_hub=self.project.task_hub,
                                   system_key=key)
        urls = management_urls(settings, "INSTANCEID")
        base = f"{origin}{WEBHOOK_PATH}"
        query = urls["purgeHistoryDeleteUri"].split("?", 1)[1]
        create = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
        value = json.dumps({
            "taskHubName": self.project.task_hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{create}?{query}",
                "createAndWaitOnNewInstancePostUri":
                    f"{create}?timeout={{timeoutInSeconds}}&pollingInterval="
                    f"{{intervalInSeconds}}&{query}",
            },
            "managementUrls": urls,
            "baseUrl": base,
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": self.rpc_base_url,
        })
        self._starter = (cache_key, value)
        return value

    # -- the local RPC endpoint -----------------------------------------------------------------

    async def _start_rpc(self, host: Any) -> None:
        import uvicorn

        from durable.http.app import create_app
        from durable.http.protocol import QuietServer
        from durable.http.server import bind

        self._host = host
        host.client.task_hub_name = self.project.task_hub
        _forget_foreign_sdk_session()
        sock = bind(RPC_HOST, 0)
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(DFApp(), host.client), lifespan="off",
                                access_log=False, log_level="warning",
                                timeout_graceful_shutdown=5)
        server = QuietServer(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.005)
        if task.done():
            sock.close()
            task.result()  # raises why it stopped
        self._rpc = (server, task, sock)
        self.rpc_base_url = f"http://{RPC_HOST}:{port}{WEBHOOK_PATH}/"
        self._starter = None

    async def _stop_rpc(self, host: Any) -> None:
        await _close_sdk_session()
        rpc, self._rpc = self._rpc, None
        if rpc is None:
            return
        server, task, sock = rpc
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        sock.close()
        self.rpc_base_url = None


def _forget_foreign_sdk_session() -> None:
    """The SDK keeps one aiohttp session per process; drop one made on another event loop
    (a previous Host in the same process), which cannot be used from this one."""
    from azure.durable_functions.models.utils import http_utils

    session = getattr(http_utils, "_client_session", None)
    if session is not None and getattr(session, "_loop", None) is not _running_loop():
        http_utils._client_session = None
        http_utils._session_lock = asyncio.Lock()


async def _close_sdk_session() -> None:
    from azure.durable_functions.models.utils import http_utils

    session = getattr(http_utils, "_client_session", None)
    if session is not None and getattr(session, "_loop", None) is _running_loop():
        with contextlib.suppress(Exception):
            await session.close()
        http_utils._client_session = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# -- building the app -------------------------------------------------------------------------


def _check_bindings(spec: FunctionSpec) -> list[str]:
    problems: list[str] = []
    trigger = spec.trigger
    if trigger is None:
        problems.append(f"function '{spec.name}' has no trigger binding")
        return problems
    triggers = [b for b in spec.bindings if b.kind.endswith("trigger")]
    if len(triggers) > 1:
        problems.append(f"function '{spec.name}' has {len(triggers)} triggers; it may have one")
    for binding in spec.bindings:
        label = _SUPPORTED.get(binding.kind)
        if label is None or (binding.kind == "http" and trigger.kind != "httptrigger"):
            problems.append(
                f"function '{spec.name}': binding '{binding.name}' of type '{binding.type}' "
                f"({binding.direction}) is not supported by durable"
            )
        elif binding.kind in CLIENT_BINDINGS and binding.direction != "in":
            problems.append(f"function '{spec.name}': the {binding.type} binding "
                            f"'{binding.name}' must have direction 'in'")
    return problems


def _info(spec: FunctionSpec, app: AzureFunctionsApp) -> FunctionInfo:
    trigger = spec.trigger
    assert trigger is not None
    kind = trigger.kind
    if kind == "orchestrationtrigger":
        name = trigger.get("orchestration") or spec.name
        return FunctionInfo(
            fn=orchestrator_invoke(spec), kind=FunctionKind.ORCHESTRATOR, explicit_name=name,
            trigger_arg=trigger.name,
            runtime_factory=runtime_factory(
                app.project.default_version,
                None if app.project.extended_sessions is False else session_function(spec.fn),
                keep_session=app.project.extended_sessions is True),
        )
    if kind == "entitytrigger":
        name = trigger.get("entityName") or spec.name
        # The Durable extension hands "delete" to the SDK's entity like any operation.
        return FunctionInfo(fn=entity_callable(spec), kind=FunctionKind.ENTITY,
                            explicit_name=name, trigger_arg=trigger.name,
                            extra={OWN_DELETE: True})
    if kind == "activitytrigger":
        name = trigger.get("activity") or spec.name
        fn, is_async = activity_callable(spec, app.starter)
        return FunctionInfo(fn=fn, kind=FunctionKind.ACTIVITY, explicit_name=name,
                            trigger_arg=trigger.name, is_async=is_async)
    if kind == "timertrigger":
        from durable.schedules.ncrontab import parse_schedule

        schedule = trigger.get("schedule")
        if not isinstance(schedule, str):
            raise AppLoadError(f"Timer function '{spec.name}' has no schedule.")
        parse_schedule(schedule)
        return FunctionInfo(
            fn=timer_callable(spec, app.starter), kind=FunctionKind.TIMER,
            explicit_name=spec.name, trigger_arg="timer", is_async=True,
            extra={"schedule": schedule,
                   "run_on_startup": bool(trigger.get("runOnStartup", False)),
                   "use_monitor": trigger.get("useMonitor")},
        )
    route = trigger.get("route")
    methods = trigger.get("methods")
    level = str(trigger.get("authLevel") or "function").lower()
    return FunctionInfo(
        fn=HttpFunction(spec, app.starter), kind=FunctionKind.HTTP, explicit_name=spec.name,
        trigger_arg="req", route=route if isinstance(route, str) else spec.name,
        methods=[str(m).upper() for m in methods] if methods else None,
        auth_level=AuthLevel(level) if level in AuthLevel._value2member_map_ else (
            AuthLevel.FUNCTION),
        is_async=True,
    )


def load_project(path: Any) -> AzureFunctionsApp:
    """Read, import and index the Functions project at ``path`` (a folder with host.json)."""
    project = read_project(path)
    project.apply_settings()
    os.environ.setdefault("AzureWebJobsScriptRoot", str(project.root))
    specs = load_functions(project)
    problems = [problem for spec in specs for problem in _check_bindings(spec)]
    if problems:
        raise UnsupportedBindingError(
            f"{project.root} cannot run on durable:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    install_fast_timestamps()
    app = AzureFunctionsApp(project)
    for spec in specs:
        app._functions.append(_info(spec, app))
    app.registry()  # duplicate names fail now, not at the first start
    return app


__all__ = ["AzureFunctionsApp", "UnsupportedBindingError", "load_project"]
