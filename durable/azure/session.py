"""An SDK orchestration kept alive between episodes, so an episode costs only its new events.

The out-of-process protocol is stateless: each episode the host hands the SDK the whole history
and the SDK replays the orchestrator from its first line, building an object per event and
parsing each event's timestamp with ``dateutil`` (most of W11's cost). But the SDK's own
executor takes history one event at a time (``TaskOrchestrationExecutor.process_event``), and
after an episode's events it is in exactly the state that replaying them from the start would
leave it in: the same open tasks, the same generator position, the same cumulative action list.
So for an execution durable holds in its cache, :class:`SdkSession` keeps the SDK's context,
executor and generator, and feeds each later episode only the events that are new to the SDK;
what comes back is the same state JSON the protocol returns. The first call of an execution
(a new instance, or one read back after a cache miss) is the protocol's full replay.

One thing a session cannot give: an orchestrator that reads ``context.is_replaying`` sees, on
Azure, ``True`` at every line that an episode replays, and a value it keeps (in a variable, a
list, its output) is recomputed by every replay. A kept generator never runs those lines again,
so it would keep the values of the episode that first ran them (``False``). The session's
context therefore notes any read of ``is_replaying`` (:attr:`SdkSession.replay_sensitive`),
and the runtime ends the session after such an episode: that execution is replayed in full from
then on, as on Azure. (A read during a session's episode is at the live edge, where a full
replay reads ``False`` too, so that episode's own decision is already Azure's.)

Two things are not the protocol's, and both are checked: the session reaches into the SDK's
executor (``process_event``, ``get_orchestrator_state_str``, the context's history list), so
:func:`session_function` offers sessions only for an ``Orchestrator.create`` handle of an SDK
whose executor has those parts (otherwise every episode is a full replay, as before); and
tests/azure/driver.py runs every protocol test with a live session and compares each decision
with a full replay of the same history.

:func:`install_fast_timestamps` replaces the ``dateutil`` parse the SDK's ``HistoryEvent``
uses with one that reads the timestamps durable writes (``2024-01-02T03:04:05.123456Z``) a
hundred times faster and hands any other text to ``dateutil``; the value is the one
``dateutil`` returns, in the zone it gives (``tzutc()``, or ``tzlocal()`` where the local zone
is named UTC).
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from dateutil.tz import tzutc

from durable.azure.protocol import iso, iso_of

_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z\Z")


@dataclass(slots=True)
class Progress:
    """An answer without the protocol's JSON text: the actions added since the last answer
    (as the JSON values the protocol would carry), the custom status, and for an execution
    that returned, its output."""

    actions: list[dict[str, Any]]
    custom_status: Any = None
    has_custom_status: bool = False
    is_done: bool = False
    output: Any = None
    has_output: bool = False


class SdkSession:
    """The SDK's context and executor of one execution (see the module docstring)."""

    def __init__(self, function: Callable[..., Any], input_type: Any) -> None:
        self._function = function
        self._input_type = input_type
        self._context: Any = None
        self._executor: Any = None
        self._taken = 0  # actions already answered with
        self._current_schema = False  # the context numbers actions in one cumulative list

    @property
    def started(self) -> bool:
        return self._executor is not None

    def start(self, payload: dict[str, Any]) -> str:
        """The protocol's call (``payload``: the trigger's JSON value, whole history): the
        SDK's state JSON, or its exception with the state attached, as the handle gives."""
        sdk = _sdk()
        context = _watched_context(sdk.DurableOrchestrationContext)(**payload)
        context._input_expected_type = self._input_type
        executor = _new_executor()
        self._context, self._executor = context, executor
        self._current_schema = context._replay_schema is not sdk.ReplaySchema.V1
        return self.state_text(executor.execute(context, context.histories, self._function))

    @property
    def replay_sensitive(self) -> bool:
        """Whether the orchestrator has read ``context.is_replaying``: its next episodes must
        be full replays (see the module docstring)."""
        return bool(getattr(self._context, _READ_FLAG, False))

    def feed(self, events: Sequence[dict[str, Any]]) -> None:
        """The next episode's events (the protocol's JSON objects, not yet played), taken up
        where the last call stopped, as a full replay would reach them."""
        history_event = _sdk().HistoryEvent
        executor, history = self._executor, self._context.histories
        executor._is_processing_new_events = True
        for fields in events:
            event = history_event(**fields)
            history.append(event)
            if not executor.has_execution_completed:
                executor.process_event(event)

    def progress(self) -> Progress | None:
        """The answer of an execution that runs on or has returned, as
        ``get_orchestrator_state_str`` would give it; None when only that call gives it
        right (the orchestrator raised, continued as new, or returned what the SDK refuses to
        serialize: then :meth:`state_text` is the answer)."""
        executor, context = self._executor, self._context
        if not self._current_schema or executor.exception is not None:
            return None
        state: dict[str, Any] = {}
        if executor.has_execution_completed:
            if context.will_continue_as_new or not executor.orchestrator_returned:
                return None
            if executor.output is not None:
                try:
                    json.dumps(executor.output)  # the SDK's own check
                except Exception:
                    return None
                state["output"] = executor.output
        added = context._action_payload_v2[self._taken:]
        self._taken += len(added)
        state["actions"] = [a.to_json() for a in added]
        if context.custom_status:
            state["customStatus"] = context.custom_status
        # The JSON values the protocol's text would carry, as if encoded the way the SDK
        # encodes its state (one dict through df_dumps) and read back: directly where the
        # values are plain JSON already, else through that text.
        values = state if _plain(state) else json.loads(_sdk().df_dumps(state))
        return Progress(values["actions"], values.get("customStatus"), "customStatus" in values,
                        executor.has_execution_completed, values.get("output"),
                        "output" in values)

    def state_text(self, answer: str | None = None) -> str:
        """The protocol's answer now (cumulative actions): ``answer`` if given, else asked of
        the executor (raising its exception, state attached, if the orchestrator raised)."""
        text: str = answer if answer is not None else self._executor.get_orchestrator_state_str()
        if self._current_schema:
            self._taken = len(self._context._action_payload_v2)
        return text


