"""Replay stored histories against today's code, before deploying it.

Instances started by yesterday's code replay under today's. ``replay`` runs every history file
through the current orchestrator functions and reports each place where the code no longer
does what the history recorded (a renamed activity, a reordered call, a removed timer), with
both calls, so a CI job can refuse a deployment that would break instances in flight::

    report = durable.testing.replay(app, Path("histories").glob("*.json"))
    assert report.ok, report

History files are written by ``durable instances export-history`` (or :func:`export_history`):

    {"format": "durable-history", "version": 1,
     "instance": {"instanceId", "name", "executionId", "status", "exportedAt"},
     "events": [<history events, in durable's storage encoding (camelCase, "type" tag)>]}

A reader refuses a file of another format or a newer version rather than guessing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durable.app import DFApp, Registry
from durable.errors import InvalidInputError, NonDeterminismError
from durable.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    event_from_dict,
    event_to_dict,
)
from durable.orchestration.runtime import OrchestrationRuntime

FORMAT = "durable-history"
VERSION = 1


def export_history(instance_id: str, name: str, execution_id: str, status: str,
                   events: list[HistoryEvent]) -> dict[str, Any]:
    """The history-file document for one instance."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "instance": {"instanceId": instance_id, "name": name, "executionId": execution_id,
                     "status": status, "exportedAt": time.time()},
        "events": [event_to_dict(e) for e in events],
    }


def read_history_file(path: str | Path) -> tuple[dict[str, Any], list[HistoryEvent]]:
    """(instance metadata, events) of a history file; InvalidInputError if it is not one."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable history file: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInputError(f"{path}: not a {FORMAT} file.")
    version = document.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise InvalidInputError(
            f"{path}: history format version {version!r}; this durable reads up to {VERSION}."
        )
    try:
        events = [event_from_dict(item) for item in document.get("events", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: an event cannot be read: {exc}") from exc
    return dict(document.get("instance") or {}), events


@dataclass(slots=True)
class ReplayProblem:
    """One history that today's code does not replay."""

    source: str
    instance_id: str
    orchestrator: str
    message: str
    expected: str | None = None  # what history recorded
    actual: str | None = None  # what the code does now

    def __str__(self) -> str:
        both = ""
        if self.expected or self.actual:
            both = f" (history: {self.expected or 'nothing'}; code: {self.actual or 'nothing'})"
        return f"{self.source}: {self.instance_id} [{self.orchestrator}]: {self.message}{both}"


@dataclass(slots=True)
class ReplayReport:
    replayed: int = 0
    problems: list[ReplayProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"{self.replayed} histories replayed, {len(self.problems)} problems"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


Orchestrators = DFApp | Registry | Callable[..., Any] | dict[str, Callable[..., Any]]


def replay(code: Orchestrators, history_files: Iterable[str | Path]) -> ReplayReport:
    """Replay each history file against ``code`` (an app, a registry, one orchestrator, or a
    ``{name: function}`` map) and report every divergence."""
    lookup = _lookup(code)
    report = ReplayReport()
    for path in history_files:
        instance, events = read_history_file(path)
        started = next((e for e in events if isinstance(e, ExecutionStarted)), None)
        name = str(instance.get("name") or (started.name if started else ""))
        instance_id = str(instance.get("instanceId") or (started.instance_id if started else ""))
        report.replayed += 1
        problem = replay_history(lookup, name, events, runtime_factory=_factory_of(code, name))
        if problem is not None:
            problem.source, problem.instance_id = str(path), instance_id
            report.problems.append(problem)
    return report


def replay_history(lookup: Callable[[str], Callable[..., Any] | None], name: str,
                   events: list[HistoryEvent], *,
                   runtime_factory: Callable[..., Any] | None = None) -> ReplayProblem | None:
    """Replay one history against the orchestrator ``lookup`` finds for ``name``; the problem
    found, or None. ``runtime_factory`` is the function's own engine, if it has one."""
    fn = lookup(name)
    if fn is None:
        return ReplayProblem("", "", name, f"no orchestrator named '{name}' in today's code")
    if runtime_factory is not None and runtime_factory is not OrchestrationRuntime:
        # The Azure SDK's engine replays inside the SDK and reports no divergence to compare,
        # so a pass here would mean nothing: say so instead.
        return ReplayProblem("", "", name, "replay testing covers orchestrators run by "
                             "durable's engine, not ones run through the Azure SDK's protocol")
    runtime = OrchestrationRuntime(fn)
    runtime.replay(events)
    error = runtime.last_error
    if isinstance(error, NonDeterminismError):
        return ReplayProblem("", "", name, error.message, error.expected, error.actual)
    recorded = next((e for e in reversed(events) if isinstance(e, ExecutionCompleted)), None)
    recorded_status = recorded.status if recorded is not None else None
    failure = runtime.failure
    if failure is not None and recorded_status != "Failed":
        # The code now raises where the history went on (or completed).
        return ReplayProblem("", "", name, "the code now fails",
                             recorded.result if recorded is not None else None,
                             f"{failure.error_type}: {failure.message}")
    if recorded is not None and recorded_status == "Completed" and runtime.is_done and (
            runtime.output != recorded.result):
        return ReplayProblem("", "", name, "the code now returns another output",
                             recorded.result, runtime.output)
    return None


def _factory_of(code: Orchestrators, name: str) -> Callable[..., Any] | None:
    """The engine an app's orchestrator asks for (``FunctionInfo.runtime_factory``), if any."""
    registry = code.registry() if isinstance(code, DFApp) else code
    if not isinstance(registry, Registry):
        return None
    found = registry.resolve_orchestrator(name)
    return registry.orchestrators[found].runtime_factory if found is not None else None


def _lookup(code: Orchestrators) -> Callable[[str], Callable[..., Any] | None]:
    if isinstance(code, DFApp):
        code = code.registry()
    if isinstance(code, Registry):
        registry = code

        def from_registry(name: str) -> Callable[..., Any] | None:
            found = registry.resolve_orchestrator(name)
            return registry.orchestrators[found].fn if found is not None else None

        return from_registry
    if isinstance(code, dict):
        folded = {key.casefold(): fn for key, fn in code.items()}
        return lambda name: folded.get(name.casefold())
    single = code
    return lambda name: single
