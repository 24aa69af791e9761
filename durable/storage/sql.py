"""Storage logic written once for every SQL backend.

Each storage operation is a generator ("sans-I/O"): it yields :class:`Op` requests naming a query
from the backend's ``queries.sql`` and receives the rows back. A backend only supplies the query
text and a driver that executes ops: SQLite runs them synchronously on its writer thread,
PostgreSQL awaits them on an async connection. The transaction rules live here:

- Every expected conflict is found by a read or a row count *before* the operation writes, so
  an operation either raises a typed error having written nothing, or completes.
- Commits are fenced: the instance's revision and lease owner must still be what the worker
  leased, else nothing of that commit is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from durable.errors import (
    FailureDetails,
    InstanceAlreadyExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InvalidInputError,
    SchemaVersionError,
    StorageCorruptError,
    StorageError,
)
from durable.history import (
    ExecutionRewound,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    decode_event,
    decode_events,
    encode_event,
    encode_events,
)
from durable.ids import new_execution_id
from durable.serialization import compact_json
from durable.status import (
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    OrchestrationRuntimeStatus,
    OverridableStates,
)
from durable.storage.base import (
    ActivityResult,
    ActivityWorkItem,
    Backlog,
    CommitOutcome,
    EntityQuery,
    InboxEntry,
    InstancePage,
    InstanceQuery,
    Message,
    NewInstance,
    OrchestrationCommit,
    OrchestrationWorkItem,
    TaskKey,
)
from durable.storage.checks import (
    bad_json,
    bad_raw,
    client_event_text,
    commit_problem,
    is_lookup_id,
    new_instance_problem,
    unstorable_result,
)
from durable.storage.keys import prefix_upper_bound
from durable.storage.rows import (
    decode_entity_token,
    decode_token,
    encode_entity_token,
    encode_token,
    failure_text,
    instance_from_row,
)

Status = OrchestrationRuntimeStatus
TERMINAL_NAMES = sorted(s.value for s in TERMINAL_STATUSES)


# -- query files --------------------------------------------------------------------------------

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    """Parse ``-- name: x`` blocks of a backend's query file into ``{name: sql}``."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for index in range(1, len(parts), 2):
        body = "\n".join(
            line for line in parts[index + 1].strip().splitlines() if not line.startswith("--")
        ).strip().rstrip(";")
        queries[parts[index]] = body
    return queries