@functools.cache
def _sdk() -> Any:
    """The SDK's parts a session uses, imported once (a session runs on every episode)."""
    from azure.durable_functions.models.DurableOrchestrationContext import (
        DurableOrchestrationContext,
    )
    from azure.durable_functions.models.history.HistoryEvent import HistoryEvent
    from azure.durable_functions.models.ReplaySchema import ReplaySchema
    from azure.durable_functions.models.TaskOrchestrationExecutor import (
        TaskOrchestrationExecutor,
    )
    from azure.functions._durable_functions import df_dumps

    return types.SimpleNamespace(
        DurableOrchestrationContext=DurableOrchestrationContext, HistoryEvent=HistoryEvent,
        ReplaySchema=ReplaySchema, TaskOrchestrationExecutor=TaskOrchestrationExecutor,
        df_dumps=df_dumps)


_READ_FLAG = "_durable_read_is_replaying"
_watched: dict[type, type] = {}


def _watched_context(base: type) -> type:
    """The SDK's context class, except that reading ``is_replaying`` sets ``_READ_FLAG`` on
    the context (an instance of a subclass, so ``isinstance`` checks still hold)."""
    watched = _watched.get(base)
    if watched is None:
        plain = base.is_replaying  # type: ignore[attr-defined]

        def is_replaying(self: Any) -> Any:
            setattr(self, _READ_FLAG, True)
            return plain.fget(self)

        is_replaying.__doc__ = plain.__doc__
        watched = type(base.__name__, (base,), {
            "is_replaying": property(is_replaying), "__module__": base.__module__,
            "__qualname__": base.__qualname__})
        _watched[base] = watched
    return watched


