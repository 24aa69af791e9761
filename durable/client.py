"""``DurableOrchestrationClient``: start, query, signal and manage orchestration instances.

The client talks to storage directly (there is no RPC hop). Method names and signatures follow
``azure.durable_functions``; the differences (no double-encoded payloads, every page of a query,
typed errors) are listed in docs/differences.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from durable import management_urls as payloads
from durable import serialization
from durable.app import Registry
from durable.clock import Clock, clock_of
from durable.entity_client import EntityClient
from durable.errors import (
    InstanceNotFoundError,
    InstanceNotRunningError,
    InstanceStatusConflictError,
    InvalidInputError,
    OrchestrationTimeoutError,
)
from durable.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    to_datetime,
    to_timestamp,
)
from durable.history_view import render_history
from durable.ids import new_execution_id, new_instance_id, validate_instance_id
from durable.orchestration.context import function_name
from durable.status import (
    DurableOrchestrationStatus,
    OrchestrationRuntimeStatus,
    OverridableStates,
    PurgeHistoryResult,
)
from durable.storage.base import (
    Backend,
    InstanceQuery,
    InstanceRecord,
    Message,
    NewInstance,
)
from durable.waiting import completions_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from durable.http_model import HttpResponse
    from durable.telemetry import Observer
    from durable.worker.worker import Worker

# What Durable Functions' SuspendAsync and ResumeAsync accept.
SUSPENDABLE_STATUSES = frozenset({
    OrchestrationRuntimeStatus.Running,
    OrchestrationRuntimeStatus.Pending,
    OrchestrationRuntimeStatus.ContinuedAsNew,
})
RESUMABLE_STATUSES = frozenset({OrchestrationRuntimeStatus.Suspended})

# How often wait_for_completion re-reads an instance its own worker holds (the worker wakes it
# when the instance finishes or is let go; this only covers a lease lost unnoticed).
OWNED_RECHECK_SECONDS = 5.0


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait(deadline: float | None, every: float) -> float:
    """``every`` seconds, or what is left until ``deadline`` if that is sooner."""
    return every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))


def _decode(text: str | None) -> Any:
    return serialization.loads_for_display(text)


def status_from_record(
    record: InstanceRecord,
    history: list[HistoryEvent] | None = None,
    show_history_output: bool = False,
    show_input: bool = True,
) -> DurableOrchestrationStatus:
    return DurableOrchestrationStatus(
        name=record.name,
        instance_id=record.instance_id,
        created_time=to_datetime(record.created_at),
        last_updated_time=to_datetime(record.updated_at),
        input_=_decode(record.input) if show_input else None,
        output=_decode(record.output),
        runtime_status=record.status,
        custom_status=_decode(record.custom_status),
        history=render_history(history, show_history_output) if history is not None else None,
        failure=record.failure.to_json() if record.failure is not None else None,
    )


def _timestamp(moment: datetime | None) -> float | None:
    return to_timestamp(moment) if moment is not None else None


class DurableOrchestrationClient(EntityClient):
    """Manage orchestration instances stored in ``backend``.

    ``registry`` (optional) lets ``start_new`` reject unknown orchestrator names up front;
    ``worker`` (optional, set by :class:`durable.Host`) gets new work handed over directly.
    """

    def __new__(cls, backend: Any = None, *args: Any, **kwargs: Any) -> DurableOrchestrationClient:
        # Azure code wraps its client binding: ``client = df.DurableOrchestrationClient(starter)``.
        # Handed the injected client itself, that is the client.
        if isinstance(backend, DurableOrchestrationClient) and not args and not kwargs:
            return backend
        return super().__new__(cls)

    def __init__(
        self,
        backend: Backend,
        registry: Registry | None = None,
        worker: Worker | None = None,
        *,
        overridable_states: OverridableStates = OverridableStates.NonRunningStates,
        observer: Observer | None = None,
    ) -> None:
        if backend is self:
            return  # DurableOrchestrationClient(client): see __new__
        self._backend = backend
        self._clock = clock_of(backend)
        self.observer = observer  # telemetry (durable.telemetry); None: nothing to pay
        self._registry = registry
        self._worker = worker
        self.overridable_states = overridable_states
        self.task_hub_name = "default"
        # The version of orchestrations started without one (the app's default_version).
        self.default_version: str | None = None
        # Where the management API is served (set by `durable run`); used to build the URLs
        # of create_check_status_response and create_http_management_payload.
        self.webhooks: payloads.WebhookSettings | None = None

    @property
    def clock(self) -> Clock:
        """The clock this client stamps events with (the backend's)."""
        return self._clock

    @property
    def backend(self) -> Backend:
        return self._backend

    # -- starting -----------------------------------------------------------------------------

    async def start_new(
        self,
        orchestration_function_name: str | Callable[..., Any],
        instance_id: str | None = None,
        client_input: Any = None,
        version: str | None = None,
        *,
        overridable_states: OverridableStates | None = None,
    ) -> str:
        """Start an orchestration; return its instance ID.

        Atomic: if ``instance_id`` names an instance that is Pending, Running or Suspended,
        :class:`durable.InstanceAlreadyExistsError` is raised and nothing changes (with the
        default ``NonRunningStates``); a Completed, Failed or Terminated one is replaced.
        ``overridable_states=OverridableStates.AnyState`` replaces even a running instance.
        """
        name = function_name(orchestration_function_name)
        if self._registry is not None:
            # Matched ignoring case, as Durable Functions does; stored as registered.
            name = self._registry.orchestrator(name).name
        if instance_id is None:
            instance_id = new_instance_id()
        else:
            validate_instance_id(instance_id)
        payload = serialization.dumps(client_input, "orchestration input")
        if version is None:
            version = self.default_version
        return await self._start(name, instance_id, payload, version, overridable_states)

    async def _start(
        self,
        name: str,
        instance_id: str,
        payload: str | None,
        version: str | None,
        overridable_states: OverridableStates | None,
    ) -> str:
        new = NewInstance(
            instance_id=instance_id,
            name=name,
            execution_id=new_execution_id(),
            input=payload,
            created_at=self._clock.now(),
            version=version,
        )
        if self.observer is not None:
            with self.observer.starting(new):  # the create_orchestration span
                await self._create(new, overridable_states)
        else:
            await self._create(new, overridable_states)
        return instance_id

    async def _create(self, new: NewInstance, overridable_states: OverridableStates | None
                      ) -> None:
        worker = self._worker
        item = await self._backend.create_instance(
            new,
            overridable_states or self.overridable_states,
            lease_owner=worker.id if worker is not None else None,
            lease_seconds=worker.options.lease_seconds if worker is not None else 30.0,
        )
        if worker is not None and item is not None:
            worker.accept(item)

    # -- reading ------------------------------------------------------------------------------

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> DurableOrchestrationStatus:
        """The instance's status; for an unknown ID, a *falsy* status (never ``None``)."""
        record = await self._backend.get_instance(instance_id)
        if record is None:
            return DurableOrchestrationStatus()
        history = await self._backend.get_history(instance_id) if show_history else None
        return status_from_record(record, history, show_history_output, show_input)

    async def get_status_all(self) -> list[DurableOrchestrationStatus]:
        """Every instance (all pages)."""
        return await self.get_status_by()

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Sequence[OrchestrationRuntimeStatus] | None = None,
        instance_id_prefix: str | None = None,
    ) -> list[DurableOrchestrationStatus]:
        """Instances matching every given filter (all pages)."""
        found: list[DurableOrchestrationStatus] = []
        token: str | None = None
        while True:
            page, token = await self.get_status_page(
                created_time_from, created_time_to, runtime_status, instance_id_prefix,
                page_size=500, continuation_token=token,
            )
            found.extend(page)
            if token is None:
                return found

    async def get_status_page(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Sequence[OrchestrationRuntimeStatus] | None = None,
        instance_id_prefix: str | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
        show_input: bool = True,
        name: str | None = None,
        newest_first: bool = False,
    ) -> tuple[list[DurableOrchestrationStatus], str | None]:
        """One page of matching instances, oldest first (or ``newest_first``), and the token
        for the next page. ``name`` keeps only instances of that orchestrator."""
        if runtime_status is not None:
            runtime_status = [OrchestrationRuntimeStatus(s) for s in runtime_status]
        page = await self._backend.query_instances(
            InstanceQuery(
                created_from=_timestamp(created_time_from),
                created_to=_timestamp(created_time_to),
                statuses=runtime_status,
                instance_id_prefix=instance_id_prefix,
                page_size=page_size,
                continuation_token=continuation_token,
                name=name or None,
                newest_first=newest_first,
            )
        )
        statuses = [status_from_record(r, show_input=show_input) for r in page.instances]
        return statuses, page.continuation_token

    async def wait_for_completion(
        self, instance_id: str, timeout: float | None = None, poll_interval: float = 0.5
    ) -> DurableOrchestrationStatus:
        """Wait until the instance is Completed, Failed, Terminated or Canceled; return its status.

        With a worker in this process, its finishing wakes the caller at once and storage is
        read every ``poll_interval`` for instances other processes finish; without one, the
        wait joins the backend's shared table of waiters (one read per poll for all of them,
        woken by the database where it can tell: PostgreSQL NOTIFY).
        Raises :class:`durable.OrchestrationTimeoutError` after ``timeout`` seconds.
        """
        worker = self._worker
        if worker is None:
            return await self._wait_without_worker(instance_id, timeout, poll_interval)
        deadline = None if timeout is None else time.monotonic() + timeout
        first = True
        while True:
            finished = worker.watch(instance_id)
            try:
                # While our worker holds the instance no other process can finish it, and the
                # worker wakes the future when it finishes it or lets it go: wait first, read
                # after (one read per wait instead of two; W9 (c) has 1,000 waiters).
                if first and worker.owns(instance_id) and not _past(deadline):
                    await asyncio.wait([finished], timeout=_wait(deadline, OWNED_RECHECK_SECONDS))
                status = await self.get_status(instance_id)
                if not status:
                    raise InstanceNotFoundError(instance_id)
                if status.runtime_status is not None and status.runtime_status.is_terminal:
                    return status
                if _past(deadline):
                    current = status.runtime_status.value if status.runtime_status else None
                    raise OrchestrationTimeoutError(
                        f"Instance '{instance_id}' did not finish within {timeout} seconds "
                        f"(status {current})."
                    )
                # Finishing here resolves the future at once; polling covers other processes.
                # Re-reading an instance our worker holds is only a safety net (1,000 waiters
                # re-reading every 0.5 s cost W9 (c) a tenth of its CPU).
                every = (max(poll_interval, OWNED_RECHECK_SECONDS) if worker.owns(instance_id)
                         else poll_interval)
                await asyncio.wait([finished], timeout=_wait(deadline, every))
                first = False
            finally:
                worker.unwatch(instance_id, finished)

    async def _wait_without_worker(
        self, instance_id: str, timeout: float | None, poll_interval: float
    ) -> DurableOrchestrationStatus:
        """Nothing finishes in this process: wait in the backend's shared table, which reads
        every awaited instance in one statement per poll and wakes on the database's word."""
        table = completions_of(self._backend)
        table.poll_interval = min(table.poll_interval, poll_interval)
        future = table.watch(instance_id)
        try:
            done, _ = await asyncio.wait([future], timeout=timeout)
            if not done:
                status = await self.get_status(instance_id)
                current = status.runtime_status.value if status.runtime_status else None
                raise OrchestrationTimeoutError(
                    f"Instance '{instance_id}' did not finish within {timeout} seconds "
                    f"(status {current})."
                )
            record = future.result()
        finally:
            table.unwatch(instance_id, future)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        return status_from_record(record)

    # -- signalling ---------------------------------------------------------------------------

    async def _send(self, instance_id: str, event: HistoryEvent) -> None:
        await self._backend.send_message(Message(instance_id, event))
        if self._worker is not None:
            self._worker.hint(instance_id)

    async def raise_event(
        self, instance_id: str, event_name: str, event_data: Any = None
    ) -> None:
        """Deliver an event; raises InstanceNotFoundError or InstanceNotRunningError."""
        if not isinstance(event_name, str) or not event_name:
            raise InvalidInputError("event_name must be a non-empty string.")
        payload = serialization.dumps(event_data, "event data")
        await self._send(
            instance_id, EventRaised(timestamp=self._clock.now(), name=event_name, input=payload)
        )

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Terminate a running instance. A finished instance is left as it is (as in Azure)."""
        now = self._clock.now()
        await self._control(instance_id, ExecutionTerminated(timestamp=now, reason=reason))

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Pause a Running or Pending instance (its events wait until it is resumed).

        Raises InstanceNotFoundError, or InstanceStatusConflictError if it is already
        Suspended; a finished instance is left as it is. See :meth:`_checked_control` for what
        "already" means while an earlier suspend is still on its way.
        """
        event = ExecutionSuspended(timestamp=self._clock.now(), reason=reason)
        await self._checked_control(instance_id, "suspend", SUSPENDABLE_STATUSES, event)

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Continue a Suspended instance (the events it held are delivered).

        Raises InstanceNotFoundError, or InstanceStatusConflictError if it is not Suspended;
        a finished instance is left as it is.
        """
        event = ExecutionResumed(timestamp=self._clock.now(), reason=reason)
        await self._checked_control(instance_id, "resume", RESUMABLE_STATUSES, event)

    async def _checked_control(
        self,
        instance_id: str,
        operation: str,
        allowed: frozenset[OrchestrationRuntimeStatus],
        event: HistoryEvent,
    ) -> None:
        """Send ``event`` if the instance's stored status allows ``operation``.

        As in Durable Functions, the check reads the *stored* status, which a worker changes
        when it applies the message: right after a suspend is sent the status is still Running,
        so a second suspend is accepted then (the worker suspends the instance once; the extra
        message changes nothing) and a resume is refused until the status shows Suspended.
        The check tells the caller, it guards nothing: whatever the timing, the worker takes a
        suspend of a Suspended instance or a resume of a Running one as a no-op. A finished
        instance is left alone (the HTTP API answers 410 before calling).
        """
        record = await self._backend.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        if record.status.is_terminal:
            return
        if record.status not in allowed:
            raise InstanceStatusConflictError(instance_id, record.status.value, operation)
        await self._control(instance_id, event)

    async def _control(self, instance_id: str, event: HistoryEvent) -> None:
        try:
            await self._send(instance_id, event)
        except InstanceNotRunningError:
            return

    async def rewind(
        self,
        instance_id: str,
        reason: str | None = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        """Run a Failed instance again from where it failed: its failed activities and
        sub-orchestrations (and work still open at the failure) run again, completed work is
        kept, and the instance is Running until it ends anew. Raises InstanceNotFoundError,
        or InstanceNotFailedError for an instance that is not Failed."""
        await self._backend.rewind_instance(instance_id, reason)
        if self._worker is not None:
            self._worker.hint(instance_id)

    async def restart(self, instance_id: str, restart_with_new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with its original input; return the ID."""
        record = await self._backend.get_instance(instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        target = new_instance_id() if restart_with_new_instance_id else instance_id
        return await self._start(record.name, target, record.input, record.version, None)

    # -- purging ------------------------------------------------------------------------------

    async def purge_instance_history(self, instance_id: str) -> PurgeHistoryResult:
        return PurgeHistoryResult(await self._backend.purge_instance(instance_id))

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Sequence[OrchestrationRuntimeStatus] | None = None,
    ) -> PurgeHistoryResult:
        """Delete finished instances created in the range (running ones are never purged)."""
        deleted = await self._backend.purge_instances(
            _timestamp(created_time_from), _timestamp(created_time_to), runtime_status
        )
        return PurgeHistoryResult(deleted)

    # -- HTTP helpers (built by durable.management_urls) --------------------------------------

    def create_check_status_response(self, request: Any, instance_id: str) -> HttpResponse:
        """202 Accepted with the management URLs, ``Location`` and ``Retry-After: 10``.

        The URLs use the origin (scheme, host, port) of ``request``, an HTTP request object
        with a ``url``, as the Azure Python SDK does.
        """
        return payloads.check_status_response(payloads.settings_of(self), request.url, instance_id)

    def create_http_management_payload(self, instance_id: str) -> dict[str, str]:
        """The management URLs of ``instance_id`` (at the server's own origin)."""
        return payloads.management_urls(payloads.settings_of(self), instance_id)

    def get_client_response_links(self, request: Any, instance_id: str) -> dict[str, str]:
        """The management URLs, at ``request``'s origin if a request is given."""
        origin = payloads.origin_of(request.url) if request is not None else None
        return payloads.management_urls(payloads.settings_of(self), instance_id, origin=origin)

    async def wait_for_completion_or_create_check_status_response(
        self,
        request: Any,
        instance_id: str,
        timeout_in_milliseconds: int = 10000,
        retry_interval_in_milliseconds: int = 1000,
    ) -> HttpResponse:
        """Wait up to the timeout; answer with the result, or with a check-status 202.

        As the Azure Python SDK: Completed -> 200 with the output (a str as is), Canceled or
        Terminated -> 200 with the status JSON, Failed -> 500 with the status JSON.
        """
        return await payloads.wait_or_check_status(
            self, request.url, instance_id, timeout_in_milliseconds, retry_interval_in_milliseconds
        )
