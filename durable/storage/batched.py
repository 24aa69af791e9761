"""A batch of orchestration commits written as one statement per kind of row.

Why: SQLite's writer thread is the critical path of a busy worker, and each statement it runs
releases the GIL while SQLite steps and must take it back from the event loop afterwards.
With the loop busy that hand-back is the expensive part (a statement that costs 3 us alone
waited milliseconds in a measurement with one busy Python thread beside it), so a batch of a
few hundred commits written row by row (~36 statements per orchestration in W9 (c)) spends
about half its time waiting for the GIL. Here the batch's rows of each kind travel as one
table to one statement (``sql.values``: one multi-row ``VALUES`` list, see
durable/storage/sqlite/values.py): a dozen statements per batch, whatever its size.

What it needs: every decision the row-by-row path makes with a statement must be made from
reads taken before the batch writes. That holds only where writes are serial (no other
transaction can change a row between the read and the write: ``SQLOperations.serial_writes``)
and for *plain* batches (:func:`plain`): one commit per instance, none that continues as new,
rewinds or creates instances. Other batches take :func:`durable.storage.sql.commit_orchestrations`.
The outcome is the one the row-by-row path reaches, commit by commit in the batch's order:

- fences: one read locks and fences the batch's instances, and reads the status of every
  instance its messages go to;
- a message to another orchestration is inserted only if that instance is running at that
  point of the batch (its own commit, earlier or later in the batch, is simulated); a message
  to an instance that a later commit of the batch finishes would have been deleted with the
  finished instance's inbox, so it is not inserted at all (its id is None, as for a target
  that had already finished);
- an entity that does not exist is created once, before the first message to it;
- message ids are handed out here, in the batch's order, above the inbox's AUTOINCREMENT
  sequence (read in the same transaction, which holds SQLite's write lock), so every new
  message is newer than every stored one, as ``handed_up_to`` requires; the ids of dropped
  messages are spent as the row-by-row path spends them (the sequence moves past them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable.serialization import compact_json
from durable.storage.base import CommitOutcome, OrchestrationCommit
from durable.storage.rows import failure_text
from durable.storage.sql import (
    TERMINAL_NAMES,
    EncodedCommit,
    Txn,
    count,
    entity_row,
    one,
    order_checks,
    refusal,
    rows,
    values,
)

_FINISHED = frozenset(TERMINAL_NAMES)

# The queries this module runs that only backends with serial writes define.
SERIAL_QUERIES = frozenset({
    "inbox_sequence", "delete_messages_in", "delete_leased_tasks_in", "insert_history_rows",
    "delete_unclaimed_tasks_of", "update_instances_rows", "update_instances_keep_status_rows",
    "renew_instances_rows", "update_entities_rows", "insert_tasks_rows", "insert_entities_rows",
    "insert_messages_rows", "advance_inbox_sequence", "start_inbox_sequence",
})


def plain(commits: Sequence[OrchestrationCommit]) -> bool:
    """Whether :func:`commit_orchestrations` can write this batch (see the module's doc)."""
    seen: set[str] = set()
    for commit in commits:
        if (commit.instance_id in seen or commit.continue_as_new is not None
                or commit.replace_history or commit.new_instances or commit.rewind_children):
            return False
        seen.add(commit.instance_id)
    return True


class _Rows:
    """The batch's rows, gathered by kind in the batch's order."""

    def __init__(self) -> None:
        self.consumed: list[int] = []
        self.delivered: list[list[Any]] = []
        self.history: list[list[Any]] = []
        self.finished: list[str] = []
        self.status_updates: list[list[Any]] = []
        self.updates: list[list[Any]] = []
        self.renewals: list[list[Any]] = []
        self.entity_updates: list[list[Any]] = []
        self.tasks: list[list[Any]] = []
        self.new_entities: list[list[Any]] = []
        self.messages: list[list[Any] | None] = []  # None: dropped (its target finished later)


def commit_orchestrations(
    commits: Sequence[OrchestrationCommit], encoded: Sequence[EncodedCommit],
    lease_seconds: float, now: float, message_ids: bool = False,
) -> Txn:
    """Apply a plain batch (:func:`plain`) in the current transaction of a serial-writes
    backend; the same outcomes as :func:`durable.storage.sql.commit_orchestrations`."""
    ids = {commit.instance_id for commit in commits}
    targets = {message.instance_id for commit in commits for message in commit.messages}
    found = yield rows("lock_instances", instance_ids=sorted(ids | targets))
    fences: dict[str, tuple[Any, ...]] = {row[0]: tuple(row[1:]) for row in found}
    behind = yield from order_checks(commits, now)
    sequence = yield one("inbox_sequence")
    next_id = int(sequence[0]) + 1
    status = {instance_id: fence[0] for instance_id, fence in fences.items()}
    out = _Rows()
    # Per orchestration, its messages of this batch so far: where each one's id was reported.
    pending: dict[str, list[tuple[int, list[int | None], int]]] = {}
    outcomes: list[CommitOutcome] = []
    for position, commit in enumerate(commits):
        fence = fences.get(commit.instance_id)
        if fence is None:
            outcomes.append(CommitOutcome(False))
            continue
        refused = refusal(commit, encoded[position], fence, position in behind)
        if refused is not None:
            outcomes.append(refused)
            continue
        _gather(commit, encoded[position], fence, lease_seconds, now, out)
        instance_id = commit.instance_id
        if commit.entity_state is None:
            status[instance_id] = commit.status.value
            if commit.status.value in _FINISHED:
                # Row by row, these were inserted and then deleted with the finished inbox.
                for index, reported, place in pending.pop(instance_id, ()):
                    out.messages[index] = None
                    reported[place] = None
        reported_ids: list[int | None] = []
        for message, event in zip(commit.messages, encoded[position].events, strict=True):
            target = message.instance_id
            if target.startswith("@") and target != instance_id:
                if target not in status:  # a message creates the entity it is sent to
                    row = entity_row(target, now)
                    out.new_entities.append([target, row["name"], row["execution_id"], now])
                    status[target] = "Running"
            elif target != instance_id:
                if status.get(target, "Completed") in _FINISHED:
                    reported_ids.append(None)  # only a running orchestration takes messages
                    continue
                pending.setdefault(target, []).append(
                    (len(out.messages), reported_ids, len(reported_ids)))
            visible_at = message.visible_at if message.visible_at is not None else now
            out.messages.append([next_id, target, message.execution_id, visible_at, event])
            reported_ids.append(next_id)
            next_id += 1
        outcomes.append(CommitOutcome(True, commit.revision + 1,
                                      message_ids=reported_ids if message_ids else None))
    yield from _write(out, now)
    if out.messages and out.messages[-1] is None:  # the highest ids were dropped
        last = next_id - 1
        if not (yield count("advance_inbox_sequence", last=last)):
            yield count("start_inbox_sequence", last=last)
    return outcomes


def _gather(commit: OrchestrationCommit, encoded: EncodedCommit, fence: tuple[Any, ...],
            lease_seconds: float, now: float, out: _Rows) -> None:
    """Add one commit's rows, except its messages (the caller decides those)."""
    instance_id = commit.instance_id
    out.consumed.extend(commit.consumed_messages)
    out.delivered.extend([instance_id, commit.execution_id, task_id, commit.lease_owner]
                         for task_id in commit.delivered_tasks)
    keep_lease = not commit.release
    lease_owner = commit.lease_owner if keep_lease else None
    lease_expires_at = now + lease_seconds if keep_lease else None
    if commit.entity_state is not None:
        out.entity_updates.append([instance_id, commit.entity_state, lease_owner,
                                   lease_expires_at, now])
    else:
        if encoded.history is not None:
            out.history.append([instance_id, commit.revision, encoded.history])
        finished = commit.status.value in _FINISHED
        if finished:
            out.finished.append(instance_id)
        row = [instance_id, commit.output, failure_text(commit.failure), commit.custom_status,
               now if finished else None, lease_owner, lease_expires_at, now]
        if fence[0] != commit.status.value:
            out.status_updates.append([*row, commit.status.value])
        elif (keep_lease and not finished and commit.output is None and commit.failure is None
              and commit.custom_status is None):
            # The usual episode of a running instance: only its revision and lease move (the
            # fence checked that it keeps its lease owner), which costs half the full update.
            out.renewals.append([instance_id, lease_expires_at, now])
        else:  # an unchanged status is not rewritten
            out.updates.append(row)
    out.tasks.extend(
        [instance_id, commit.execution_id, task.task_id, task.name, task.input, now,
         1 if task.claimed else 0, commit.lease_owner if task.claimed else None,
         now + lease_seconds if task.claimed else None, task.version]
        for task in commit.new_tasks
    )


def _write(out: _Rows, now: float) -> Txn:
    """One statement per kind of row, in the order the row-by-row path's effects need."""
    if out.consumed:
        yield values("delete_messages_in", [[message_id] for message_id in out.consumed])
    if out.delivered:
        yield values("delete_leased_tasks_in", out.delivered)
    if out.history:
        yield values("insert_history_rows", out.history)
    if out.finished:
        finished = compact_json(out.finished)
        yield count("delete_inbox_of", instance_ids=finished)
        yield count("delete_unclaimed_tasks_of", instance_ids=finished)
    if out.status_updates:
        yield values("update_instances_rows", out.status_updates)
    if out.updates:
        yield values("update_instances_keep_status_rows", out.updates)
    if out.renewals:
        yield values("renew_instances_rows", out.renewals)
    if out.entity_updates:
        yield values("update_entities_rows", out.entity_updates)
    if out.tasks:
        yield values("insert_tasks_rows", out.tasks)
    if out.new_entities:
        yield values("insert_entities_rows", out.new_entities)
    messages = [row for row in out.messages if row is not None]
    if messages:
        yield values("insert_messages_rows", messages)