def _plain(value: Any) -> bool:
    """Whether ``json.loads(json.dumps(value))`` would give ``value`` back as it is (an
    IntEnum, which JSON writes as its number, counts: it is equal to that number)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    if isinstance(value, int):
        return True
    return kind is float and math.isfinite(value)


def _zone_of_z() -> tzinfo | None:
    """The time zone ``dateutil`` gives a ``...Z`` timestamp in this process: ``tzutc()``,
    or ``tzlocal()`` where the local zone's names are UTC's (it matches the name before it
    looks at the offset). None (no fast reading) if that zone is not UTC all year."""
    from dateutil.parser import parse

    winter = parse("2001-01-01T00:00:00.000000Z").tzinfo
    summer = parse("2001-07-01T00:00:00.000000Z").tzinfo
    if winter is None or type(winter) is not type(summer):
        return None
    if any(winter.utcoffset(datetime(2001, month, 1)) != timedelta(0) for month in (1, 7)):
        return None
    return tzutc() if isinstance(winter, tzutc) else winter


_Z_ZONE = _zone_of_z()


class Stamp(str):
    """A timestamp as the protocol writes it, carrying the value ``dateutil`` would read
    from it, so that :func:`fast_timestamp` need not read it back (a session's events)."""

    __slots__ = ("moment",)
    moment: datetime


def stamp(timestamp: float) -> str:
    """``protocol.iso(timestamp)``, as a :class:`Stamp` where the fast read applies: the same
    text, and the datetime ``dateutil`` parses it to (the same fields and zone)."""
    if _Z_ZONE is None:
        return iso(timestamp)
    # Through UTC: the zone is UTC all year, and tzlocal's own conversions are slow Python.
    utc = datetime.fromtimestamp(timestamp, UTC)
    text = Stamp(iso_of(utc))
    text.moment = utc.replace(tzinfo=_Z_ZONE)
    return text


_SHARED_STATE = ("event_to_SetTaskValuePayload", "task_completion_events")
_executor_parts: dict[str, Any] | None = None


def _new_executor() -> Any:
    """A fresh ``TaskOrchestrationExecutor``. Its ``__init__`` builds a namedtuple class and a
    table that never change (a third of a short orchestration's start); they are built once
    and shared, and ``initialize()`` sets up the rest, as ``__init__`` does. If the installed
    SDK's executor holds anything else, the real ``__init__`` runs."""
    executor_class = _sdk().TaskOrchestrationExecutor
    global _executor_parts
    if _executor_parts is None:
        sample = executor_class()
        shared = {name: vars(sample)[name] for name in _SHARED_STATE if name in vars(sample)}
        trial = executor_class.__new__(executor_class)
        vars(trial).update(shared)
        trial.initialize()
        _executor_parts = shared if set(vars(trial)) == set(vars(sample)) else {}
    if not _executor_parts:
        return executor_class()
    executor = executor_class.__new__(executor_class)
    vars(executor).update(_executor_parts)
    executor.initialize()
    return executor


def session_function(handle: Any) -> tuple[Callable[..., Any], Any] | None:
    """The orchestrator function and input type behind an ``Orchestrator.create`` handle, if
    the installed SDK's executor has what a session needs; else None (full replays)."""
    function = getattr(handle, "orchestrator_function", None)
    if not callable(function):
        return None
    try:
        from azure.durable_functions.models.DurableOrchestrationContext import (
            DurableOrchestrationContext,
        )
        from azure.durable_functions.models.TaskOrchestrationExecutor import (
            TaskOrchestrationExecutor,
        )
    except ImportError:
        return None
    needed = ("execute", "process_event", "get_orchestrator_state_str", "has_execution_completed")
    if not all(hasattr(TaskOrchestrationExecutor, name) for name in needed):
        return None
    if not isinstance(getattr(DurableOrchestrationContext, "histories", None), property):
        return None
    if "_is_processing_new_events" not in vars(TaskOrchestrationExecutor()):
        return None
    return function, getattr(handle, "_df_input_type", None)


def fast_timestamp(parse: Callable[..., datetime]) -> Callable[..., datetime]:
    """``parse`` (dateutil's), reading durable's own timestamp form directly (in the zone
    dateutil would give it); ``parse`` itself where that zone is not UTC all year."""
    zone = _Z_ZONE
    if zone is None:
        return parse

    def read(text: Any, *args: Any, **kwargs: Any) -> datetime:
        if type(text) is Stamp and not args and not kwargs:
            return text.moment
        if not args and not kwargs and isinstance(text, str):
            found = _TIMESTAMP.match(text)
            if found is not None:
                year, month, day, hour, minute, second, fraction = found.groups()
                return datetime(int(year), int(month), int(day), int(hour), int(minute),
                                int(second), int(fraction.ljust(6, "0")) if fraction else 0,
                                tzinfo=zone)
        return parse(text, *args, **kwargs)

    read.__wrapped__ = parse  # type: ignore[attr-defined]
    return read


def install_fast_timestamps() -> None:
    """Give the SDK's ``HistoryEvent`` the fast parse (once per process)."""
    module = importlib.import_module("azure.durable_functions.models.history.HistoryEvent")
    current = getattr(module, "dt_parse", None)
    if current is not None and not hasattr(current, "__wrapped__"):
        setattr(module, "dt_parse", fast_timestamp(current))  # noqa: B010 (a module global)


__all__ = ["Progress", "SdkSession", "Stamp", "fast_timestamp", "install_fast_timestamps",
           "session_function", "stamp"]
