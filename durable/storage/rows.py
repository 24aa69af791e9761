"""Rows of the instances table as records, and continuation tokens: the same on every SQL
backend (both select the columns in this order)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any

from durable.errors import FailureDetails, InvalidInputError
from durable.status import OrchestrationRuntimeStatus as Status
from durable.storage.base import InstanceRecord
from durable.storage.checks import bad_raw

INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, created_at, updated_at, input, output, "
    "custom_status, failure, version, parent_instance_id, completed_at, revision"
)


def failure_from_text(text: str) -> FailureDetails:
    try:
        return FailureDetails.from_json(json.loads(text))
    except (ValueError, TypeError, AttributeError):
        # Never make an instance unreadable because of its failure text: show it as it is.
        return FailureDetails("Unknown", text)


def instance_from_row(row: Sequence[Any]) -> InstanceRecord:
    failure = row[9]
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        execution_id=row[2],
        status=Status(row[3]),
        created_at=row[4],
        updated_at=row[5],
        input=row[6],
        output=row[7],
        custom_status=row[8],
        failure=failure_from_text(failure) if failure else None,
        version=row[10],
        parent_instance_id=row[11],
        completed_at=row[12],
        revision=row[13],
    )


def failure_text(failure: FailureDetails | None) -> str | None:
    return json.dumps(failure.to_json()) if failure is not None else None


def encode_token(created_at: float, instance_id: str) -> str:
    raw = json.dumps([created_at, instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[float, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        created_at, instance_id = json.loads(base64.urlsafe_b64decode(padded))
        after = float(created_at)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError("The continuation token is not valid.") from exc
    if not isinstance(instance_id, str) or not math.isfinite(after) or bad_raw(instance_id):
        raise InvalidInputError("The continuation token is not valid.")
    return after, instance_id


def encode_entity_token(instance_id: str) -> str:
    """An entity listing's continuation token: the last entity ID of the page."""
    return base64.urlsafe_b64encode(instance_id.encode()).decode().rstrip("=")


def decode_entity_token(token: str) -> str:
    """The entity instance ID a listing of entities continues after."""
    try:
        padded = token + "=" * (-len(token) % 4)
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError("The continuation token is not valid.") from exc
    if not after.startswith("@") or bad_raw(after):
        raise InvalidInputError("The continuation token is not valid.")
    return after
