"""The programming model: ``DFApp``/``Blueprint`` and their decorators.

Decorators stack in any order, as in Azure Functions' v2 Python model: each one records a facet
of the function (trigger, name, client binding, HTTP route) on a :class:`FunctionInfo` attached to
the function object, and the app resolves names when it is asked. Decorators return the original
function, so orchestrators and activities stay plain, directly callable Python.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from durable.errors import FunctionNotFoundError, InvalidInputError

F = TypeVar("F", bound=Callable[..., Any])
# Builds the replay runtime of one orchestrator: ``factory(fn, resolve_activity=...,
# resolve_orchestrator=...)`` returning a durable.worker.cache.Runtime.
RuntimeFactory = Callable[..., Any]
# Runs with the started Host (e.g. an adapter's extra listener); see DFApp.on_host_start.
HostHook = Callable[[Any], Awaitable[None]]


class AuthLevel(StrEnum):
    """Who may call an HTTP route (as in ``azure.functions.AuthLevel``)."""

    ANONYMOUS = "anonymous"
    FUNCTION = "function"
    ADMIN = "admin"


class FunctionKind(StrEnum):
    ORCHESTRATOR = "orchestrator"
    ACTIVITY = "activity"
    ENTITY = "entity"
    HTTP = "http"
    TIMER = "timer"


# FunctionInfo.extra key: an entity function that handles the operation "delete" itself (an
# Azure SDK entity), instead of durable's built-in delete.
OWN_DELETE = "own_delete"


@dataclass(eq=False)
class FunctionInfo:
    """What the decorators recorded about one function."""

    fn: Callable[..., Any]
    kind: FunctionKind | None = None
    explicit_name: str | None = None
    trigger_arg: str | None = None
    client_arg: str | None = None
    route: str | None = None
    methods: list[str] | None = None
    auth_level: AuthLevel | None = None
    is_async: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # Orchestrators only: how to build the replay runtime (None: durable's own engine). The
    # Azure adapter plugs the Azure SDK's out-of-process protocol in here.
    runtime_factory: RuntimeFactory | None = None

    @property
    def name(self) -> str:
        return self.explicit_name or self.fn.__name__


def _info(fn: Callable[..., Any]) -> FunctionInfo:
    if not callable(fn):
        raise InvalidInputError(f"Decorators apply to functions, not {type(fn).__name__}.")
    info = getattr(fn, "__durable_function__", None)
    if info is None:
        info = FunctionInfo(fn=fn, is_async=inspect.iscoroutinefunction(fn))
        fn.__durable_function__ = info  # type: ignore[attr-defined]
    return info


class Blueprint:
    """A group of functions that an app can register with ``register_functions``."""

    def __init__(self, http_auth_level: AuthLevel | str = AuthLevel.FUNCTION) -> None:
        self.http_auth_level = AuthLevel(http_auth_level)
        self._functions: list[FunctionInfo] = []

    def _add(self, fn: Callable[..., Any]) -> FunctionInfo:
        info = _info(fn)
        if info not in self._functions:
            self._functions.append(info)
        return info

    def _set_kind(self, info: FunctionInfo, kind: FunctionKind) -> None:
        if info.kind is not None and info.kind is not kind:
            raise InvalidInputError(
                f"Function '{info.name}' cannot be both {info.kind.value} and {kind.value}."
            )
        info.kind = kind

    def orchestration_trigger(
        self, context_name: str, orchestration: str | None = None
    ) -> Callable[[F], F]:
        """Register a generator function as an orchestrator."""

        def decorate(fn: F) -> F:
            info = self._add(fn)
            if inspect.iscoroutinefunction(fn):
                raise InvalidInputError(
                    f"Orchestrator '{fn.__name__}' must be a generator function, not async def."
                )
            self._set_kind(info, FunctionKind.ORCHESTRATOR)
            info.trigger_arg = context_name
            if orchestration:
                info.explicit_name = orchestration
            return fn

        return decorate

    def activity_trigger(self, input_name: str, activity: str | None = None) -> Callable[[F], F]:
        """Register an activity; plain functions run in a thread pool, ``async def`` on the loop."""

        def decorate(fn: F) -> F:
            info = self._add(fn)
            self._set_kind(info, FunctionKind.ACTIVITY)
            info.trigger_arg = input_name
            if activity:
                info.explicit_name = activity
            return fn

        return decorate

    def entity_trigger(
        self, context_name: str, entity_name: str | None = None
    ) -> Callable[[F], F]:
        """Register an entity function: ``fn(context)`` runs one operation on the entity's
        state (``context.operation_name``, ``get_state``, ``set_state``, ``set_result``)."""

        def decorate(fn: F) -> F:
            target = getattr(fn, "entity_function", fn)  # df.Entity.create(fn) works too
            if inspect.iscoroutinefunction(target) or inspect.isgeneratorfunction(target):
                raise InvalidInputError(
                    f"Entity '{getattr(target, '__name__', fn)}' must be a plain function "
                    "(operations run one at a time, without awaiting)."
                )
            info = self._add(fn)
            self._set_kind(info, FunctionKind.ENTITY)
            info.trigger_arg = context_name
            if entity_name:
                info.explicit_name = entity_name
            return fn

        return decorate

    def durable_client_input(
        self,
        client_name: str,
        task_hub: str | None = None,
        connection_name: str | None = None,
    ) -> Callable[[F], F]:
        """Inject a :class:`durable.DurableOrchestrationClient` as argument ``client_name``."""

        def decorate(fn: F) -> F:
            info = self._add(fn)
            info.client_arg = client_name
            return fn

        return decorate

    def function_name(self, name: str) -> Callable[[F], F]:
        """Override the registered name (defaults to the Python function's name)."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError("function_name needs a non-empty name.")

        def decorate(fn: F) -> F:
            self._add(fn).explicit_name = name
            return fn

        return decorate

    def route(
        self,
        route: str | None = None,
        trigger_arg_name: str = "req",
        binding_arg_name: str = "$return",
        methods: Iterable[str] | None = None,
        auth_level: AuthLevel | str | None = None,
    ) -> Callable[[F], F]:
        """Serve the function at ``/api/<route>`` (see ``durable run``)."""

        def decorate(fn: F) -> F:
            info = self._add(fn)
            self._set_kind(info, FunctionKind.HTTP)
            info.trigger_arg = trigger_arg_name
            info.route = route
            info.methods = [m.upper() for m in methods] if methods else None
            info.auth_level = AuthLevel(auth_level) if auth_level is not None else None
            return fn

        return decorate

    def timer_trigger(
        self,
        arg_name: str,
        schedule: str,
        run_on_startup: bool | None = None,
        use_monitor: bool | None = None,
        **_: Any,
    ) -> Callable[[F], F]:
        """Run the function on an NCRONTAB ``schedule`` (``"0 */5 * * * *"``), once per
        occurrence across all workers; ``arg_name`` receives a :class:`durable.TimerRequest`.

        ``run_on_startup`` also runs it when a worker starts; ``use_monitor`` (default: on for
        schedules of a minute or more) catches up one missed occurrence after downtime.
        """
        from durable.schedules.ncrontab import parse_schedule

        parse_schedule(schedule)  # a bad schedule fails here, naming itself

        def decorate(fn: F) -> F:
            info = self._add(fn)
            self._set_kind(info, FunctionKind.TIMER)
            info.trigger_arg = arg_name
            info.extra.update(
                schedule=schedule, run_on_startup=bool(run_on_startup), use_monitor=use_monitor
            )
            return fn

        return decorate

    schedule = timer_trigger

    def functions(self) -> list[FunctionInfo]:
        return list(self._functions)


class DFApp(Blueprint):
    """A durable app: its orchestrators, activities, entities, HTTP routes and timers.

    Versioning (docs/versioning.md, Durable Functions' ``defaultVersion``,
    ``versionMatchStrategy`` and ``versionFailureStrategy``): ``default_version`` is the
    version of orchestrations started without one and the version this app's workers run;
    ``version_match_strategy`` (``none``, ``strict``, ``current-or-older``) says which
    instance versions they take, and ``version_failure_strategy`` (``reject``, ``fail``) what
    happens to the others. (A Functions project's ``host.json`` sets the same three.)

    ``on_host_start`` / ``on_host_stop`` are coroutines a :class:`durable.Host` awaits with
    itself once storage is open (before its worker starts) and after its worker stopped.
    """

    def __init__(
        self,
        http_auth_level: AuthLevel | str = AuthLevel.FUNCTION,
        *,
        default_version: str | None = None,
        version_match_strategy: str = "none",
        version_failure_strategy: str = "reject",
    ) -> None:
        super().__init__(http_auth_level)
        self.on_host_start: list[HostHook] = []
        self.on_host_stop: list[HostHook] = []
        from durable.versioning import VersionFailure, VersionMatch

        self.default_version = default_version
        self.version_match_strategy = VersionMatch.parse(version_match_strategy)
        self.version_failure_strategy = VersionFailure.parse(version_failure_strategy)

    def register_functions(self, blueprint: Blueprint) -> None:
        for info in blueprint.functions():
            if info.kind is FunctionKind.HTTP and info.auth_level is None:
                info.auth_level = blueprint.http_auth_level
            if info not in self._functions:
                self._functions.append(info)

    register_blueprint = register_functions

    def _by_kind(self, kind: FunctionKind) -> dict[str, FunctionInfo]:
        found: dict[str, FunctionInfo] = {}
        folded: dict[str, str] = {}
        for info in self._functions:
            if info.kind is kind:
                # Durable Functions matches function names ignoring case, so two names that
                # differ only in case would be one function there: refuse them here too.
                clash = folded.get(info.name.casefold())
                if clash is not None:
                    same = "named" if clash == info.name else f"named '{clash}' and"
                    raise InvalidInputError(
                        f"Two {kind.value} functions are {same} '{info.name}' (function names "
                        "are case-insensitive)."
                    )
                folded[info.name.casefold()] = info.name
                found[info.name] = info
        return found

    @property
    def orchestrators(self) -> dict[str, FunctionInfo]:
        return self._by_kind(FunctionKind.ORCHESTRATOR)

    @property
    def activities(self) -> dict[str, FunctionInfo]:
        return self._by_kind(FunctionKind.ACTIVITY)

    @property
    def entities(self) -> dict[str, FunctionInfo]:
        return self._by_kind(FunctionKind.ENTITY)

    @property
    def http_functions(self) -> list[FunctionInfo]:
        return [info for info in self._functions if info.kind is FunctionKind.HTTP]

    @property
    def timer_functions(self) -> list[FunctionInfo]:
        return list(self._by_kind(FunctionKind.TIMER).values())

    def registry(self) -> Registry:
        """A frozen name lookup for the worker (decorators may not change it afterwards)."""
        return Registry(self.orchestrators, self.activities, self.entities)


class Registry:
    """Name -> function lookup used by workers and clients.

    Lookups ignore case, as the Durable Functions extension's do (``start_new("casename")``
    starts ``CaseName``); the registered spelling is what history and status record.
    """

    def __init__(
        self,
        orchestrators: dict[str, FunctionInfo],
        activities: dict[str, FunctionInfo],
        entities: dict[str, FunctionInfo] | None = None,
    ) -> None:
        self.orchestrators = orchestrators
        self.activities = activities
        self.entities = entities or {}
        self._orchestrators_folded = {name.casefold(): info for name, info in orchestrators.items()}
        self._activities_folded = {name.casefold(): info for name, info in activities.items()}
        self._entities_folded = {name.casefold(): info for name, info in self.entities.items()}

    def resolve_activity(self, name: str) -> str | None:
        """The registered spelling of activity ``name`` (any case), or None."""
        info = self._find(self.activities, self._activities_folded, name)
        return info.name if info is not None else None

    def resolve_orchestrator(self, name: str) -> str | None:
        """The registered spelling of orchestrator ``name`` (any case), or None."""
        info = self._find(self.orchestrators, self._orchestrators_folded, name)
        return info.name if info is not None else None

    def entity(self, name: str) -> FunctionInfo | None:
        """The entity function registered as ``name`` (any case), or None."""
        return self._find(self.entities, self._entities_folded, name)

    def has_activity(self, name: str) -> bool:
        return self.resolve_activity(name) is not None

    def has_orchestrator(self, name: str) -> bool:
        return self.resolve_orchestrator(name) is not None

    def orchestrator(self, name: str) -> FunctionInfo:
        info = self._find(self.orchestrators, self._orchestrators_folded, name)
        if info is None:
            raise FunctionNotFoundError("orchestrator", name)
        return info

    def activity(self, name: str) -> FunctionInfo:
        info = self._find(self.activities, self._activities_folded, name)
        if info is None:
            raise FunctionNotFoundError("activity", name)
        return info

    @staticmethod
    def _find(exact: dict[str, FunctionInfo], folded: dict[str, FunctionInfo], name: str
              ) -> FunctionInfo | None:
        info = exact.get(name)  # the common case: the registered spelling
        if info is None and isinstance(name, str):
            info = folded.get(name.casefold())
        return info


# The names Azure's samples use: ``app = func.FunctionApp()`` with ``import durable as func``.
FunctionApp = DFApp
