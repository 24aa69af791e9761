"""Set-based plans for a group of client writes on PostgreSQL (queries in ``grouped.sql``).

:class:`~durable.storage.postgres.statements.GroupedWrites` gathers client calls that arrive
together. Run one by one, a start costs two round trips (insert the row, queue its
ExecutionStarted) and a group of 256 costs 512: at 2 ms a round trip, a thousand concurrent
``start_new`` calls took seconds. Here each kind of call in the group is ONE statement
(``start_instances``, ``send_messages``, ``signal_entities``), plus one ``lock_instances`` for
starts that met an existing row, so a group costs a constant number of round trips.

The answers stay exactly those of the one-by-one path (:mod:`durable.storage.sql`), per item:

- A start's singleton check is ``INSERT ... ON CONFLICT DO NOTHING``: of several concurrent
  starts of one ID (in this group or in other processes) exactly one inserts. A start that
  met an existing row is decided after locking that row, as ``sql.create_instance`` decides it:
  a running instance refuses it (:class:`InstanceAlreadyExistsError`), a finished one (or any,
  with ``AnyState``) is replaced by the one-by-one path inside the same transaction.
- Values storage refuses are refused per item before anything is sent (``durable.storage.checks``).
- Events and controls lock their targets and queue only for running ones; a missing target is
  :class:`InstanceNotFoundError`, a finished one :class:`InstanceNotRunningError`.

Every plan is a sans-I/O generator like those of :mod:`durable.storage.sql`, so a transaction
retried after a deadlock or a dropped connection simply runs it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from durable.errors import (
    DurableError,
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InstanceNotRunningError,
    InvalidInputError,
)
from durable.history import encode_event
from durable.ids import new_execution_id
from durable.status import (
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    OrchestrationRuntimeStatus,
    OverridableStates,
)
from durable.storage import checks, sql
from durable.storage.base import Message, NewInstance
from durable.storage.checks import is_lookup_id

Status = OrchestrationRuntimeStatus
Outcome = tuple[bool, Any]  # (True, value) or (False, the DurableError to raise)


@dataclass(slots=True)
class Start:
    new: NewInstance
    policy: OverridableStates
    lease_owner: str | None
    lease_seconds: float


@dataclass(slots=True)
class Send:
    """An event or control message for an orchestration (``sql.send_message``)."""

    message: Message


@dataclass(slots=True)
class Signal:
    """A message for an entity, creating its row if needed (``sql.send_entity_message``)."""

    message: Message


Plan = Start | Send | Signal


def one_by_one(plan: Plan, now: float) -> sql.Txn:
    """The plan's one-by-one transaction (the fallback when the server refuses a value)."""
    if isinstance(plan, Start):
        return sql.create_instance(plan.new, plan.policy, plan.lease_owner, plan.lease_seconds,
                                   now)
    if isinstance(plan, Send):
        return sql.send_message(plan.message, now)
    return sql.send_entity_message(plan.message, now)


def run_group(plans: Sequence[Plan], now: float) -> sql.Txn:
    """Apply every plan of the group in one transaction; return one outcome per plan."""
    outcomes: list[Outcome | None] = [None] * len(plans)
    starts = [i for i, p in enumerate(plans) if isinstance(p, Start)]
    sends = [i for i, p in enumerate(plans) if isinstance(p, Send)]
    signals = [i for i, p in enumerate(plans) if isinstance(p, Signal)]
    if starts:
        yield from _starts(plans, starts, outcomes, now)
    if sends:
        yield from _sends(plans, sends, outcomes, now)
    if signals:
        yield from _signals(plans, signals, outcomes, now)
    return outcomes


