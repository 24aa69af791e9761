"""What both SQL backends can store, checked before anything is written.

Values are validated where they enter (:mod:`durable.serialization`), but storage is the last
line: one value PostgreSQL or SQLite refuses must fail only the operation (or the one commit
of a batch) that carries it, never the transaction it shares with others. So every text that
reaches a column is checked *before* the first write of its operation, and the same rules hold
on both backends even where one of them could have stored the value:

- Raw text columns (instance IDs, function names, versions) take no NUL (PostgreSQL text cannot
  hold one) and no lone surrogate (UTF-8 cannot encode one).
- JSON text (payloads, events, history) takes no lone surrogate; JSON escapes NUL itself.

Checks cost one ``isascii`` pass per text in the common case.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from durable.errors import FailureDetails
from durable.history import HistoryEvent, TaskCompleted, TaskFailed, event_to_dict
from durable.serialization import unencodable
from durable.storage.base import ActivityResult, NewInstance, OrchestrationCommit

# As durable.history.encode_event writes events, but refusing NaN and Infinity: for messages
# from clients, whose fields (a terminate reason) are not JSON text already checked.
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def bad_raw(value: str | None) -> str | None:
    """Why ``value`` cannot go into a plain text column, or None."""
    if value is None:
        return None
    if "\x00" in value:
        return f"it contains a NUL character (character {value.index(chr(0))})"
    return unencodable(value, of="")


def bad_json(value: str | None) -> str | None:
    """Why JSON text ``value`` cannot be stored, or None (JSON already escapes NUL)."""
    if value is None:
        return None
    return unencodable(value)


def client_event_text(event: HistoryEvent) -> str:
    """``event`` encoded for the inbox; raises ValueError or TypeError if it is not JSON."""
    return _STRICT.encode(event_to_dict(event))


def is_lookup_id(instance_id: str) -> bool:
    """Whether an instance could have this ID at all. IDs are validated when instances are
    created (no control characters), so a lookup by anything else finds nothing, on every
    backend alike, without sending PostgreSQL a NUL it would refuse."""
    if instance_id.isascii():
        return instance_id.isprintable()
    return bad_raw(instance_id) is None and not any(
        ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in instance_id
    )


def new_instance_problem(new: NewInstance) -> str | None:
    """Why ``new`` cannot be stored, as a sentence naming the field, or None."""
    for field, value in (("instance ID", new.instance_id), ("orchestrator name", new.name),
                         ("version", new.version)):
        problem = bad_raw(value)
        if problem is not None:
            return f"The {field} of instance '{_shown(new.instance_id)}' cannot be stored: " \
                   f"{problem}."
    problem = bad_json(new.input)
    if problem is not None:
        return f"The input of instance '{_shown(new.instance_id)}' cannot be stored: {problem}."
    return None


def commit_problem(
    commit: OrchestrationCommit, history: str | None, events: Sequence[str]
) -> str | None:
    """Why ``commit`` (with its encoded history chunk and message events) cannot be stored.

    The answer says what and where, because it becomes the failure of the instance. This runs
    for every commit, so it only tests values; a message is built only for a problem.
    """
    for field, json_text in (("history of the episode", history), ("output", commit.output),
                             ("custom status", commit.custom_status),
                             ("entity state", commit.entity_state)):
        if json_text is not None and not json_text.isascii():
            problem = bad_json(json_text)
            if problem is not None:
                return _unstorable(field, commit, problem)
    for task in commit.new_tasks:
        problem = bad_raw(task.name)
        if problem is not None:
            return _unstorable(f"name of activity #{task.task_id}", commit, problem)
        problem = bad_json(task.input)
        if problem is not None:
            return _unstorable(f"input of activity '{_shown(task.name)}'", commit, problem)
    if commit.new_instances or commit.rewind_children:
        for child in [*commit.new_instances, *commit.rewind_children]:
            problem = new_instance_problem(child)
            if problem is not None:
                where = f"instance '{_shown(commit.instance_id)}'"
                return f"A sub-orchestration of {where} cannot be started: {problem}"
    if commit.continue_as_new is not None:
        problem = bad_json(commit.continue_as_new.input)
        if problem is not None:
            return _unstorable("continue_as_new input", commit, problem)
    for message, text in zip(commit.messages, events, strict=True):
        problem = bad_raw(message.instance_id)
        if problem is not None:
            return _unstorable("target of a message sent by the episode", commit, problem)
        problem = bad_json(text)
        if problem is not None:
            return _unstorable("message sent by the episode", commit, problem)
    return None


def _unstorable(field: str, commit: OrchestrationCommit, problem: str) -> str:
    return (f"The {field} of instance '{_shown(commit.instance_id)}' cannot be stored: "
            f"{problem}.")


def unstorable_result(result: ActivityResult, problem: str) -> HistoryEvent:
    """The failure that replaces an activity result storage cannot hold, so that only its own
    orchestration sees the problem (as a failed activity), never the results delivered with
    it."""
    name = result.task.name.encode("utf-8", "backslashreplace").decode("utf-8")
    scheduled = getattr(result.event, "task_scheduled_id", result.task.task_id)
    what = "result" if isinstance(result.event, TaskCompleted) else "failure"
    failure = FailureDetails(
        "durable.errors.SerializationError",
        f"The {what} of activity '{name}' cannot be stored: {problem}.",
    )
    return TaskFailed(timestamp=result.event.timestamp, task_scheduled_id=scheduled,
                      failure=failure)


def _shown(text: str) -> str:
    """``text`` safe to put in a message (and so in storage)."""
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
