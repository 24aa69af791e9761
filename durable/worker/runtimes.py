"""The runtime the worker drives for an instance: an orchestration's replay engine or an
entity's batch executor, built from the app's registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable.app import OWN_DELETE, Registry
from durable.errors import FunctionNotFoundError
from durable.orchestration.entity_ids import EntityId
from durable.orchestration.entity_runtime import EntityRuntime
from durable.orchestration.runtime import OrchestrationRuntime
from durable.storage.base import OrchestrationWorkItem
from durable.worker.cache import Runtime


def orchestration_runtime(registry: Registry, resolve_activity: Callable[[str], str | None],
                          name: str) -> Runtime | None:
    """A fresh replay engine for orchestrator ``name`` (durable's own, or the one its function
    asks for, such as the Azure SDK protocol's), or None if the app has none."""
    try:
        info = registry.orchestrator(name)
    except FunctionNotFoundError:
        return None
    factory = info.runtime_factory or OrchestrationRuntime
    return factory(
        info.fn,
        resolve_activity=resolve_activity,
        resolve_orchestrator=registry.resolve_orchestrator,
    )


def entity_runtime(registry: Registry, item: OrchestrationWorkItem) -> EntityRuntime:
    """An entity's runtime from its stored scheduler state. An entity with no registered
    function still runs: its callers get FunctionNotFoundError answers."""
    info = registry.entity(item.name)
    return EntityRuntime(info.fn if info is not None else None,
                         EntityId.from_instance_id(item.instance_id), item.entity_state,
                         builtin_delete=info is None or not info.extra.get(OWN_DELETE))


def failing_runtime(error: BaseException) -> OrchestrationRuntime:
    """A runtime whose orchestrator fails at once with ``error``: for an orchestrator this app
    lacks or a version it does not run, and as the stand-in runtime of an instance being
    parked."""

    def fail(context: Any) -> Any:
        raise error

    return OrchestrationRuntime(fail)
