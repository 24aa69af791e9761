"""Instance ID rules, shared by the client, the HTTP API and sub-orchestrations."""

from __future__ import annotations

import os
import random
import re

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


# IDs only need to be unique, not secret (keys, not IDs, protect the API), so they come from a
# per-process generator seeded from the OS once (and again in a forked child), not from
# os.urandom per ID: that system call releases the GIL, and getting it back behind a busy
# storage thread costs far more than the call itself.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_id() -> str:
    """32 random hex digits, like ``uuid.uuid4().hex`` (the version bits aside)."""
    return f"{_ids.getrandbits(128):032x}"


def new_instance_id() -> str:
    return new_id()


def new_execution_id() -> str:
    return new_id()
