"""durable: Durable Functions for Python, without Azure.

Write orchestrators, activities and HTTP starters with the ``azure.durable_functions`` model,
run them on an embedded SQLite file or on PostgreSQL::

    import durable as df

    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def hello_sequence(context: df.DurableOrchestrationContext):
        a = yield context.call_activity("say_hello", "Tokyo")
        return [a]

    @app.activity_trigger(input_name="city")
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

Code written for Azure ports by changing imports: ``import durable as df`` for
``azure.durable_functions`` and ``import durable as func`` for ``azure.functions`` (``FunctionApp``,
``Blueprint``, ``AuthLevel``, ``HttpRequest``, ``HttpResponse``, ``TimerRequest``). An Azure
Functions project folder runs unmodified with ``durable run PATH`` (docs/azure-apps.md).
"""

from durable.app import AuthLevel, Blueprint, DFApp, FunctionApp
from durable.client import DurableOrchestrationClient
from durable.entity_client import (
    CleanEntityStorageResult,
    DurableEntityStatus,
    EntityQueryResult,
    EntityStateResponse,
)
from durable.errors import (
    DeserializationError,
    DurableError,
    EventTimeoutError,
    FailureDetails,
    FunctionNotFoundError,
    InstanceAlreadyExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InstanceStatusConflictError,
    InvalidInputError,
    InvalidInstanceIdError,
    NonDeterminismError,
    OrchestrationTimeoutError,
    SchemaVersionError,
    SerializationError,
    StorageCorruptError,
    StorageError,
    StorageFullError,
    StorageReadOnlyError,
    TaskFailedError,
    VersionMismatchError,
)
from durable.host import Host
from durable.http_model import HttpRequest, HttpResponse
from durable.orchestration.context import DurableOrchestrationContext
from durable.orchestration.entity_calls import CriticalSection
from durable.orchestration.entity_context import DurableEntityContext, Entity
from durable.orchestration.entity_ids import EntityId
from durable.orchestration.retry import RetryOptions
from durable.orchestration.tasks import TaskBase, TaskState, TimerTask
from durable.schedules.timers import TimerRequest
from durable.status import (
    DurableOrchestrationStatus,
    OrchestrationRuntimeStatus,
    OverridableStates,
    PurgeHistoryResult,
)
from durable.worker.worker import WorkerOptions

__version__ = "0.1.0"

__all__ = [
    "AuthLevel",
    "Blueprint",
    "CleanEntityStorageResult",
    "CriticalSection",
    "DFApp",
    "DeserializationError",
    "DurableEntityContext",
    "DurableEntityStatus",
    "DurableError",
    "DurableOrchestrationClient",
    "DurableOrchestrationContext",
    "DurableOrchestrationStatus",
    "Entity",
    "EntityId",
    "EntityQueryResult",
    "EntityStateResponse",
    "EventTimeoutError",
    "FailureDetails",
    "FunctionApp",
    "FunctionNotFoundError",
    "Host",
    "HttpRequest",
    "HttpResponse",
    "InstanceAlreadyExistsError",
    "InstanceNotFailedError",
    "InstanceNotFoundError",
    "InstanceNotRunningError",
    "InstanceStatusConflictError",
    "InvalidInputError",
    "InvalidInstanceIdError",
    "NonDeterminismError",
    "OrchestrationRuntimeStatus",
    "OrchestrationTimeoutError",
    "OverridableStates",
    "PurgeHistoryResult",
    "RetryOptions",
    "SchemaVersionError",
    "SerializationError",
    "StorageCorruptError",
    "StorageError",
    "StorageFullError",
    "StorageReadOnlyError",
    "TaskBase",
    "TaskFailedError",
    "TaskState",
    "TimerRequest",
    "TimerTask",
    "VersionMismatchError",
    "WorkerOptions",
    "__version__",
]
