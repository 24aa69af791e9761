"""Instance ID rules, shared by the client, the HTTP API and sub-orchestrations."""

from __future__ import annotations

import re
import uuid

from durable.errors import InvalidInstanceIdError

MAX_INSTANCE_ID_LENGTH = 256
_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def validate_instance_id(instance_id: object) -> str:
    """Return ``instance_id`` if Durable Functions would accept it, else raise.

    Rules (as the Durable Functions extension enforces them): a non-empty string of at most 256
    characters that does not start with ``@`` (reserved for entities) and contains none of
    ``/ \\ # ?`` and no control characters (nor a lone surrogate, which no store can hold).
    """
    if not isinstance(instance_id, str):
        raise InvalidInstanceIdError(
            f"Instance ID must be a string, not {type(instance_id).__name__}."
        )
    if not instance_id:
        raise InvalidInstanceIdError("Instance ID must not be empty.")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceIdError(
            f"Instance ID must be at most {MAX_INSTANCE_ID_LENGTH} characters, "
            f"got {len(instance_id)}."
        )
    if instance_id.startswith("@"):
        raise InvalidInstanceIdError("Instance ID must not start with '@'.")
    bad = _FORBIDDEN.search(instance_id)
    if bad is not None:
        raise InvalidInstanceIdError(
            f"Instance ID must not contain {bad.group()!r} (no / \\ # ? or control characters)."
        )
    return instance_id


def new_instance_id() -> str:
    return uuid.uuid4().hex


def new_execution_id() -> str:
    return uuid.uuid4().hex