def _starts(plans: Sequence[Plan], indexes: list[int], outcomes: list[Outcome | None],
            now: float) -> sql.Txn:
    ready: list[tuple[int, Start, str]] = []
    for index in indexes:
        plan = plans[index]
        assert isinstance(plan, Start)
        problem = checks.new_instance_problem(plan.new)
        if problem is not None:
            outcomes[index] = (False, InvalidInputError(problem))
            continue
        ready.append((index, plan, encode_event(plan.new.started_event())))
    if not ready:
        return
    news = [plan.new for _, plan, _ in ready]
    owners = [plan.lease_owner for _, plan, _ in ready]
    found = yield sql.rows(
        "start_instances",
        instance_ids=[n.instance_id for n in news],
        names=[n.name for n in news],
        execution_ids=[n.execution_id for n in news],
        created_ats=[n.created_at for n in news],
        inputs=[n.input for n in news],
        versions=[n.version for n in news],
        parents=[n.parent_instance_id for n in news],
        lease_owners=owners,
        lease_expires=[now + plan.lease_seconds if plan.lease_owner else None
                       for _, plan, _ in ready],
        events=[event for _, _, event in ready],
        ordinals=list(range(len(ready))),
        now=now,
    )
    message_ids = {execution_id: int(mid) for execution_id, mid in found}
    lost: list[tuple[int, Start]] = []
    for index, plan, _ in ready:
        mid = message_ids.get(plan.new.execution_id)
        if mid is None:
            lost.append((index, plan))
        else:
            outcomes[index] = (True, sql.started_work_item(plan.new, plan.lease_owner, 1, mid))
    if not lost:
        return
    # Each start that met an existing row, in group order, as the one-by-one path decides it.
    locked = yield sql.rows("lock_instances",
                            instance_ids=sorted({plan.new.instance_id for _, plan in lost}))
    statuses: dict[str, Status] = {row[0]: Status(row[1]) for row in locked}
    for index, plan in lost:
        instance_id = plan.new.instance_id
        status = statuses.get(instance_id)
        if (status is not None and plan.policy is OverridableStates.NonRunningStates
                and status in RUNNING_STATUSES):
            outcomes[index] = (False, InstanceAlreadyExistsError(instance_id, status.value))
            continue
        # Finished (or overridable, or purged since): replace or create it one by one. The row
        # is locked now, so what it does cannot differ from what was just decided.
        try:
            item = yield from one_by_one(plan, now)
        except DurableError as exc:
            outcomes[index] = (False, exc)
        else:
            outcomes[index] = (True, item)
            statuses[instance_id] = Status.Pending


def _message_columns(
    messages: list[Message], events: list[str], now: float
) -> dict[str, list[Any]]:
    return {
        "instance_ids": [m.instance_id for m in messages],
        "execution_ids": [m.execution_id for m in messages],
        "visible_ats": [m.visible_at if m.visible_at is not None else now for m in messages],
        "events": events,
        "ordinals": list(range(len(messages))),
    }


def _sends(plans: Sequence[Plan], indexes: list[int], outcomes: list[Outcome | None],
           now: float) -> sql.Txn:
    ready: list[tuple[int, Message, str]] = []
    for index in indexes:
        plan = plans[index]
        assert isinstance(plan, Send)
        message = plan.message
        if not is_lookup_id(message.instance_id):
            outcomes[index] = (False, InstanceNotFoundError(message.instance_id))
            continue
        try:
            event = sql.checked_client_event(message)
        except InvalidInputError as exc:
            outcomes[index] = (False, exc)
            continue
        ready.append((index, message, event))
    if not ready:
        return
    found = yield sql.rows(
        "send_messages",
        **_message_columns([m for _, m, _ in ready], [e for _, _, e in ready], now),
        now=now,
    )
    statuses = {row[0]: Status(row[1]) for row in found}
    for index, message, _ in ready:
        status = statuses.get(message.instance_id)
        if status is None:
            outcomes[index] = (False, InstanceNotFoundError(message.instance_id))
        elif status in TERMINAL_STATUSES:
            outcomes[index] = (False, InstanceNotRunningError(message.instance_id, status.value))
        else:
            outcomes[index] = (True, None)


def _signals(plans: Sequence[Plan], indexes: list[int], outcomes: list[Outcome | None],
             now: float) -> sql.Txn:
    ready: list[tuple[int, Message, str]] = []
    for index in indexes:
        plan = plans[index]
        assert isinstance(plan, Signal)
        message = plan.message
        try:
            event = sql.checked_signal(message)
        except InvalidInputError as exc:
            outcomes[index] = (False, exc)
            continue
        ready.append((index, message, event))
    if not ready:
        return
    messages = [m for _, m, _ in ready]
    yield sql.rows(
        "signal_entities",
        **_message_columns(messages, [e for _, _, e in ready], now),
        names=[m.instance_id[1:].partition("@")[0] for m in messages],
        new_execution_ids=[new_execution_id() for _ in messages],
        now=now,
    )
    for index, _, _ in ready:
        outcomes[index] = (True, None)
