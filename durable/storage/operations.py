"""The storage protocol written once for every SQL backend.

Each :class:`~durable.storage.base.Backend` method is one of the sans-I/O transactions of
:mod:`durable.storage.sql`; what differs between SQLite and PostgreSQL is only how a
transaction is run (a writer thread with group commit, or a pooled connection). A backend
inherits :class:`SQLOperations` and supplies the three ways to run one:

- :meth:`_read`: a read-only transaction;
- :meth:`_write`: a write transaction;
- :meth:`_client_write`: a client's write to one instance (a start, an event, a signal),
  which a backend may group with other clients' writes; by default a plain write.

Batches are handed to the shared logic in one global order (instance ID, then task), so
two transactions on a server with row locks always take them in the same order and cannot
deadlock; on SQLite's single writer the order costs nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from durable.errors import StorageReadOnlyError
from durable.history import HistoryEvent
from durable.status import OrchestrationRuntimeStatus, OverridableStates
from durable.storage import batched, sql
from durable.storage.base import (
    DEFAULT_LEASE_SECONDS,
    ActivityResult,
    ActivityWorkItem,
    Backlog,
    CommitOutcome,
    EntityQuery,
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    Message,
    NewInstance,
    OrchestrationCommit,
    OrchestrationWorkItem,
    TaskKey,
)

TxnFactory = Callable[[float], sql.Txn]


def _task_key(task: ActivityWorkItem) -> tuple[str, str, int]:
    return (task.instance_id, task.execution_id, task.task_id)


class SQLOperations:
    """Every storage operation, in terms of a backend's way to run one transaction."""

    # Whether a commit's outcome names the inbox row of each message it inserted (what lets a
    # worker hand a message to an instance it holds in memory instead of leasing it again).
    # Where reading those ids costs a round trip per message (PostgreSQL defers the inserts
    # and sends them together), the backend leaves it off.
    reports_message_ids = False
    # Whether write transactions run one at a time (SQLite: one writer), so that a row a write
    # transaction reads stays there until it commits. A commit then reads which entities it
    # messages exist, once per batch, instead of an insert-if-missing per message.
    serial_writes = False
    # Whether listing by instance-ID prefix first counts the prefix's matches (up to
    # sql.PREFIX_RANGE_ROWS) to choose between reading its key range and walking creation
    # order. SQLite needs the count: it keeps no statistics. PostgreSQL does not: it plans
    # each prefix query with the prefix's values and its own statistics.
    counts_prefix_matches = False
    # The backend's migrations, newest last: the schema a probe expects to find.
    migrations: Sequence[tuple[int, str]] = ()

    # -- how a backend runs a transaction (override) ------------------------------------------

    def _read(self, factory: TxnFactory) -> Awaitable[Any]:
        raise NotImplementedError

    def _write(self, factory: TxnFactory) -> Awaitable[Any]:
        raise NotImplementedError

    def _client_write(self, instance_id: str, factory: TxnFactory) -> Awaitable[Any]:
        return self._write(factory)

    # -- client side --------------------------------------------------------------------------

    async def create_instance(
        self,
        new: NewInstance,
        policy: OverridableStates = OverridableStates.NonRunningStates,
        *,
        lease_owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> OrchestrationWorkItem | None:
        return await self._client_write(
            new.instance_id,
            lambda now: sql.create_instance(new, policy, lease_owner, lease_seconds, now),
        )

    async def send_message(self, message: Message) -> None:
        await self._client_write(message.instance_id, lambda now: sql.send_message(message, now))

    async def rewind_instance(self, instance_id: str, reason: str | None) -> None:
        await self._client_write(
            instance_id, lambda now: sql.rewind_instance(instance_id, reason, now)
        )

    async def send_entity_message(self, message: Message) -> None:
        await self._client_write(
            message.instance_id, lambda now: sql.send_entity_message(message, now)
        )

    async def query_entities(self, query: EntityQuery) -> InstancePage:
        return await self._read(lambda now: sql.query_entities(query))

    async def remove_entity(self, instance_id: str, revision: int) -> bool:
        return await self._write(lambda now: sql.remove_entity(instance_id, revision))

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return await self._read(lambda now: sql.get_instance(instance_id))

    async def get_instances(self, instance_ids: Sequence[str]) -> list[InstanceRecord]:
        ids = list(instance_ids)
        return await self._read(lambda now: sql.get_instances(ids))

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        return await self._read(lambda now: sql.get_history(instance_id))

    async def query_instances(self, query: InstanceQuery) -> InstancePage:
        return await self._read(
            lambda now: sql.query_instances(query, self.counts_prefix_matches))

    async def purge_instance(self, instance_id: str) -> int:
        return await self._write(lambda now: sql.purge_instance(instance_id))

    async def purge_instances(
        self,
        created_from: float | None,
        created_to: float | None,
        statuses: Sequence[OrchestrationRuntimeStatus] | None,
    ) -> int:
        deleted = 0
        while True:  # one transaction per batch: locks are held briefly, other writers go between
            selected, gone = await self._write(
                lambda now: sql.purge_batch(created_from, created_to, statuses)
            )
            deleted += gone
            if selected < sql.PURGE_BATCH:
                return deleted

    async def count_by_status(self) -> dict[OrchestrationRuntimeStatus, int]:
        return await self._read(lambda now: sql.count_by_status())

    async def backlog(self) -> Backlog:
        return await self._read(sql.backlog)

    async def get_setting(self, key: str) -> str | None:
        return await self._read(lambda now: sql.get_setting(key))

    async def put_setting_if_absent(self, key: str, value: str) -> str:
        return await self._write(lambda now: sql.put_setting_if_absent(key, value))

    async def probe(self) -> None:
        """One cheap read saying whether this store can serve (readiness probes)."""
        version, read_only = await self._read(lambda now: sql.schema_status())
        sql.check_schema(version, self.migrations)
        if read_only:
            where = getattr(self, "url", "")
            raise StorageReadOnlyError(f"The storage at {where} is read-only: it answers "
                                       "reads but refuses writes (a standby?).")

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
        cached = dict(cached_revisions) if cached_revisions else None
        ids = sorted(set(instance_ids)) if instance_ids is not None else None
        skip = list(exclude)
        return await self._write(
            lambda now: sql.lease_orchestrations(
                owner, limit, lease_seconds, ids, cached, now, skip, max_messages
            )
        )

    async def commit_orchestrations(
        self,
        commits: Sequence[OrchestrationCommit],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> list[CommitOutcome]:
        order = sorted(range(len(commits)), key=lambda index: commits[index].instance_id)
        ordered = [commits[index] for index in order]
        encoded = [sql.encode_commit(commit) for commit in ordered]
        if self.serial_writes and batched.plain(ordered):
            outcomes = await self._write(
                lambda now: batched.commit_orchestrations(ordered, encoded, lease_seconds, now,
                                                          self.reports_message_ids)
            )
        else:
            outcomes = await self._write(
                lambda now: sql.commit_orchestrations(ordered, encoded, lease_seconds, now,
                                                      self.reports_message_ids,
                                                      self.serial_writes)
            )
        result: list[CommitOutcome] = [CommitOutcome(False)] * len(commits)
        for position, index in enumerate(order):
            result[index] = outcomes[position]
        return result

    async def release_orchestrations(self, owner: str, instance_ids: Sequence[str]) -> None:
        ids = sorted(set(instance_ids))
        await self._write(lambda now: sql.release_orchestrations(owner, ids))

    async def lease_activities(
        self, owner: str, *, limit: int, lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> list[ActivityWorkItem]:
        return await self._write(
            lambda now: sql.lease_activities(owner, limit, lease_seconds, now)
        )

    async def complete_activities(
        self, owner: str, results: Sequence[ActivityResult]
    ) -> list[bool]:
        order = sorted(range(len(results)), key=lambda index: _task_key(results[index].task))
        ordered = [results[index] for index in order]
        delivered = await self._write(lambda now: sql.complete_activities(owner, ordered, now))
        answer = [False] * len(results)
        for position, index in enumerate(order):
            answer[index] = delivered[position]
        return answer

    async def abandon_activities(
        self, owner: str, tasks: Sequence[ActivityWorkItem], retry_after: float = 0.0
    ) -> None:
        ordered = sorted(tasks, key=_task_key)
        await self._write(lambda now: sql.abandon_activities(owner, ordered, retry_after, now))

    async def renew_leases(
        self, owner: str, lease_seconds: float, *, instance_ids: Sequence[str],
        tasks: Sequence[TaskKey],
    ) -> None:
        ids = sorted(set(instance_ids))
        keys = sorted({(t.instance_id, t.execution_id, t.task_id) for t in tasks})
        if not ids and not keys:
            return  # nothing held: no transaction at all
        held = [TaskKey(*key) for key in keys]
        await self._write(lambda now: sql.renew_leases(owner, lease_seconds, ids, held, now))

    async def release_all(self, owner: str) -> None:
        await self._write(lambda now: sql.release_all(owner))

    async def lease_owners(self) -> list[str]:
        return await self._read(lambda now: sql.lease_owners())

    async def next_wakeup(self) -> float | None:
        return await self._read(sql.next_wakeup)
