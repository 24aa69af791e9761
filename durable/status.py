"""Status objects returned by the client, shaped like ``azure.durable_functions``' models."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any


class OrchestrationRuntimeStatus(Enum):
    """Runtime status of an orchestration instance; the value is the wire name."""

    Running = "Running"
    Completed = "Completed"
    ContinuedAsNew = "ContinuedAsNew"
    Failed = "Failed"
    Canceled = "Canceled"
    Terminated = "Terminated"
    Pending = "Pending"
    Suspended = "Suspended"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Completed,
        OrchestrationRuntimeStatus.Failed,
        OrchestrationRuntimeStatus.Canceled,
        OrchestrationRuntimeStatus.Terminated,
    }
)

# Durable Functions' default `overridableExistingInstanceStates = NonRunningStates`: starting an
# ID whose instance is in one of these states is refused.
RUNNING_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Pending,
        OrchestrationRuntimeStatus.Running,
        OrchestrationRuntimeStatus.Suspended,
        OrchestrationRuntimeStatus.ContinuedAsNew,
    }
)


class OverridableStates(Enum):
    """Which existing instances ``start_new`` may replace (Durable Functions' host.json setting)."""

    NonRunningStates = "NonRunningStates"
    AnyState = "AnyState"


class DurableOrchestrationStatus:
    """The status of one orchestration instance.

    As in the Azure SDK, the status of an instance that does not exist is a *falsy* object whose
    ``runtime_status``, ``instance_id`` and ``created_time`` are ``None`` (never ``None`` itself),
    so both ``if not status:`` and ``status.runtime_status in (..., None)`` work.
    """

    __slots__ = (
        "_created_time",
        "_custom_status",
        "_failure",
        "_history",
        "_input",
        "_instance_id",
        "_last_updated_time",
        "_name",
        "_output",
        "_runtime_status",
        "message",
    )

    def __init__(
        self,
        name: str | None = None,
        instance_id: str | None = None,
        created_time: datetime | None = None,
        last_updated_time: datetime | None = None,
        input_: Any = None,
        output: Any = None,
        runtime_status: OrchestrationRuntimeStatus | None = None,
        custom_status: Any = None,
        history: list[dict[str, Any]] | None = None,
        failure: dict[str, Any] | None = None,
        message: str = "",
    ) -> None:
        self._name = name
        self._instance_id = instance_id
        self._created_time = created_time
        self._last_updated_time = last_updated_time
        self._input = input_
        self._output = output
        self._runtime_status = runtime_status
        self._custom_status = custom_status
        self._history = history
        self._failure = failure
        self.message = message

    def __bool__(self) -> bool:
        return self._created_time is not None

    def __repr__(self) -> str:
        if not self:
            return "DurableOrchestrationStatus(<not found>)"
        status = self._runtime_status.value if self._runtime_status else None
        return f"DurableOrchestrationStatus({self._instance_id!r}, {self._name!r}, {status})"

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def instance_id(self) -> str | None:
        return self._instance_id

    @property
    def created_time(self) -> datetime | None:
        return self._created_time

    @property
    def last_updated_time(self) -> datetime | None:
        return self._last_updated_time

    @property
    def input_(self) -> Any:
        return self._input

    @property
    def output(self) -> Any:
        """The orchestration's return value; for a Failed instance, the error message."""
        return self._output

    @property
    def runtime_status(self) -> OrchestrationRuntimeStatus | None:
        return self._runtime_status

    @property
    def custom_status(self) -> Any:
        return self._custom_status

    @property
    def history(self) -> list[dict[str, Any]] | None:
        """History events (HTTP API shape) when requested with ``show_history=True``."""
        return self._history

    @property
    def historyEvents(self) -> list[dict[str, Any]] | None:
        return self._history

    @property
    def failure_details(self) -> dict[str, Any] | None:
        """``{"errorType", "message", "details"}`` for a Failed instance."""
        return self._failure

    def to_json(self) -> dict[str, Any]:
        """The Durable Functions HTTP API's status payload (camelCase keys, ISO times)."""
        out: dict[str, Any] = {
            "name": self._name,
            "instanceId": self._instance_id,
            "runtimeStatus": self._runtime_status.value if self._runtime_status else None,
            "input": self._input,
            "customStatus": self._custom_status,
            "output": self._output,
            "createdTime": _iso(self._created_time),
            "lastUpdatedTime": _iso(self._last_updated_time),
        }
        if self._history is not None:
            out["historyEvents"] = self._history
        return out


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class PurgeHistoryResult:
    """How many instances a purge deleted."""

    __slots__ = ("instances_deleted",)

    def __init__(self, instances_deleted: int) -> None:
        self.instances_deleted = instances_deleted

    def __repr__(self) -> str:
        return f"PurgeHistoryResult(instances_deleted={self.instances_deleted})"