def load_migrations(package: str) -> list[tuple[int, str]]:
    """``[(version, sql)]`` from ``<package>/migrations/NNNN_name.sql``, in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_\w+\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def pending_migrations(
    current: int, migrations: Sequence[tuple[int, str]]
) -> list[tuple[int, str]]:
    """The migrations a store at schema version ``current`` still needs, in order.

    Both backends run them the same way (read the version, apply what is newer, record each in
    ``durable_migrations``, all in one transaction); only the lock that keeps two processes from
    migrating at once differs (SQLite's write lock, a PostgreSQL advisory lock).
    Raises SchemaVersionError for a store newer than this code.
    """
    latest = migrations[-1][0] if migrations else 0
    if current > latest:
        raise SchemaVersionError(
            f"The store has schema version {current}, but this version of durable knows only "
            f"up to {latest}. Upgrade durable."
        )
    return [(version, script) for version, script in migrations if version > current]


# -- ops ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Op:
    """One query to run. ``mode``: 'one' (first row or None), 'all' (rows), 'count' (rows
    affected), 'many' (executemany over ``params``, a list), 'id' (the id of the row an
    INSERT added, or None if it added none), 'values' (rows bound into the query's one
    ``VALUES (?, ...)`` row, repeated once per row; answers rows affected).

    ``plan_with_values``: the best plan depends on the values (a prefix's key range may match
    three instances or all of them), so PostgreSQL binds them on the client and plans each run
    with them, never reusing a generic plan of a prepared statement. SQLite ignores it."""

    query: str
    params: Any
    mode: str
    plan_with_values: bool = False


def one(query: str, **params: Any) -> Op:
    return Op(query, params, "one")


def rows(query: str, **params: Any) -> Op:
    return Op(query, params, "all")


def count(query: str, **params: Any) -> Op:
    return Op(query, params, "count")


def many(query: str, params: list[dict[str, Any]]) -> Op:
    return Op(query, params, "many")


def values(query: str, table: Sequence[Sequence[Any]]) -> Op:
    """A statement over a whole table of rows, each bound as one row of its ``VALUES`` list
    (positional parameters only). Only SQLite's set-based statements use it: the backend
    runs a few statements for any number of rows, which a padding row of NULLs must not
    change (see durable/storage/sqlite/values.py)."""
    return Op(query, table, "values")


def inserted_id(query: str, **params: Any) -> Op:
    """An INSERT of one row, answered with that row's id (SQLite reads its last row id,
    cheaper than RETURNING; PostgreSQL's query text says RETURNING id)."""
    return Op(query, params, "id")


Txn = Generator[Op, Any, Any]


def run_sync(execute: Callable[[Op], Any], txn: Txn) -> Any:
    """Drive a storage operation with a synchronous executor."""
    try:
        op = next(txn)
        while True:
            op = txn.send(execute(op))
    except StopIteration as stop:
        return stop.value


async def run_async(execute: Callable[[Op], Any], txn: Txn) -> Any:
    """Drive a storage operation with an async executor (``execute`` returns an awaitable)."""
    try:
        op = next(txn)
        while True:
            op = txn.send(await execute(op))
    except StopIteration as stop:
        return stop.value


# -- client operations --------------------------------------------------------------------------


def _insert_or_replace(
    new: NewInstance,
    policy: OverridableStates,
    lease_owner: str | None,
    lease_expires_at: float | None,
) -> Generator[Op, Any, int | Status]:
    """Create the instance row (or replace a replaceable one); return its revision, or the
    status of the existing instance that blocks it."""
    problem = new_instance_problem(new)
    if problem is not None:  # before any write: the rest of a batch is unaffected
        raise InvalidInputError(problem)
    params = {
        "instance_id": new.instance_id,
        "name": new.name,
        "execution_id": new.execution_id,
        "created_at": new.created_at,
        "input": new.input,
        "version": new.version,
        "parent_instance_id": new.parent_instance_id,
        "lease_owner": lease_owner,
        "lease_expires_at": lease_expires_at,
    }
    inserted = yield count("insert_instance", **params)
    if inserted:
        return 1
    existing = yield one("lock_instance", instance_id=new.instance_id)
    status = Status(existing[0])
    if policy is OverridableStates.NonRunningStates and status in RUNNING_STATUSES:
        return status
    for table in ("delete_history", "delete_inbox", "delete_tasks"):
        yield count(table, instance_id=new.instance_id)
    row = yield one("reset_instance", **params)
    return int(row[0])


def _message_params(message: Message, now: float, event: str | None = None) -> dict[str, Any]:
    return {
        "instance_id": message.instance_id,
        "execution_id": message.execution_id,
        "visible_at": message.visible_at if message.visible_at is not None else now,
        "event": event if event is not None else encode_event(message.event),
    }


def _insert_message(
    message: Message, now: float, guarded: bool, event: str | None = None
) -> Op:
    params = _message_params(message, now, event)
    if guarded:
        return count("insert_message_if_running", **params)
    return inserted_id("insert_message", **params)


def create_instance(
    new: NewInstance,
    policy: OverridableStates,
    lease_owner: str | None,
    lease_seconds: float,
    now: float,
) -> Txn:
    expires = now + lease_seconds if lease_owner else None
    outcome = yield from _insert_or_replace(new, policy, lease_owner, expires)
    if isinstance(outcome, Status):
        raise InstanceAlreadyExistsError(new.instance_id, outcome.value)
    started = new.started_event()
    message_id = yield _insert_message(Message(new.instance_id, started, new.execution_id), now,
                                       False)
    return started_work_item(new, lease_owner, outcome, int(message_id))


def started_work_item(new: NewInstance, lease_owner: str | None, revision: int,
                      message_id: int) -> OrchestrationWorkItem | None:
    """What a start leased to ``lease_owner`` hands its worker: the new instance with its
    ExecutionStarted (inbox row ``message_id``); None for a start without a lease."""
    if lease_owner is None:
        return None
    return OrchestrationWorkItem(
        instance_id=new.instance_id,
        name=new.name,
        execution_id=new.execution_id,
        status=Status.Pending,
        revision=revision,
        messages=[InboxEntry(message_id, new.started_event(), new.execution_id)],
        history=[],
        version=new.version,
    )


def entity_row(instance_id: str, now: float) -> dict[str, Any]:
    """An entity's new row (name = the ``@name@`` part of its ID)."""
    return {"instance_id": instance_id, "name": instance_id[1:].partition("@")[0],
            "execution_id": new_execution_id(), "now": now}


def _ensure_entity(instance_id: str, now: float) -> Op:
    """The entity's row, created on its first message."""
    return count("insert_entity", **entity_row(instance_id, now))


def send_entity_message(message: Message, now: float) -> Txn:
    event = checked_signal(message)
    yield _ensure_entity(message.instance_id, now)
    yield _insert_message(message, now, False, event)


def checked_signal(message: Message) -> str:
    """A message for an entity as stored text, refused (InvalidInputError) if its event or the
    entity ID cannot be stored faithfully."""
    event = checked_client_event(message)
    problem = bad_raw(message.instance_id)
    if problem is not None:
        raise InvalidInputError(f"The entity ID cannot be stored: {problem}.")
    return event


def send_entity_messages(signals: Sequence[tuple[Message, str]], now: float) -> Txn:
    """Many entity messages, each already checked (``checked_signal``), as two statements run
    over all of them: each entity's row once, then every message in the order given (so
    messages from one sender keep their order)."""
    targets = dict.fromkeys(message.instance_id for message, _ in signals)
    yield many("insert_entity", [entity_row(instance_id, now) for instance_id in targets])
    yield many("insert_inbox", [_message_params(message, now, event) for message, event in signals])


def checked_client_event(message: Message) -> str:
    """A client's message as stored text, refused (InvalidInputError) if it cannot be stored
    faithfully."""
    try:
        event = client_event_text(message.event)
    except (TypeError, ValueError) as exc:  # e.g. a terminate reason that is not a string
        raise InvalidInputError(f"The {type(message.event).__name__} message is not "
                                f"JSON-serializable: {exc}") from None
    problem = bad_json(event)
    if problem is not None:
        raise InvalidInputError(f"The {type(message.event).__name__} message cannot be "
                                f"stored: {problem}.")
    return event


def query_entities(query: EntityQuery) -> Txn:
    if query.page_size < 1:
        raise InvalidInputError("The page size must be at least 1.")
    after = decode_entity_token(query.continuation_token) if query.continuation_token else None
    if query.name_prefix is not None and not is_lookup_id(query.name_prefix):
        return InstancePage([], None)  # no entity name can contain this
    prefix = "@" + (query.name_prefix or "")
    found = yield rows(
        "query_entities",
        prefix=prefix,
        upper=prefix_upper_bound(prefix),  # never None: '@' is below U+10FFFF
        updated_from=query.last_operation_from,
        updated_to=query.last_operation_to,
        after_id=after,
        limit=query.page_size + 1,
    )
    records = [instance_from_row(row) for row in found[: query.page_size]]
    token = None
    if len(found) > query.page_size and records:
        token = encode_entity_token(records[-1].instance_id)
    return InstancePage(records, token)


def remove_entity(instance_id: str, revision: int) -> Txn:
    if bad_raw(instance_id):
        return False
    row = yield one("lock_instance", instance_id=instance_id)
    if row is None or int(row[1]) != revision:
        return False
    waiting = yield one("count_inbox", instance_id=instance_id)
    if waiting and int(waiting[0]):
        return False
    return bool((yield from _delete_instance(instance_id)))


def rewind_instance(instance_id: str, reason: str | None, now: float) -> Txn:
    if not is_lookup_id(instance_id):
        raise InstanceNotFoundError(instance_id)
    row = yield one("lock_instance", instance_id=instance_id)
    if row is None:
        raise InstanceNotFoundError(instance_id)
    if Status(row[0]) is not Status.Failed:
        raise InstanceNotFailedError(instance_id, row[0])
    yield from _reopen(instance_id, row[3], reason, now)


def _reopen(instance_id: str, execution_id: str, reason: str | None, now: float) -> Txn:
    message = Message(instance_id, ExecutionRewound(timestamp=now, reason=reason), execution_id)
    event = checked_client_event(message)  # before writing anything
    yield count("reopen_instance", instance_id=instance_id, now=now)
    yield _insert_message(message, now, False, event)


def _rewind_child(child: NewInstance, now: float) -> Txn:
    """A parent is rewound: rewind its failed child too, or start it again if it is gone."""
    row = yield one("lock_instance", instance_id=child.instance_id)
    if row is not None and Status(row[0]) is Status.Failed:
        yield from _reopen(child.instance_id, row[3], "the parent was rewound", now)
        return
    if row is not None and Status(row[0]) in RUNNING_STATUSES:
        return  # it will answer the parent when it ends
    if row is not None and Status(row[0]) is Status.Completed:
        # It finished after the parent failed, so its answer was dropped: send it again.
        record = yield one("get_instance", instance_id=child.instance_id)
        done = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=child.parent_task_id or 0, result=record[7])
        yield _insert_message(Message(child.parent_instance_id or "", done,
                                      child.parent_execution_id), now, False)
        return
    outcome = yield from _insert_or_replace(child, OverridableStates.NonRunningStates, None, None)
    if not isinstance(outcome, Status):
        started = child.started_event()
        yield _insert_message(Message(child.instance_id, started, child.execution_id), now,
                              False)


