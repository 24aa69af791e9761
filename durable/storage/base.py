"""The storage contract every backend implements, and the records that cross it.

Vocabulary:

- An **instance** row holds an orchestration's metadata and status. Its ``revision`` grows by one
  with every committed change, and a commit names the revision it started from: that is the
  fence that makes a stale worker's commit fail instead of overwriting newer state.
- The **inbox** holds messages for an instance (ExecutionStarted, TaskCompleted, EventRaised,
  TimerFired with a future ``visible_at``, ExecutionTerminated, ...). An instance is *ready* when
  it has a visible message.
- A **lease** on an instance (``lease_owner``, ``lease_expires_at``) gives one worker the right to
  run its episodes. Workers keep leases while they cache the instance and renew them by ID, only
  the ones they know they hold; a lease that expires (a crashed or stalled worker, or a lease
  whose grant never reached its worker because the reply was lost) can be taken by anyone.
- **Tasks** are activity work items keyed by (instance, execution, task id), leased the same way.
- **History** is stored in chunks, one per committed episode.

Completing an orchestration work item is ONE transaction (:meth:`Backend.commit_orchestrations`),
fenced by revision and lease owner.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from durable.errors import FailureDetails
from durable.history import ExecutionStarted, HistoryEvent
from durable.status import OrchestrationRuntimeStatus, OverridableStates

DEFAULT_LEASE_SECONDS = 30.0


@dataclass(slots=True)
class InstanceRecord:
    """An instance row, as the client and the HTTP API see it."""

    instance_id: str
    name: str
    execution_id: str
    status: OrchestrationRuntimeStatus
    created_at: float
    updated_at: float
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    failure: FailureDetails | None = None
    version: str | None = None
    parent_instance_id: str | None = None
    completed_at: float | None = None
    revision: int = 0


@dataclass(slots=True)
class NewInstance:
    """A request to create (or replace) an instance; becomes its ExecutionStarted message."""

    instance_id: str
    name: str
    execution_id: str
    input: str | None
    created_at: float
    version: str | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    trace_context: str | None = None  # W3C traceparent of the span that started it

    def started_event(self) -> ExecutionStarted:
        return ExecutionStarted(
            timestamp=self.created_at,
            name=self.name,
            instance_id=self.instance_id,
            execution_id=self.execution_id,
            input=self.input,
            version=self.version,
            parent_instance_id=self.parent_instance_id,
            parent_execution_id=self.parent_execution_id,
            parent_task_id=self.parent_task_id,
            trace_context=self.trace_context,
        )


@dataclass(slots=True)
class Message:
    """An inbox message for ``instance_id``.

    ``execution_id`` pins the message to one execution (results of activities, timers and
    sub-orchestrations); messages for an older execution are discarded on delivery. ``None``
    means "whichever execution is current" (external events, terminate, suspend, resume).
    ``visible_at`` delays delivery (durable timers).
    """

    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None
    visible_at: float | None = None


@dataclass(slots=True)
class InboxEntry:
    """A message as leased: its row id (to delete on commit) and content."""

    message_id: int
    event: HistoryEvent
    execution_id: str | None


@dataclass(slots=True)
class OrchestrationWorkItem:
    """A leased instance with its ready messages (and history if the worker had no copy)."""

    instance_id: str
    name: str
    execution_id: str
    status: OrchestrationRuntimeStatus
    revision: int
    messages: list[InboxEntry]
    history: list[HistoryEvent] | None = None
    # Entities (instance IDs starting with "@") keep no history: their scheduler state, sent
    # when the worker does not hold this revision.
    entity_state: str | None = None
    # Set when a stored message or history chunk of this instance could not be decoded
    # (what, and where): the worker fails the instance with it instead of running it.
    damage: str | None = None
    version: str | None = None  # the orchestration's version (durable/versioning.py)
    # More messages are due than the lease's ``max_messages`` let it read: the rest wait in
    # the inbox for the next lease, after this episode commits.
    more_messages: bool = False

    @property
    def is_entity(self) -> bool:
        return self.instance_id.startswith("@")


@dataclass(slots=True)
class TaskKey:
    instance_id: str
    execution_id: str
    task_id: int


@dataclass(slots=True)
class NewTask:
    """An activity to run; ``claimed`` leases it to the committing worker at once."""

    task_id: int
    name: str
    input: str | None
    claimed: bool = True
    version: str | None = None  # the orchestration's version (who may run the activity)


@dataclass(slots=True)
class ActivityWorkItem:
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    attempt: int = 1
    version: str | None = None

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.instance_id, self.execution_id, self.task_id)


@dataclass(slots=True)
class ActivityResult:
    """An activity's outcome, to deliver to its orchestration's inbox."""

    task: ActivityWorkItem
    event: HistoryEvent  # TaskCompleted or TaskFailed


@dataclass(slots=True)
class ContinueAsNewPlan:
    execution_id: str
    input: str | None
    carried_events: list[HistoryEvent] = field(default_factory=list)


@dataclass(slots=True)
class OrchestrationCommit:
    """Everything one episode changes, committed atomically.

    - ``history``: events appended as one chunk.
    - ``consumed_messages``: inbox rows to delete.
    - ``delivered_tasks``: activity results the worker delivered straight from memory; their task
      rows are deleted, and the whole commit fails if this worker no longer leases any of them.
    - ``new_tasks``, ``messages`` (to this or other instances, timers included) and
      ``new_instances`` (sub-orchestrations; a conflict answers the parent with a failure).
    - instance row: ``status``, ``output``, ``custom_status``, ``failure``.
    - ``continue_as_new``: reset history and start a new execution in the same transaction.
    - ``release``: give the lease up (the instance finished, or the worker evicts it).
    """

    instance_id: str
    execution_id: str
    revision: int
    lease_owner: str
    history: list[HistoryEvent]
    status: OrchestrationRuntimeStatus
    consumed_messages: list[int] = field(default_factory=list)
    delivered_tasks: list[int] = field(default_factory=list)
    new_tasks: list[NewTask] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    new_instances: list[NewInstance] = field(default_factory=list)
    output: str | None = None
    custom_status: str | None = None
    failure: FailureDetails | None = None
    continue_as_new: ContinueAsNewPlan | None = None
    release: bool = False
    entity_state: str | None = None  # an entity's new scheduler state (no history, no status)
    # Rewind: ``history`` is the whole new history (it replaces the stored one), and failed
    # sub-orchestrations are rewound or, if they no longer exist as Failed, started again.
    replace_history: bool = False
    rewind_children: list[NewInstance] = field(default_factory=list)
    # The newest consumed message that the worker handed over in memory (from a commit of its
    # own) rather than leased: the commit fails (``CommitOutcome.behind``) if the inbox still
    # holds a due message older than it that this commit does not consume, so messages are
    # never applied out of the order they were sent in. ``EVERY_MESSAGE`` when the episode
    # applied activity results handed over in memory: those were produced after every message
    # already stored, so no due message may wait (see ``EVERY_MESSAGE``).
    handed_up_to: int | None = None


# ``OrchestrationCommit.handed_up_to`` for an episode that applied activity results from memory.
# A result never enters the inbox on that path, so it has no place in the inbox's order; it was
# produced after every message stored by then, and a message stored before it (an event the
# activity itself raised at its own instance, say) must be applied first. So the commit stands
# only if no due message it does not consume is waiting at all (one that arrived after the result
# could go either way, and goes first too). Any message id is below this.
EVERY_MESSAGE = 1 << 62


@dataclass(slots=True)
class CommitOutcome:
    """Per commit: ``ok`` is False when the fence failed (the lease or revision moved on), or
    when ``error`` says why this commit cannot be stored (a value storage refuses). Either way
    nothing of this commit was written, and the other commits of the batch are unaffected."""

    ok: bool
    revision: int = 0
    error: str | None = None
    # Per message of the commit, in order: its inbox row id, or None (not inserted: the target
    # has finished; or the backend does not report ids: ``SQLOperations.reports_message_ids``).
    message_ids: list[int | None] | None = None
    behind: bool = False  # not applied: an older message is waiting (see ``handed_up_to``)


@dataclass(slots=True)
class InstanceQuery:
    created_from: float | None = None
    created_to: float | None = None
    statuses: Sequence[OrchestrationRuntimeStatus] | None = None
    instance_id_prefix: str | None = None
    page_size: int = 100
    continuation_token: str | None = None
    name: str | None = None  # orchestrator name, exact
    newest_first: bool = False  # order by creation time descending (dashboards, CLI)


@dataclass(slots=True)
class Backlog:
    """Work waiting in storage now: due inbox messages and activity tasks nobody runs yet,
    each with the age in seconds of the oldest (0 when there is none)."""

    messages: int = 0
    oldest_message_age: float = 0.0
    activities: int = 0
    oldest_activity_age: float = 0.0
    live_workers: int = 0  # distinct workers holding an unexpired lease


@dataclass(slots=True)
class InstancePage:
    instances: list[InstanceRecord]
    continuation_token: str | None


@dataclass(slots=True)
class EntityQuery:
    """Entities whose name starts with ``name_prefix`` (lower-case), last operated on in the
    range; pages in instance-ID order."""

    name_prefix: str | None = None
    last_operation_from: float | None = None
    last_operation_to: float | None = None
    page_size: int = 100
    continuation_token: str | None = None


@runtime_checkable
class Backend(Protocol):
    """What the worker and the client need from storage. All methods are coroutines."""

    async def open(self) -> None:
        """Connect and apply schema migrations."""

    async def close(self) -> None: ...

    # -- client side --------------------------------------------------------------------------

    async def create_instance(
        self,
        new: NewInstance,
        policy: OverridableStates = OverridableStates.NonRunningStates,
        *,
        lease_owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> OrchestrationWorkItem | None:
        """Create (or, as ``policy`` allows, replace) an instance in one atomic step.

        Raises :class:`~durable.errors.InstanceAlreadyExistsError` when an instance with that ID
        exists in a state the policy does not override. With ``lease_owner`` the new instance is
        leased to that worker and returned as a work item, saving a round trip.
        """

    async def send_message(self, message: Message) -> None:
        """Append a message to a running instance's inbox (events, terminate, suspend, resume).

        Raises InstanceNotFoundError, or InstanceNotRunningError if the instance finished.
        """

    async def rewind_instance(self, instance_id: str, reason: str | None) -> None:
        """Reopen a Failed instance (status Running) and queue its ExecutionRewound.

        Raises InstanceNotFoundError, or InstanceNotFailedError for any other status.
        """

    async def send_entity_message(self, message: Message) -> None:
        """Append a message to an entity's inbox, creating the entity's row if it has none
        (a signal to a new entity creates it)."""

    async def query_entities(self, query: EntityQuery) -> InstancePage:
        """Entity rows (their ``input`` is the scheduler state); the token is opaque."""

    async def remove_entity(self, instance_id: str, revision: int) -> bool:
        """Delete an entity's row if it is still at ``revision`` and has no message waiting."""

    async def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRecord]:
        """The rows of those instances that exist, in one read (for many waiters at once)."""

    async def wait_for_completions(self, timeout: float) -> None:
        """Return when an instance may have finished in another process, or after ``timeout``.

        PostgreSQL is told (NOTIFY on the hub's completion channel by every commit that ends an
        instance); SQLite notices any commit by another connection. Reading the statuses after
        this returns is what actually finds out."""

    async def get_history(self, instance_id: str) -> list[HistoryEvent]: ...

    async def query_instances(self, query: InstanceQuery) -> InstancePage: ...

    async def purge_instance(self, instance_id: str) -> int: ...

    async def purge_instances(
        self,
        created_from: float | None,
        created_to: float | None,
        statuses: Sequence[OrchestrationRuntimeStatus] | None,
    ) -> int:
        """Delete finished instances created in the range (only terminal statuses are purged).

        Runs in batches of bounded size, each its own transaction, so a purge of millions of
        rows neither holds the write lock for long nor grows one huge transaction."""

    # -- operators (dashboard, CLI, metrics) ---------------------------------------------------

    async def count_by_status(self) -> dict[OrchestrationRuntimeStatus, int]:
        """How many instances are in each status (statuses with none are left out)."""

    async def backlog(self) -> Backlog:
        """Work waiting now (see :class:`Backlog`)."""

    # -- worker side --------------------------------------------------------------------------

    async def lease_orchestrations(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        instance_ids: Sequence[str] | None = None,
        cached_revisions: Mapping[str, int] | None = None,
        exclude: Collection[str] = (),
        max_messages: int | None = None,
    ) -> list[OrchestrationWorkItem]:
        """Lease ready instances (only ``instance_ids`` if given) and read their messages.

        An instance is leasable if unleased, leased by ``owner``, or its lease expired. History
        is included unless ``cached_revisions`` says the worker already holds this revision.
        ``exclude`` names instances a poll must skip: the worker's episodes in flight, whose
        messages it already holds (re-reading them would only crowd out new work).
        ``max_messages`` caps the messages read per instance (the first ones in due order;
        the item then says ``more_messages``), so one instance with a huge inbox (a hot
        entity) costs a bounded read and episode instead of holding up the others.
        """

    async def commit_orchestrations(
        self,
        commits: Sequence[OrchestrationCommit],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> list[CommitOutcome]:
        """Apply each commit atomically and independently; a failed fence skips only that one.
        Kept leases are extended by ``lease_seconds``."""

    async def release_orchestrations(self, owner: str, instance_ids: Sequence[str]) -> None: ...

    async def lease_activities(
        self, owner: str, *, limit: int, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> list[ActivityWorkItem]: ...

    async def complete_activities(
        self, owner: str, results: Sequence[ActivityResult]
    ) -> list[bool]:
        """Delete each task (if still leased by ``owner``) and deliver its result; False = lost."""

    async def abandon_activities(
        self, owner: str, tasks: Sequence[ActivityWorkItem], retry_after: float = 0.0
    ) -> None: ...

    async def renew_leases(
        self, owner: str, lease_seconds: float, *, instance_ids: Sequence[str],
        tasks: Sequence[TaskKey],
    ) -> None:
        """Extend ``owner``'s leases of these instances and tasks, and no others.

        By ID, not by owner: a lease granted by a transaction whose COMMIT landed while its
        reply was lost belongs to a worker that does not know of it. Renewed, it would hold
        that work forever; left alone, it lapses after ``lease_seconds`` and anyone takes it.
        Names whose lease is no longer ``owner``'s are skipped."""

    async def release_all(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (graceful shutdown)."""

    async def lease_owners(self) -> list[str]:
        """Every worker ID that holds a lease now (to spot owners known to be dead)."""

    async def next_wakeup(self) -> float | None:
        """The earliest ``visible_at`` of a message not yet visible (for timer polling)."""

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may have arrived from another process, or after ``timeout``.

        Backends that can be told (PostgreSQL LISTEN/NOTIFY) return early; others just wait.
        Polling after this returns is what actually finds the work.
        """

    # -- settings -----------------------------------------------------------------------------

    async def get_setting(self, key: str) -> str | None:
        """A task-hub-wide setting (e.g. the generated HTTP API key)."""

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless the key exists; return the stored value either way."""

    # -- health -------------------------------------------------------------------------------

    async def probe(self) -> None:
        """One cheap read for readiness probes: raise a :class:`~durable.errors.StorageError`
        unless the store answers, has the schema this code writes, and takes writes."""