def send_message(message: Message, now: float) -> Txn:
    if not is_lookup_id(message.instance_id):
        raise InstanceNotFoundError(message.instance_id)
    event = checked_client_event(message)
    row = yield one("lock_instance", instance_id=message.instance_id)
    if row is None:
        raise InstanceNotFoundError(message.instance_id)
    status = Status(row[0])
    if status in TERMINAL_STATUSES:
        raise InstanceNotRunningError(message.instance_id, status.value)
    yield _insert_message(message, now, False, event)


def get_instance(instance_id: str) -> Txn:
    if not is_lookup_id(instance_id):
        return None
    row = yield one("get_instance", instance_id=instance_id)
    return instance_from_row(row) if row is not None else None


def get_instances(instance_ids: Sequence[str]) -> Txn:
    wanted = sorted({i for i in instance_ids if is_lookup_id(i)})
    if not wanted:
        return []
    found = yield rows("get_instances_for", instance_ids=wanted)
    return [instance_from_row(row) for row in found]


def get_history(instance_id: str) -> Txn:
    if not is_lookup_id(instance_id):
        return []
    chunks = yield rows("select_history", instance_id=instance_id)
    events: list[HistoryEvent] = []
    for index, (chunk,) in enumerate(chunks):
        try:
            events.extend(decode_events(chunk))
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageCorruptError(
                f"History chunk {index + 1} of instance '{instance_id}' cannot be decoded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return events


# Open bounds, passed instead of NULL so that ranges stay index ranges (see queries.sql).
_LOWEST = -1.0e300
_HIGHEST = 1.0e300


def query_variant(query: InstanceQuery) -> str:
    """The query_instances* variant whose index serves ``query`` (one status and/or a name
    become equalities; several statuses stay a filter of the creation-order walk)."""
    one_status = query.statuses is not None and len(query.statuses) == 1
    name = "query_instances"
    if one_status:
        name += "_status"
    if query.name is not None:
        name += "_name"
    return name + ("_desc" if query.newest_first else "")


# A prefix that matches at most this many instances is listed from its key range in the
# primary key (query_instances_prefix: cost proportional to the matches, ~3 ms for 5,000 on
# SQLite); one that matches more, by walking a creation-order index with the range as a filter
# (the walk stops at a page, found quickly when matches are that common). Only backends that
# cannot choose themselves ask (SQLOperations.counts_prefix_matches).
PREFIX_RANGE_ROWS = 5000
# What only such backends define.
PREFIX_COUNT_QUERIES = frozenset({
    "count_prefix_range", "query_instances_prefix", "query_instances_prefix_desc"})


def query_instances(query: InstanceQuery, count_prefix_matches: bool = False) -> Txn:
    if query.page_size < 1:
        raise InvalidInputError("The page size must be at least 1.")
    if query.newest_first:
        after_created, after_id = _HIGHEST, ""
    else:
        after_created, after_id = _LOWEST, ""
    if query.continuation_token:
        after_created, after_id = decode_token(query.continuation_token)
    prefix = query.instance_id_prefix or None
    if prefix is not None and (prefix.startswith("@") or not is_lookup_id(prefix)):
        # No orchestration ID can start like this (entities, "@name@key", are listed apart).
        return InstancePage([], None)
    upper = prefix_upper_bound(prefix) if prefix is not None else None
    variant = query_variant(query)
    if prefix is not None and count_prefix_matches:
        counted = yield one("count_prefix_range", prefix=prefix, upper=upper,
                            cap=PREFIX_RANGE_ROWS + 1)
        if int(counted[0]) <= PREFIX_RANGE_ROWS:
            variant = "query_instances_prefix" + ("_desc" if query.newest_first else "")
    statuses = [s.value for s in query.statuses] if query.statuses else None
    params = {
        "created_from": query.created_from if query.created_from is not None else _LOWEST,
        "created_to": query.created_to if query.created_to is not None else _HIGHEST,
        "statuses": statuses,
        "status": statuses[0] if statuses else None,
        "name": query.name,
        "prefix": prefix,
        "upper": upper,
        "after_created": after_created,
        "after_id": after_id,
        "limit": query.page_size + 1,
    }
    found = yield Op(variant, params, "all", plan_with_values=prefix is not None)
    records = [instance_from_row(row) for row in found[: query.page_size]]
    token = None
    if len(found) > query.page_size and records:
        token = encode_token(records[-1].created_at, records[-1].instance_id)
    return InstancePage(records, token)


def _delete_instance(instance_id: str) -> Txn:
    for table in ("delete_history", "delete_inbox", "delete_tasks"):
        yield count(table, instance_id=instance_id)
    deleted = yield count("delete_instance", instance_id=instance_id)
    return int(deleted)


def purge_instance(instance_id: str) -> Txn:
    if not is_lookup_id(instance_id):
        return 0
    return (yield from _delete_instance(instance_id))


PURGE_BATCH = 5000  # instances per purge transaction (~0.1 s of write lock on SQLite)


def purge_batch(
    created_from: float | None,
    created_to: float | None,
    statuses: Sequence[Status] | None,
    limit: int | None = None,
) -> Txn:
    """Delete up to ``limit`` finished instances created in the range; return how many were
    selected (the backend calls again while a batch comes back full) and how many deleted."""
    wanted = [s.value for s in statuses if s in TERMINAL_STATUSES] if statuses else TERMINAL_NAMES
    if not wanted:
        return 0, 0
    limit = limit if limit is not None else PURGE_BATCH
    found = yield rows(
        "select_purgeable", statuses=wanted, limit=limit,
        created_from=created_from if created_from is not None else _LOWEST,
        created_to=created_to if created_to is not None else _HIGHEST,
    )
    if not found:
        return 0, 0
    deleted = yield rows("delete_finished_instances", instance_ids=[row[0] for row in found])
    ids = [row[0] for row in deleted]
    if ids:
        for table in ("delete_history_of", "delete_inbox_of", "delete_tasks_of"):
            yield count(table, instance_ids=ids)
    return len(found), len(ids)


def count_by_status() -> Txn:
    found = yield rows("count_by_status")
    return {Status(status): int(n) for status, n in found}


def backlog(now: float) -> Txn:
    row = yield one("backlog", now=now)
    messages, oldest_message, activities, oldest_activity, workers = row
    return Backlog(
        messages=int(messages or 0),
        oldest_message_age=max(0.0, now - oldest_message) if oldest_message else 0.0,
        activities=int(activities or 0),
        oldest_activity_age=max(0.0, now - oldest_activity) if oldest_activity else 0.0,
        live_workers=int(workers or 0),
    )


# -- worker operations --------------------------------------------------------------------------


def lease_orchestrations(
    owner: str,
    limit: int,
    lease_seconds: float,
    instance_ids: Sequence[str] | None,
    cached_revisions: Mapping[str, int] | None,
    now: float,
    exclude: Collection[str] = (),
    max_messages: int | None = None,
) -> Txn:
    common = {"owner": owner, "lease_expires_at": now + lease_seconds, "now": now}
    if instance_ids is None:
        leased = yield rows("lease_ready_instances", limit=limit, exclude=sorted(exclude),
                            **common)
    elif instance_ids:
        leased = yield rows("lease_instances", instance_ids=list(instance_ids[:limit]),
                            **common)
    else:
        leased = []
    live = []
    for row in leased:
        if Status(row[3]) in TERMINAL_STATUSES:
            # Stray messages for a finished instance (e.g. a late timer): drop them.
            yield count("delete_inbox", instance_id=row[0])
            yield count("release_instance", instance_id=row[0], owner=owner)
        else:
            live.append(row)
    if not live:
        return []
    # Messages and history of every leased instance in one query each, not one per instance.
    live_ids = [row[0] for row in live]
    more: set[str] = set()
    if max_messages is None:
        found = yield rows("select_messages_for", instance_ids=live_ids, now=now)
    else:
        # One row beyond the cap says that more are waiting; it is not decoded.
        found = yield rows("select_first_messages_for", instance_ids=live_ids, now=now,
                           per_instance=max_messages + 1)
        found, more = _cap_messages(found, max_messages)
    messages: dict[str, list[InboxEntry]] = {}
    # What could not be decoded, per instance: only that instance is failed for it, never the
    # others leased with it.
    damage: dict[str, str] = {}
    for instance_id, mid, exe, event in found:
        try:
            decoded = decode_event(event)
        except (ValueError, KeyError, TypeError) as exc:
            damage.setdefault(instance_id, f"inbox message #{mid} cannot be decoded "
                                           f"({type(exc).__name__}: {exc})")
            messages.setdefault(instance_id, [])
            continue
        messages.setdefault(instance_id, []).append(InboxEntry(mid, decoded, exe))
    cached = cached_revisions or {}
    uncached = [row for row in live if cached.get(row[0]) != row[4]]
    # Revision 1 is a row just inserted: no history yet, nothing to read. Entities keep their
    # state in the row instead of a history.
    wanted = [row[0] for row in uncached if row[4] != 1 and not row[0].startswith("@")]
    entity_ids = [row[0] for row in uncached if row[0].startswith("@")]
    histories: dict[str, list[HistoryEvent]] = {}
    if wanted:
        chunks = yield rows("select_history_for", instance_ids=wanted)
        for instance_id, chunk in chunks:
            try:
                histories.setdefault(instance_id, []).extend(decode_events(chunk))
            except (ValueError, KeyError, TypeError) as exc:
                damage.setdefault(instance_id, f"a history chunk cannot be decoded "
                                               f"({type(exc).__name__}: {exc})")
    entity_states: dict[str, str | None] = {}
    if entity_ids:
        for instance_id, state in (yield rows("select_inputs_for", instance_ids=entity_ids)):
            entity_states[instance_id] = state
    items = []
    for instance_id, name, execution_id, status, revision, version in live:
        if instance_id not in messages:
            # Under READ COMMITTED (PostgreSQL) the owner's own commit can consume the messages
            # between the lease statement and the read; an empty episode would only add noise.
            continue
        history = None
        if cached.get(instance_id) != revision:
            history = histories.get(instance_id, [])
        items.append(
            OrchestrationWorkItem(instance_id, name, execution_id, Status(status), revision,
                                  messages[instance_id], history,
                                  entity_state=entity_states.get(instance_id),
                                  damage=damage.get(instance_id), version=version,
                                  more_messages=instance_id in more)
        )
    return items


def _cap_messages(found: list[Any], cap: int) -> tuple[list[Any], set[str]]:
    """Keep the first ``cap`` rows of each instance (rows come grouped by instance, in due
    order); return them and the instances that had more."""
    kept: list[Any] = []
    more: set[str] = set()
    current, count = None, 0
    for row in found:
        if row[0] != current:
            current, count = row[0], 0
        count += 1
        if count > cap:
            more.add(row[0])
        else:
            kept.append(row)
    return kept, more


@dataclass(slots=True)
class EncodedCommit:
    """A commit's history chunk and message events as stored text, or why they cannot be."""

    history: str | None
    events: list[str]
    error: str | None = None


def encode_commit(commit: OrchestrationCommit) -> EncodedCommit:
    """Encode and check what ``commit`` stores, before any write.

    Pure CPU work, done by the caller (on the event loop) rather than inside the
    transaction: SQLite's single writer thread is the bottleneck of a busy worker, and the
    loop is mostly waiting for it. A value storage refuses fails this commit alone.
    """
    try:
        history = (encode_events(commit.history)
                   if commit.history and commit.continue_as_new is None
                   and commit.entity_state is None else None)
        events = [encode_event(message.event) for message in commit.messages]
    except (TypeError, ValueError) as exc:
        return EncodedCommit(None, [], f"The episode of instance '{commit.instance_id}' is "
                                       f"not JSON-serializable: {exc}")
    return EncodedCommit(history, events, commit_problem(commit, history, events))


def commit_orchestrations(
    commits: Sequence[OrchestrationCommit], encoded: Sequence[EncodedCommit],
    lease_seconds: float, now: float, message_ids: bool = False, serial: bool = False,
) -> Txn:
    """Apply ``commits`` in one transaction; ``encoded`` holds what :func:`encode_commit` made
    of each, in the same order. ``serial``: no other write transaction runs meanwhile
    (``SQLOperations.serial_writes``)."""
    # Entities that exist need no insert-if-missing per message. Only where writes are serial
    # does a row read here stay until this transaction commits (elsewhere a concurrent
    # clean-up could remove it between the read and the message's insert), so only there does
    # the batch's one read also look at the entities it messages.
    targets = ({message.instance_id for commit in commits for message in commit.messages
                if message.instance_id.startswith("@")} if serial else set())
    ids = {commit.instance_id for commit in commits}
    # One read locks and fences the whole batch (instead of one round trip per commit), and
    # runs its order checks (see ``handed_up_to``) in the same statement when it has any.
    locked = sorted(ids | targets)
    checks = _order_checks(commits)
    behind: set[int] = set()
    if checks:
        found = yield rows("lock_instances_checked", instance_ids=locked,
                           checks=compact_json(checks), now=now)
        for row in found:
            behind.update(json.loads(row[5] or "[]"))
        found = [row[:5] for row in found]
    else:
        found = yield rows("lock_instances", instance_ids=locked)
    fences: dict[str, tuple[Any, ...]] = {row[0]: tuple(row[1:]) for row in found}
    entities = {target for target in targets if target in fences} if serial else None
    outcomes = []
    for position, commit in enumerate(commits):
        outcome = yield from _commit_one(
            commit, encoded[position], fences.get(commit.instance_id), lease_seconds, now,
            message_ids, entities, position in behind)
        if outcome.ok:  # a second commit for the same instance must see this one
            fences[commit.instance_id] = (
                commit.status.value, outcome.revision,
                None if commit.release else commit.lease_owner,
                commit.continue_as_new.execution_id if commit.continue_as_new
                else commit.execution_id,
            )
        outcomes.append(outcome)
    return outcomes


def _order_checks(commits: Sequence[OrchestrationCommit]) -> list[list[Any]]:
    """``[position, instance ID, handed_up_to, consumed message IDs]`` per commit that has an
    order check (``handed_up_to``), as the queries that run them take them."""
    return [[position, commit.instance_id, commit.handed_up_to, list(commit.consumed_messages)]
            for position, commit in enumerate(commits) if commit.handed_up_to is not None]


def order_checks(commits: Sequence[OrchestrationCommit], now: float) -> Txn:
    """The positions of the commits that were handed messages in memory while an older due
    message they do not consume waits in the inbox (see ``handed_up_to``): one query for the
    batch. Checking before any commit of the batch writes is as strict as checking each
    just before it: the batch only adds messages newer than every message handed over, and a
    message it deletes can only turn a refusal into a needless one."""
    checks = _order_checks(commits)
    if not checks:
        return set()
    found = yield rows("inbox_behind", checks=compact_json(checks), now=now)
    return {int(row[0]) for row in found}


def refusal(commit: OrchestrationCommit, encoded: EncodedCommit, fence: tuple[Any, ...],
            behind: bool) -> CommitOutcome | None:
    """Why ``commit`` is not applied to the locked row whose (status, revision, lease owner,
    execution ID) is ``fence``, as its outcome; None if it applies. Revision and owner catch a
    worker that lost its lease; the execution ID catches a late commit for an instance that
    was purged and re-created (its revision starts again at 1). ``encoded`` was checked before
    any commit of the batch writes; ``behind``: its order check failed (``order_checks``)."""
    if (fence[1] != commit.revision or fence[2] != commit.lease_owner
            or fence[3] != commit.execution_id):
        return CommitOutcome(False)
    if encoded.error is not None:
        return CommitOutcome(False, error=encoded.error)
    if behind:
        return CommitOutcome(False, behind=True)
    return None


def _commit_one(
    commit: OrchestrationCommit, encoded: EncodedCommit, fence: tuple[Any, ...] | None,
    lease_seconds: float, now: float, message_ids: bool = False,
    entities: set[str] | None = None, behind: bool = False,
) -> Txn:
    """Apply one commit if its fence holds. ``fence`` is the locked row's (status, revision,
    lease owner, execution ID). With ``message_ids`` the outcome says which inbox row each
    message became (the worker hands messages to instances it holds in memory).
    ``entities``, if given, holds the entities known to exist in this transaction (this
    commit adds those it creates). ``behind``: its order check failed (``order_checks``)."""
    instance_id = commit.instance_id
    if fence is None:
        return CommitOutcome(False)
    refused = refusal(commit, encoded, fence, behind)
    if refused is not None:
        return refused
    plan = commit.continue_as_new
    history, events = encoded.history, encoded.events
    if commit.delivered_tasks:
        # Results delivered from memory. A task this worker no longer leases was (or is being)
        # run again elsewhere; recording this result first is still correct, because the
        # replay engine drops the second completion of a task (activities are at-least-once).
        yield many(
            "delete_leased_task",
            [
                {"instance_id": instance_id, "execution_id": commit.execution_id,
                 "task_id": task_id, "owner": commit.lease_owner}
                for task_id in commit.delivered_tasks
            ],
        )
    if commit.consumed_messages:
        yield many("delete_message", [{"id": mid} for mid in commit.consumed_messages])

    keep_lease = not commit.release
    lease_owner = commit.lease_owner if keep_lease else None
    lease_expires_at = now + lease_seconds if keep_lease else None
    terminal = commit.status in TERMINAL_STATUSES
    if commit.entity_state is not None:
        yield count(
            "update_entity",
            instance_id=instance_id,
            state=commit.entity_state,
            now=now,
            lease_owner=lease_owner,
            lease_expires_at=lease_expires_at,
        )
    elif plan is not None:
        yield count("delete_history", instance_id=instance_id)
        yield count("delete_unclaimed_tasks", instance_id=instance_id)
        yield count(
            "continue_instance",
            instance_id=instance_id,
            execution_id=plan.execution_id,
            input=plan.input,
            custom_status=commit.custom_status,
            now=now,
            lease_owner=lease_owner,
            lease_expires_at=lease_expires_at,
        )
    else:
        if commit.replace_history:
            yield count("delete_history", instance_id=instance_id)
        if history is not None:
            yield count(
                "insert_history",
                instance_id=instance_id,
                chunk=commit.revision,
                events=history,
            )
        if terminal:
            yield count("delete_inbox", instance_id=instance_id)
            yield count("delete_unclaimed_tasks", instance_id=instance_id)
        yield count(
            # The fence holds the status before this commit; an unchanged one is not rewritten.
            "update_instance_keep_status" if fence[0] == commit.status.value
            else "update_instance",
            instance_id=instance_id,
            status=commit.status.value,
            output=commit.output,
            failure=failure_text(commit.failure),
            custom_status=commit.custom_status,
            now=now,
            completed_at=now if terminal else None,
            lease_owner=lease_owner,
            lease_expires_at=lease_expires_at,
        )
    if commit.new_tasks:
        yield many(
            "insert_task",
            [
                {
                    "instance_id": instance_id,
                    "execution_id": commit.execution_id,
                    "task_id": task.task_id,
                    "name": task.name,
                    "input": task.input,
                    "now": now,
                    "attempt": 1 if task.claimed else 0,
                    "lease_owner": commit.lease_owner if task.claimed else None,
                    "lease_expires_at": now + lease_seconds if task.claimed else None,
                    "version": task.version,
                }
                for task in commit.new_tasks
            ],
        )
    ids: list[int | None] = []
    for message, event in zip(commit.messages, events, strict=True):
        target = message.instance_id
        if target.startswith("@") and target != instance_id:
            if entities is None or target not in entities:
                yield _ensure_entity(target, now)  # a message creates the entity it is sent to
                if entities is not None:
                    entities.add(target)
            message_id = yield _insert_message(message, now, False, event)
        elif target == instance_id or not message_ids:
            message_id = yield _insert_message(message, now, target != instance_id, event)
        else:
            message_id = yield inserted_id("insert_message_if_running_id",
                                           **_message_params(message, now, event))
        ids.append(message_id if message_ids else None)
    for child in commit.new_instances:
        yield from _create_child(child, commit, now)
    for child in commit.rewind_children:
        yield from _rewind_child(child, now)
    return CommitOutcome(True, commit.revision + 1, message_ids=ids if message_ids else None)


def _create_child(child: NewInstance, parent: OrchestrationCommit, now: float) -> Txn:
    outcome = yield from _insert_or_replace(child, OverridableStates.NonRunningStates, None, None)
    if isinstance(outcome, Status):
        error = InstanceAlreadyExistsError(child.instance_id, outcome.value)
        failed = SubOrchestrationInstanceFailed(
            timestamp=now,
            task_scheduled_id=child.parent_task_id if child.parent_task_id is not None else -1,
            failure=FailureDetails.from_exception(error),
        )
        yield _insert_message(Message(parent.instance_id, failed, parent.execution_id), now, False)
        return
    started = child.started_event()
    yield _insert_message(Message(child.instance_id, started, child.execution_id), now, False)


def release_orchestrations(owner: str, instance_ids: Sequence[str]) -> Txn:
    if instance_ids:
        yield many(
            "release_instance",
            [{"instance_id": instance_id, "owner": owner} for instance_id in instance_ids],
        )


def lease_activities(owner: str, limit: int, lease_seconds: float, now: float) -> Txn:
    found = yield rows(
        "lease_tasks", owner=owner, lease_expires_at=now + lease_seconds, now=now, limit=limit
    )
    return [ActivityWorkItem(*row) for row in found]


def complete_activities(owner: str, results: Sequence[ActivityResult], now: float) -> Txn:
    delivered = []
    for result in results:
        task = result.task
        deleted = yield count(
            "delete_leased_task",
            instance_id=task.instance_id,
            execution_id=task.execution_id,
            task_id=task.task_id,
            owner=owner,
        )
        if deleted:
            message = Message(task.instance_id, result.event, task.execution_id)
            event = encode_event(result.event)
            if bad_json(event) is not None:
                event = encode_event(unstorable_result(result, bad_json(event) or ""))
            yield _insert_message(message, now, True, event)
        delivered.append(bool(deleted))
    return delivered


def abandon_activities(
    owner: str, tasks: Sequence[ActivityWorkItem], retry_after: float, now: float
) -> Txn:
    if tasks:
        yield many(
            "abandon_task",
            [
                {"instance_id": t.instance_id, "execution_id": t.execution_id,
                 "task_id": t.task_id, "owner": owner, "visible_at": now + retry_after}
                for t in tasks
            ],
        )


def renew_leases(owner: str, lease_seconds: float, instance_ids: Sequence[str],
                 tasks: Sequence[TaskKey], now: float) -> Txn:
    """Extend the named leases of ``owner`` (see ``Backend.renew_leases``: never by owner
    alone). The tasks go as one JSON list of their keys, ``[[instance, execution, task], ...]``
    (SQLite reads it in one pass; parallel lists would be joined by position, quadratically)."""
    expires = now + lease_seconds
    if instance_ids:
        yield count("renew_instance_leases", owner=owner, lease_expires_at=expires,
                    instance_ids=list(instance_ids))
    if tasks:
        keys = [[t.instance_id, t.execution_id, t.task_id] for t in tasks]
        yield count("renew_task_leases", owner=owner, lease_expires_at=expires,
                    tasks=compact_json(keys))


def release_all(owner: str) -> Txn:
    yield count("release_all_instances", owner=owner)
    yield count("release_all_tasks", owner=owner)


def lease_owners() -> Txn:
    found = yield rows("lease_owners")
    return sorted(owner for (owner,) in found)


def next_wakeup(now: float) -> Txn:
    row = yield one("next_wakeup", now=now)
    return row[0] if row is not None else None


def get_setting(key: str) -> Txn:
    row = yield one("get_setting", key=key)
    return row[0] if row is not None else None


def put_setting_if_absent(key: str, value: str) -> Txn:
    yield count("put_setting", key=key, value=value)
    row = yield one("get_setting", key=key)
    return row[0]


def schema_status() -> Txn:
    """``(schema version, whether the store refuses writes)``: what a readiness probe reads."""
    row = yield one("schema_status")
    return int(row[0]), bool(row[1])


NOT_MIGRATED = "it was not migrated"  # in check_schema's error, which readiness reports


def check_schema(current: int, migrations: Sequence[tuple[int, str]]) -> None:
    """Raise unless a store at schema version ``current`` is the one this code writes."""
    pending_migrations(current, migrations)  # raises SchemaVersionError if it is newer
    latest = migrations[-1][0] if migrations else 0
    if current < latest:
        raise StorageError(
            f"The store has schema version {current}, but this version of durable needs "
            f"{latest}: {NOT_MIGRATED} (`durable db migrate`; workers migrate when they start)."
        )
